"""What happens when a member clicks a button under a job, or submits the form it opened.

The click is acknowledged at once by turning the button blue (as Midjourney does);
the follow-up job gets its own new message. The idempotency key (parent, action,
member) makes a double click return the job already started instead of a second one.

Actions that need input (Custom Zoom, Vary (Region), and with remix mode on V1–V4,
Vary, pan and 🔄) answer the click with a form instead (bot.discord.modals). Its
submit is checked first (a mistake gets an ephemeral answer and costs nothing), then
goes the same way as a click; the button turns green when remix mode was on. Each
submit is its own job (key `modal:<interaction id>`): two remixes may differ.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord
import httpx

from bot import media
from bot.actions import ActionInput, ActionInputError, kind_of, needs_input, operation_for
from bot.aiohttp_transport import AiohttpTransport
from bot.discord.buttons_layout import describe_action
from bot.discord.modals import (
    MAX_TEXT,
    FormInput,
    has_modal,
    modal_for,
    parse_modal_custom_id,
    read_form,
    submitted_values,
)
from bot.discord.policy import Policy
from bot.discord.publisher import Publisher
from bot.discord.submit import (
    answer_storage_error,
    follow_up_speed,
    mark_clicked,
    optional_str,
    refuse,
    refused_by,
    start_job,
)
from bot.domain import Job, JobStatus, Operation, OperationKind
from bot.engine import Engine, EngineError
from bot.interactions.errors import answer_error
from bot.providers.base import Capabilities
from bot.speed import SpeedConflictError
from bot.store.base import MemberPrefsRepository, StoreError

log = logging.getLogger(__name__)

ClickHandler = Callable[[discord.Interaction[Any], str, str], Awaitable[None]]


class FollowUps:
    def __init__(
        self,
        *,
        engine: Engine,
        publisher: Publisher,
        prefs: MemberPrefsRepository,
        follow_up_window: float | None,
        capabilities: Capabilities | None = None,
        policy: Policy | None = None,
        fetch_policy: media.FetchPolicy | None = None,
        max_prompt_length: int = MAX_TEXT,
    ) -> None:
        self._engine = engine
        self._capabilities = capabilities
        self._policy = policy
        self._publisher = publisher
        self._prefs = prefs
        self._window = follow_up_window
        self._fetch_policy = fetch_policy or media.FetchPolicy()
        self._max_prompt = min(max_prompt_length, MAX_TEXT)
        self._handlers: dict[str, ClickHandler] = {}

    def register(self, prefix: str, handler: ClickHandler) -> None:
        """Route clicks whose action starts with `prefix` (before any ":") to `handler`.

        For buttons that are not provider follow-ups, e.g. describe's prompt picks.
        """
        self._handlers[prefix] = handler

    async def on_click(
        self, interaction: discord.Interaction[Any], action: str, job_id: str
    ) -> None:
        handler = self._handlers.get(action.split(":", 1)[0])
        if handler is not None:
            await handler(interaction, action, job_id)
            return
        parent = await self._finished_parent(interaction, job_id)
        if parent is None:
            return
        if (refusal := self._unsupported(action)) is not None:
            await refuse(interaction, refusal)
            return
        if needs_input(action, remix_mode=await self._remix_mode(interaction)):
            if not has_modal(action):
                await refuse(interaction, "This action needs input this bot cannot take yet.")
                return
            # The rules are checked before the form opens (nothing typed is lost to a
            # refusal after it), and again on submit for the prompt typed into it.
            if await self._refused(interaction, _probe(action, parent), parent):
                return
            # Follow-ups carry their prompt down the chain (bot/actions.py): the parent's
            # own prompt is the one to pre-fill.
            prompt = parent.operation.prompt
            # The form must be the first answer, within the 3-second window.
            await interaction.response.send_modal(
                modal_for(
                    action,
                    parent.id,
                    prompt,
                    max_prompt_length=self._max_prompt,
                    aspect=parent.operation.aspect_ratio,
                )
            )
            return
        try:
            operation = await follow_up_speed(
                self._policy, interaction, operation_for(action, parent), parent
            )
        except (ActionInputError, SpeedConflictError) as exc:
            await refuse(interaction, str(exc))
            return
        if await self._refused(interaction, operation, parent):
            return
        user_id = str(interaction.user.id)
        await self._start(
            interaction,
            parent,
            action,
            operation,
            idempotency_key=f"click:{parent.id}:{action}:{user_id}",
            remixed=False,
        )

    async def on_modal_submit(self, interaction: discord.Interaction[Any]) -> None:
        """`on_interaction` listener: handles the submits of our forms (see modals.py)."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        data: Any = interaction.data or {}
        parsed = parse_modal_custom_id(str(data.get("custom_id", "")))
        if parsed is None:
            return  # some other modal; not ours to answer
        action, job_id = parsed
        try:
            await self._submit_form(interaction, action, job_id, submitted_values(data))
        except Exception as exc:
            # A listener's error would only be logged, and Discord would tell the member
            # "This interaction failed": one private answer instead (errors.py).
            await answer_error(interaction, exc, where=f"form {action} on job {job_id}")

    async def _submit_form(
        self,
        interaction: discord.Interaction[Any],
        action: str,
        job_id: str,
        values: dict[str, str | list[str]],
    ) -> None:
        parent = await self._finished_parent(interaction, job_id)
        if parent is None:
            return
        if (refusal := self._unsupported(action)) is not None:
            await refuse(interaction, refusal)
            return
        try:
            form = read_form(
                action,
                values,
                max_prompt_length=self._max_prompt,
                source_aspect=parent.operation.aspect_ratio,
            )
            # The speed the typed prompt asks for, decided once (bot/speed.py): judged by
            # the rules below and sent, instead of a flag riding along in the text.
            probe = await follow_up_speed(
                self._policy, interaction, _probe(action, parent, form.prompt), parent
            )
        except (ActionInputError, SpeedConflictError) as exc:
            await refuse(interaction, str(exc))
            return
        if form.prompt is not None:
            form = dataclasses.replace(form, prompt=probe.prompt)
        # The rules again, with the prompt typed into the form (banned words, parameters),
        # before any download or deferral.
        if await self._refused(interaction, probe, parent):
            return
        if form.region or form.mask_url:
            # Downloading the source (and a mask) may outlast the 3-second window.
            await interaction.response.defer()
        try:
            given = await self._action_input(parent, form, action)
            operation = dataclasses.replace(operation_for(action, parent, given), mode=probe.mode)
        except (ActionInputError, media.MediaError) as exc:
            text = exc.message if isinstance(exc, media.MediaError) else str(exc)
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True)
            else:
                await refuse(interaction, text)
            return
        await self._start(
            interaction,
            parent,
            action,
            operation,
            idempotency_key=f"modal:{interaction.id}",
            remixed=await self._remix_mode(interaction),
        )

    async def _refused(
        self, interaction: discord.Interaction[Any], operation: Operation, parent: Job
    ) -> bool:
        """The server's rules (policy.py): True after telling the member why not."""
        return await refused_by(self._policy, interaction, operation, parent=parent)

    def _unsupported(self, action: str) -> str | None:
        """Why the backend cannot serve `action` (a button from before a backend switch)."""
        kind = kind_of(action)
        if self._capabilities is None or kind is None or self._capabilities.supports(kind):
            return None
        title, _ = describe_action(action)
        return f"The image service this server uses cannot do {title}."

    async def _action_input(self, parent: Job, form: FormInput, action: str) -> ActionInput:
        if not (form.region or form.mask_url):
            return ActionInput(
                prompt=form.prompt,
                zoom_ratio=form.zoom_ratio,
                canvas=form.canvas,
                placement=form.placement,
            )
        source_url = parent.result_url
        tile = action.rpartition(":")[2]
        if parent.tiles and len(parent.tiles) == 4 and tile in ("1", "2", "3", "4"):
            source_url = parent.tiles[int(tile) - 1]  # ✏️ n: the mask is drawn on tile n
        if not source_url:
            raise ActionInputError("That job has no image to repaint.")
        async with httpx.AsyncClient(
            follow_redirects=False, transport=AiohttpTransport()
        ) as client:
            source = await media.fetch_image(source_url, client=client, policy=self._fetch_policy)
            uploaded = None
            if form.mask_url:
                uploaded = await media.fetch_image(
                    form.mask_url, client=client, policy=self._fetch_policy
                )
        # Pillow work off the event loop: these images can be large.
        info = await asyncio.to_thread(media.inspect_image, source)
        if uploaded is not None:
            mask = await asyncio.to_thread(media.normalise_mask, uploaded, info.width, info.height)
        else:
            assert form.region is not None
            mask = await asyncio.to_thread(
                media.mask_from_preset, info.width, info.height, form.region
            )
        return ActionInput(
            prompt=form.prompt,
            mask_png_base64=media.png_base64(mask),
            canvas=form.canvas,
            placement=form.placement,
        )

    async def _start(
        self,
        interaction: discord.Interaction[Any],
        parent: Job,
        action: str,
        operation: Operation,
        *,
        idempotency_key: str,
        remixed: bool,
    ) -> None:
        """Mark the button used, submit the follow-up, and give it its own message."""
        # Acknowledge within the 3-second window: the used button changes colour.
        await mark_clicked(interaction, parent, action, remixed=remixed)
        try:
            # message_id=None: the publisher posts the follow-up's own message.
            _, attached = await start_job(
                interaction.client, interaction, operation, idempotency_key=idempotency_key
            )
        except EngineError as exc:
            await interaction.followup.send(exc.error.message, ephemeral=True)
            return
        except StoreError as exc:
            await answer_storage_error(interaction, exc)
            return
        if not attached:
            await interaction.followup.send("You already started that one.", ephemeral=True)

    async def _finished_parent(
        self, interaction: discord.Interaction[Any], job_id: str
    ) -> Job | None:
        """The job a button or form belongs to, or None after telling the member why not."""
        parent = await self._engine.get(job_id)
        if parent is None or parent.guild_id != optional_str(interaction.guild_id):
            await refuse(interaction, "This button belongs to a job this bot does not know.")
            return None
        if parent.status is not JobStatus.COMPLETED:
            await refuse(interaction, "That job has not finished.")
            return None
        if (
            self._window is not None
            and self._engine.clock.time() - parent.created_at > self._window
        ):
            # Buttons posted before the window closed are still enabled on old messages.
            hours = self._window / 3600
            await refuse(
                interaction,
                f"This image is older than {hours:g} hours; the image service no longer takes "
                "follow-ups on it. Start a new /imagine.",
            )
            return None
        return parent

    async def _remix_mode(self, interaction: discord.Interaction[Any]) -> bool:
        prefs = await self._prefs.get(optional_str(interaction.guild_id), str(interaction.user.id))
        return prefs.remix


def _probe(action: str, parent: Job, prompt: str | None = None) -> Operation:
    """What the rules need of a follow-up before its input is complete: its kind, speed
    and prompt (the parent's, unless the member typed another)."""
    return Operation(
        kind_of(action) or OperationKind.PROVIDER_ACTION,
        prompt=prompt or parent.operation.prompt,
        mode=parent.operation.mode,
        parent_job_id=parent.id,
    )
