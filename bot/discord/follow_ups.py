"""What happens when a member clicks a button under a job.

The click is acknowledged at once by turning the button blue (as Midjourney does);
the follow-up job gets its own new message. The idempotency key (parent, action,
member) makes a double click return the job already started instead of a second one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bot.actions import ActionInputError, needs_input, operation_for
from bot.discord.presenter import render
from bot.discord.publisher import Publisher
from bot.discord.views import job_view, used_actions
from bot.domain import Job, JobStatus
from bot.engine import Engine, EngineError

log = logging.getLogger(__name__)

ClickHandler = Callable[[discord.Interaction[Any], str, str], Awaitable[None]]


class FollowUps:
    def __init__(
        self, *, engine: Engine, publisher: Publisher, follow_up_window: float | None
    ) -> None:
        self._engine = engine
        self._publisher = publisher
        self._window = follow_up_window
        self._handlers: dict[str, ClickHandler] = {}

    def register(self, prefix: str, handler: ClickHandler) -> None:
        """Route clicks whose action starts with `prefix` (before any ":") to `handler`.

        For buttons that are not provider follow-ups, e.g. describe's prompt picks.
        """
        self._handlers[prefix] = handler

    async def on_click(
        self, interaction: discord.Interaction[Any], action: str, job_id: str
    ) -> None:
        parent = await self._engine.get(job_id)
        if parent is None or parent.guild_id != _str(interaction.guild_id):
            await _refuse(interaction, "This button belongs to a job this bot does not know.")
            return
        if parent.status is not JobStatus.COMPLETED:
            await _refuse(interaction, "That job has not finished.")
            return
        if needs_input(action):
            await _refuse(
                interaction, "This action needs more input, which this bot cannot take yet."
            )
            return
        try:
            operation = operation_for(action, parent)
        except ActionInputError as exc:
            await _refuse(interaction, str(exc))
            return

        # Acknowledge within the 3-second window: the clicked button turns blue.
        used = used_actions(interaction.message) | {action}
        await interaction.response.edit_message(view=self._parent_view(parent, used))

        user_id = str(interaction.user.id)
        try:
            job = await self._engine.submit(
                operation,
                requester_id=user_id,
                guild_id=_str(interaction.guild_id),
                channel_id=_str(interaction.channel_id),
                idempotency_key=f"click:{parent.id}:{action}:{user_id}",
            )
        except EngineError as exc:
            await interaction.followup.send(exc.error.message, ephemeral=True)
            return
        attached = await self._publisher.attach(
            job,
            channel_id=interaction.channel_id or 0,
            message_id=None,  # the publisher posts the follow-up's own message
            guild_id=interaction.guild_id,
            upload_limit=interaction.filesize_limit,
        )
        if not attached:
            await interaction.followup.send("You already started that one.", ephemeral=True)

    def _parent_view(self, parent: Job, used: frozenset[str]) -> discord.ui.View:
        # Only the buttons change; the parent's content and image stay as they are.
        rendered = render(
            parent,
            now=parent.finished_at or parent.updated_at,
            used_actions=used,
            follow_up_window=None,
        )
        return job_view(rendered.buttons, parent.id)


async def _refuse(interaction: discord.Interaction[Any], text: str) -> None:
    await interaction.response.send_message(text, ephemeral=True)


def _str(value: int | None) -> str | None:
    return str(value) if value is not None else None
