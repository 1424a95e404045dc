"""A click's acknowledgement: its button changes colour, as Midjourney's do."""

from __future__ import annotations

from typing import Any

import discord

from bot.discord.buttons_layout import custom_id_for


async def mark_clicked(
    interaction: discord.Interaction[Any], action: str, job_id: str, *, remixed: bool = False
) -> None:
    """Acknowledge a click on a job's message by colouring that button: blue when used
    plainly, green when remixed (a green one stays green). Only that button changes, on
    the view discord.py reads from the message itself (so it works on messages from
    before a restart); nothing is rendered again."""
    view = _recoloured(interaction.message, custom_id_for(action, job_id), remixed=remixed)
    if view is None:  # no message to recolour (not a click on one of ours): acknowledge only
        if not interaction.response.is_done():
            await interaction.response.defer()
        return
    if interaction.response.is_done():  # deferred earlier (e.g. while a form's images loaded)
        await interaction.edit_original_response(view=view)
    else:
        await interaction.response.edit_message(view=view)


def _recoloured(
    message: discord.Message | None, custom_id: str, *, remixed: bool
) -> discord.ui.View | None:
    if message is None:
        return None
    view = discord.ui.View.from_message(message, timeout=None)
    found = False
    for item in view.walk_children():
        if isinstance(item, discord.ui.Button) and item.custom_id == custom_id:
            found = True
            if remixed:
                item.style = discord.ButtonStyle.success
            elif item.style is not discord.ButtonStyle.success:
                item.style = discord.ButtonStyle.primary
    # A picture of the buttons, not a view to listen on: the registered items answer
    # clicks, and a stopped view is not kept by discord.py per message.
    view.stop()
    return view if found else None
