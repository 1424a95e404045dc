"""Buttons under a job's message, as Discord shows them.

A button's custom_id is `mj:<action>:<job_id>`. The view built here is only a picture
of the buttons: clicks are answered by the persistent `DynamicItem`s registered at start
(bot/interactions/buttons.py and the cogs' own items), which match the custom id on any
message, so buttons keep working after a restart and on old messages.
"""

from __future__ import annotations

from typing import Any

import discord

from bot.discord.buttons_layout import ButtonSpec, custom_id_for

STYLES = {
    "secondary": discord.ButtonStyle.secondary,
    "primary": discord.ButtonStyle.primary,
    "success": discord.ButtonStyle.success,
}


class JobView(discord.ui.View):
    """A job message's buttons. Never dispatchable: discord.py would otherwise keep one
    view per message sent for the bot's lifetime, next to the registered items that
    answer the clicks anyway."""

    def is_dispatchable(self) -> bool:
        return False


def job_button(spec: ButtonSpec, job_id: str) -> discord.ui.Button[Any]:
    return discord.ui.Button(
        custom_id=custom_id_for(spec.action, job_id),
        label=spec.label,
        emoji=spec.emoji,
        style=STYLES.get(spec.style, discord.ButtonStyle.secondary),
        row=spec.row,
        disabled=spec.disabled,
    )


def job_view(buttons: list[ButtonSpec], job_id: str) -> discord.ui.View:
    """The view for a message; an empty one clears the buttons of an earlier state."""
    view = JobView(timeout=None)
    for spec in buttons:
        view.add_item(job_button(spec, job_id))
    return view
