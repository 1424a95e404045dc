"""What happens when a member clicks a button under a job, or submits the form it opened.

A click is judged first (`plan_click`, called by the button's `interaction_check`: every
rule of bot/interactions/rules.py, then the follow-up's speed and the server's rules),
then acted on (`act`, the button's `callback`). It is acknowledged at once by turning the
button blue (as Midjourney does); the follow-up job gets its own new message. The
idempotency key (parent, action, member) makes a double click return the job already
started instead of a second one.

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
from typing import Any

import discord

from bot import media
from bot.actions import ActionInput, ActionInputError, kind_of, needs_input, operation_for
from bot.discord.modals import (
    MAX_TEXT,
    FormInput,
    has_modal,
    modal_for,
    parse_modal_custom_id,
    read_form,
    submitted_values,
)
from bot.discord.policy import Member, Policy
from bot.domain import Job, Operation, OperationKind
from bot.interactions import rules
from bot.interactions.errors import Refusal, answer_error
from bot.interactions.ids import optional_str
from bot.interactions.recolour import mark_clicked
from bot.interactions.starter import JobStarter
from bot.media_fetcher import MediaFetcher
from bot.speed import SpeedConflictError
from bot.store.base import MemberPrefsRepository

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class ClickPlan:
    """What a judged click does: open its form, or start `operation`."""

    operation: Operation
    opens_form: bool


async def follow_up_speed(
    policy: Policy,
    interaction: discord.Interaction[Any],
    operation: Operation,
    parent: Job,
) -> Operation:
    """`operation` (a follow-up of `parent`) at its one decided speed: the parent's, unless
    its text (a remix form's prompt) asks for another; the text keeps at most a flag that
    agrees (bot/speed.py). Raises SpeedConflictError when the text asks for two."""
    if operation.kind is OperationKind.SEED:
        return operation  # asks for the parent's seed; runs at no speed
    member = Member.of(interaction)
    speed = await policy.decide_speed(member, prompt=operation.prompt, parent=parent)
    return dataclasses.replace(operation, mode=speed.mode, prompt=speed.prompt)


class FollowUps:
    def __init__(
        self,
        *,
        starter: JobStarter,
        prefs: MemberPrefsRepository,
        follow_up_window: float | None,
        fetcher: MediaFetcher,
    ) -> None:
        self._starter = starter
        self._engine = starter.engine
        self._policy = starter.policy
        self._capabilities = starter.capabilities
        self._prefs = prefs
        self._window = follow_up_window
        self._fetcher = fetcher  # the bot's one media client (bot/media_fetcher.py)
        self._max_prompt = min(starter.prompt_limit, MAX_TEXT)

    def check_parent(self, interaction: discord.Interaction[Any], parent: Job | None) -> Job:
        """The rules every button and form on a job passes before anything else: the job
        is known here, finished, and within the provider's follow-up window."""
        refusal = rules.unknown_job(parent, optional_str(interaction.guild_id))
        if refusal is None:
            assert parent is not None
            refusal = rules.not_finished(parent) or rules.past_window(
                parent, now=self._engine.clock.time(), window=self._window
            )
        if refusal is not None:
            raise Refusal(refusal)
        assert parent is not None
        return parent

    async def plan_click(
        self, interaction: discord.Interaction[Any], action: str, found: Job | None
    ) -> ClickPlan:
        """Every refusal of a click on `found`'s button (raises Refusal), before anything is
        answered; returns what the click does."""
        parent = self.check_parent(interaction, found)
        if (refusal := rules.unsupported(self._capabilities, action)) is not None:
            raise Refusal(refusal)
        if needs_input(action, remix_mode=await self._remix_mode(interaction)):
            if not has_modal(action):
                raise Refusal("This action needs input this bot cannot take yet.")
            # The rules are checked before the form opens (nothing typed is lost to a
            # refusal after it), and again on submit for the prompt typed into it.
            probe = _probe(action, parent)
            await self._starter.check(interaction, probe, parent=parent)
            return ClickPlan(probe, opens_form=True)
        try:
            operation = await follow_up_speed(
                self._policy, interaction, operation_for(action, parent), parent
            )
        except (ActionInputError, SpeedConflictError) as exc:
            raise Refusal(str(exc)) from None
        await self._starter.check(interaction, operation, parent=parent)
        return ClickPlan(operation, opens_form=False)

    async def act(
        self, interaction: discord.Interaction[Any], action: str, parent: Job, plan: ClickPlan
    ) -> None:
        """A judged click: its form opens, or its job starts in a message of its own."""
        if plan.opens_form:
            # Follow-ups carry their prompt down the chain (bot/actions.py): the parent's
            # own prompt is the one to pre-fill. The form must be the first answer.
            await interaction.response.send_modal(
                modal_for(
                    action,
                    parent.id,
                    parent.operation.prompt,
                    max_prompt_length=self._max_prompt,
                    aspect=parent.operation.aspect_ratio,
                )
            )
            return
        key = f"click:{parent.id}:{action}:{interaction.user.id}"
        await self._start(interaction, parent, action, plan.operation, key=key, remixed=False)

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
        parent = self.check_parent(interaction, await self._engine.get(job_id))
        if (refusal := rules.unsupported(self._capabilities, action)) is not None:
            raise Refusal(refusal)
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
            raise Refusal(str(exc)) from None
        if form.prompt is not None:
            form = dataclasses.replace(form, prompt=probe.prompt)
        # The rules again, with the prompt typed into the form (banned words, parameters),
        # before any download or deferral.
        await self._starter.check(interaction, probe, parent=parent)
        if form.region or form.mask_url:
            # Downloading the source (and a mask) may outlast the 3-second window.
            await interaction.response.defer()
        try:
            given = await self._action_input(parent, form, action)
            operation = dataclasses.replace(operation_for(action, parent, given), mode=probe.mode)
        except (ActionInputError, media.MediaError) as exc:
            raise Refusal(exc.message if isinstance(exc, media.MediaError) else str(exc)) from None
        remixed = await self._remix_mode(interaction)
        key = f"modal:{interaction.id}"
        await self._start(interaction, parent, action, operation, key=key, remixed=remixed)

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
        source = await self._fetcher.fetch_image(source_url)
        uploaded = await self._fetcher.fetch_image(form.mask_url) if form.mask_url else None
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
        key: str,
        remixed: bool,
    ) -> None:
        """Mark the button used, submit the follow-up, and give it its own message."""
        # Acknowledge within the 3-second window: the used button changes colour.
        await mark_clicked(interaction, action, parent.id, remixed=remixed)
        await self._starter.start_follow_up(interaction, operation, key=key)

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
