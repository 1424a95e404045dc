"""One place that answers what went wrong during a command, a click or a form.

Handlers raise `Refusal(text)` for anything the member should be told (bad input, no
permission, an unknown job); `answer_error` is the one answer for everything raised:
refusals and storage failures get their sentence, anything unexpected a short private
apology and one log line with its traceback. Nothing is ever left "thinking", and the
member never reads an exception's name.

`tree.on_error` calls it for slash commands (bot/app.py); the persistent items and the
forms of bot/interactions call it around their own callbacks, because discord.py's
default for those is to log and let Discord show "This interaction failed".
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

from bot.store.base import StoreError

log = logging.getLogger(__name__)


class Refusal(Exception):
    """What a member is told, privately, when the bot will not do what they asked.

    Raised from a check or a handler; costs nothing at the provider."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


STORAGE_DOWN = (
    "I can't save anything right now, so nothing was started and nothing was charged. "
    "Please try again in a few minutes."
)
APOLOGY = (
    "Sorry, something went wrong on my side while handling that. If a job was started, "
    "it will still appear in this channel; otherwise please try again."
)


async def answer_refusal(interaction: discord.Interaction[Any], text: str) -> None:
    """Tell the member `text` privately, whatever was answered before: as the first answer,
    in place of our own "thinking" reply (which goes: a public one must not show it), or
    as a private follow-up after a click was acknowledged."""
    response = interaction.response
    if not response.is_done():
        await response.send_message(text, ephemeral=True)
        return
    if response.type is discord.InteractionResponseType.deferred_channel_message:
        try:
            await interaction.delete_original_response()
        except discord.HTTPException:
            await interaction.edit_original_response(content=f"❌ {text}")
            return
        await interaction.followup.send(f"❌ {text}", ephemeral=True)
        return
    await interaction.followup.send(text, ephemeral=True)


async def answer_storage_error(interaction: discord.Interaction[Any], exc: Exception) -> None:
    """Tell the member, privately, that nothing was saved or charged: as the first answer,
    or in place of a "thinking" reply (never left thinking), or as a private follow-up."""
    log.warning("storage failed during an interaction: %s", exc)
    if not interaction.response.is_done():
        await interaction.response.send_message(STORAGE_DOWN, ephemeral=True)
        return
    try:
        if interaction.response.type is discord.InteractionResponseType.deferred_channel_message:
            # Our own "thinking" reply (public or private): it becomes the answer.
            await interaction.edit_original_response(content=f"❌ {STORAGE_DOWN}")
        else:
            await interaction.followup.send(STORAGE_DOWN, ephemeral=True)
    except discord.HTTPException as error:
        log.warning("could not tell the member about the storage failure (%s)", error.status)


_KINDS = {
    discord.AppCommandOptionType.integer: "a whole number",
    discord.AppCommandOptionType.number: "a number",
    discord.AppCommandOptionType.user: "a member of this server",
    discord.AppCommandOptionType.channel: "a channel the command allows",
    discord.AppCommandOptionType.role: "a role of this server",
}


def _parameters(interaction: discord.Interaction[Any]) -> list[app_commands.Parameter]:
    command = interaction.command
    return list(command.parameters) if isinstance(command, app_commands.Command) else []


def unknown_value_text(
    interaction: discord.Interaction[Any], error: app_commands.TransformerError
) -> str:
    """The sentence for a value that does not convert: the option by name and what it
    accepts (its choices, or its kind). TransformerError does not name the option, so it
    is the one whose value as received is the one that failed."""
    namespace = interaction.namespace
    for parameter in _parameters(interaction):
        if getattr(namespace, parameter.display_name, None) != error.value:
            continue
        name = parameter.display_name
        if parameter.choices:
            accepted = ", ".join(c.name for c in parameter.choices)
            return f"That value for **{name}** isn't one of its choices ({accepted})."
        kind = _KINDS.get(parameter.type, "a value of the kind it asks for")
        return f"That value for **{name}** isn't {kind}."
    return "One of the values given isn't one this command accepts; please pick it again."


def range_problem(interaction: discord.Interaction[Any]) -> str | None:
    """What is out of range among a command's numbers as received, or None. Discord checks
    the declared ranges in its clients, but discord.py does not on receipt (`Range` is
    only declared), so the bot checks the same declared bounds itself."""
    namespace = interaction.namespace
    for parameter in _parameters(interaction):
        if parameter.type not in (
            discord.AppCommandOptionType.integer,
            discord.AppCommandOptionType.number,
        ):
            continue
        value = getattr(namespace, parameter.display_name, None)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        low, high = parameter.min_value, parameter.max_value
        if (low is not None and value < low) or (high is not None and value > high):
            return (
                f"**{parameter.display_name}** must be between {_bound(low, '-∞')} "
                f"and {_bound(high, '∞')}; {value} is not. Nothing was done."
            )
    return None


async def within_declared_ranges(interaction: discord.Interaction[Any]) -> bool:
    """The tree's check before every command: a number outside its option's declared range
    is refused privately (with the range) before the command runs, so nothing starts."""
    problem = range_problem(interaction)
    if problem is None:
        return True
    await answer_refusal(interaction, problem)
    return False


def _bound(value: float | None, none: str) -> str:
    if value is None:
        return none
    return str(int(value)) if float(value).is_integer() else str(value)


async def answer_error(
    interaction: discord.Interaction[Any], error: BaseException, *, where: str
) -> None:
    """The one answer to anything a command, click or form raised. `where` names the
    handler in the log ("/imagine", "button pick:1", "form vary_region")."""
    original = getattr(error, "original", error)  # app_commands.CommandInvokeError
    try:
        if isinstance(original, Refusal):
            log.info("%s refused for member %s: %s", where, interaction.user.id, original.text)
            await answer_refusal(interaction, original.text)
        elif isinstance(original, StoreError):
            await answer_storage_error(interaction, original)
        elif isinstance(original, app_commands.TransformerError):
            # A value no client offers (a choice that is not one): bad input, not a bug.
            log.info("%s refused for member %s: an unknown value", where, interaction.user.id)
            await answer_refusal(interaction, unknown_value_text(interaction, original))
        elif isinstance(original, app_commands.CheckFailure):
            # A failed check (guild_only, a cooldown) has been answered by discord.py.
            log.info(
                "%s refused for member %s (%s)", where, interaction.user.id, type(original).__name__
            )
        else:
            log.error(
                "%s failed", where, exc_info=(type(original), original, original.__traceback__)
            )
            await answer_refusal(interaction, APOLOGY)
    except discord.HTTPException as exc:
        # The token expired or Discord is down: the log is all that is left.
        log.warning("%s: could not answer the member (HTTP %s)", where, exc.status)


async def on_app_command_error(
    interaction: discord.Interaction[Any], error: app_commands.AppCommandError
) -> None:
    """`tree.on_error`: every slash command's failure answered in one place."""
    command = interaction.command
    name = f"/{command.qualified_name}" if command is not None else "a command"
    await answer_error(interaction, error, where=name)
