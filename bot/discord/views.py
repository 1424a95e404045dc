"""Buttons under a job's message, as persistent `DynamicItem`s.

A button's custom_id is `mj:<action>:<job_id>`; discord.py matches it against the
template on any message, so buttons keep working after a restart and on old messages
without any view being registered per message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord

from bot.discord.buttons_layout import CUSTOM_ID_PATTERN, ButtonSpec, custom_id_for, parse_custom_id
from bot.interactions.errors import answer_error

if TYPE_CHECKING:
    from bot.app import MidjourneyBot

STYLES = {
    "secondary": discord.ButtonStyle.secondary,
    "primary": discord.ButtonStyle.primary,
    "success": discord.ButtonStyle.success,
}


class JobButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=CUSTOM_ID_PATTERN,
):
    def __init__(self, spec: ButtonSpec, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                custom_id=custom_id_for(spec.action, job_id),
                label=spec.label,
                emoji=spec.emoji,
                style=STYLES.get(spec.style, discord.ButtonStyle.secondary),
                row=spec.row,
                disabled=spec.disabled,
            )
        )
        self.action = spec.action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: Any,
    ) -> JobButton:
        emoji = getattr(item, "emoji", None)
        spec = ButtonSpec(
            action=match["action"],
            label=getattr(item, "label", None),
            emoji=str(emoji) if emoji else None,
            row=0,
            disabled=bool(getattr(item, "disabled", False)),
        )
        return cls(spec, match["job_id"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        bot: MidjourneyBot = interaction.client
        try:
            await bot.follow_ups.on_click(interaction, self.action, self.job_id)
        except Exception as exc:
            # discord.py's default would only log it, and Discord would tell the member
            # "This interaction failed": one private answer instead (errors.py).
            await answer_error(interaction, exc, where=f"button {self.action} on job {self.job_id}")


def job_view(buttons: list[ButtonSpec], job_id: str) -> discord.ui.View:
    """The view for a message; an empty one clears the buttons of an earlier state."""
    view = discord.ui.View(timeout=None)
    for spec in buttons:
        view.add_item(JobButton(spec, job_id))
    return view


def actions_with_style(
    message: discord.Message | None, *styles: discord.ButtonStyle
) -> frozenset[str]:
    """Actions whose button on `message` has one of `styles`, read from the message itself
    (so it works on messages from before a restart)."""
    found: set[str] = set()
    for row in message.components if message is not None else []:
        for child in getattr(row, "children", []):
            parsed = parse_custom_id(getattr(child, "custom_id", None) or "")
            if parsed and getattr(child, "style", None) in styles:
                found.add(parsed[0])
    return frozenset(found)


def used_actions(message: discord.Message | None) -> frozenset[str]:
    """Actions already used on `message`: blue (plain) or green (remixed) buttons."""
    return actions_with_style(message, discord.ButtonStyle.primary, discord.ButtonStyle.success)
