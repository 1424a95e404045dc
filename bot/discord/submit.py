"""Starting a job from a Discord interaction: the engine records it, the publisher shows it.

Shared by the commands and by button handlers, so every entry point credits the member,
keys the job for idempotency and binds it to a message the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord.webhook.async_ import async_context

from bot.discord.buttons_layout import STYLE_SUCCESS
from bot.discord.policy import Member, Policy
from bot.discord.presenter import render, to_payload
from bot.discord.publisher import DEFAULT_UPLOAD_LIMIT
from bot.discord.views import actions_with_style, job_view, used_actions
from bot.domain import Job, Operation, OperationKind
from bot.engine import EngineError
from bot.interactions.errors import (
    answer_refusal,
    answer_storage_error,
)
from bot.speed import decide_speed
from bot.store.base import Delivery, StoreError

if TYPE_CHECKING:
    from bot.app import MidjourneyBot

log = logging.getLogger(__name__)

# An interaction token lets its holder edit the reply for 15 minutes (DISCORD_PROTOCOL §7).
REPLY_TOKEN_TTL_S = 15 * 60.0


async def record_job(
    bot: MidjourneyBot,
    interaction: discord.Interaction[Any],
    operation: Operation,
    *,
    idempotency_key: str,
    message_id: int | None = None,
    keep_reply: bool = False,
) -> Job:
    """Have the engine store (and queue) `operation` for the interaction's member.

    The job's row carries where its message is (its delivery hint), so a kill before the
    delivery record is written still lets the restarted bot show the job. `keep_reply`:
    the job's message will be the interaction's own deferred reply, not known by id yet;
    the hint then keeps the interaction's token (valid 15 minutes, useless after) so that
    a restart can still end that reply instead of leaving it "thinking"
    (`recover_deferred_replies`). Raises EngineError, or StoreError when nothing could
    be saved."""
    hint: dict[str, Any] = {
        "channel_id": str(interaction.channel_id or 0),
        "message_id": str(message_id) if message_id else None,
        "guild_id": optional_str(interaction.guild_id),
        "upload_limit": interaction.filesize_limit,
    }
    if keep_reply:
        hint["application_id"] = str(interaction.application_id)
        hint["reply_token"] = interaction.token
    return await bot.engine.submit(
        operation,
        requester_id=str(interaction.user.id),
        guild_id=optional_str(interaction.guild_id),
        channel_id=optional_str(interaction.channel_id),
        idempotency_key=idempotency_key,
        delivery_hint=hint,
    )


async def attach_job(
    bot: MidjourneyBot,
    interaction: discord.Interaction[Any],
    job: Job,
    *,
    message_id: int | None = None,
    use_token: bool = False,
) -> bool:
    """Bind `job` to its message (None: the publisher posts one); False if already bound."""
    return await bot.publisher.attach(
        job,
        channel_id=interaction.channel_id or 0,
        message_id=message_id,
        guild_id=interaction.guild_id,
        interaction=interaction if use_token else None,
        upload_limit=interaction.filesize_limit,
    )


async def start_job(
    bot: MidjourneyBot,
    interaction: discord.Interaction[Any],
    operation: Operation,
    *,
    idempotency_key: str,
    message_id: int | None = None,
    use_token: bool = False,
) -> tuple[Job, bool]:
    """Submit `operation` for the interaction's member and attach it to a message.

    `message_id=None` lets the publisher post the job's own message in the channel;
    `use_token` edits through the interaction while its token lives (the command's own
    deferred reply). Returns the job and whether it is new to the publisher (False:
    the same key already started it). Raises EngineError when the engine refuses, and
    StoreError when nothing could be saved.
    """
    job = await record_job(
        bot, interaction, operation, idempotency_key=idempotency_key, message_id=message_id
    )
    attached = await attach_job(bot, interaction, job, message_id=message_id, use_token=use_token)
    return job, attached


# How long /imagine waits for its job to be stored before acknowledging some other way:
# Discord allows 3 seconds from the interaction, and the checks before took some of them.
STORE_BEFORE_ACK_S = 2.0
SLOW_STORE = (
    "Saving your job is taking longer than usual; it will appear in this channel in its "
    "own message once it is saved (and you will be told here if it cannot be)."
)


async def start_public_job(
    bot: MidjourneyBot, interaction: discord.Interaction[Any], operation: Operation
) -> None:
    """/imagine's order: store the job, acknowledge with a public "thinking" reply, bind
    the job to that reply. Stored first, so a kill after the acknowledgement finds the job
    at the restart (and the reply's token in its row); never acknowledged before the store
    answers, so a refused or failed store is told privately and nothing is left thinking."""
    key = f"interaction:{interaction.id}"
    recording = asyncio.ensure_future(
        record_job(bot, interaction, operation, idempotency_key=key, keep_reply=True)
    )
    done, _ = await asyncio.wait({recording}, timeout=STORE_BEFORE_ACK_S)
    if not done:
        await _after_slow_store(bot, interaction, recording)
        return
    try:
        job = recording.result()
    except EngineError as exc:
        await refuse(interaction, f"❌ {exc.error.message}")
        return
    except StoreError as exc:
        await answer_storage_error(interaction, exc)
        return
    try:
        response = await interaction.response.defer(thinking=True)
    except discord.HTTPException as exc:  # the 3-second window closed meanwhile
        log.warning("job %s: acknowledgement failed (%s); posting its own message", job.id, exc)
        await attach_job(bot, interaction, job)
        return
    try:
        await attach_job(
            bot,
            interaction,
            job,
            message_id=response.message_id if response else None,
            use_token=True,
        )
    except StoreError as exc:
        with contextlib.suppress(EngineError):
            await bot.engine.cancel(job.id)  # unseen, it must not run (or be charged)
        await answer_storage_error(interaction, exc)


async def _after_slow_store(
    bot: MidjourneyBot, interaction: discord.Interaction[Any], recording: asyncio.Future[Job]
) -> None:
    """The store did not answer within the window: a private word now (nothing public that
    could be left thinking), then the job's own message once it is stored, or why not."""
    await interaction.response.send_message(SLOW_STORE, ephemeral=True)
    try:
        job = await recording
    except EngineError as exc:
        await interaction.followup.send(f"❌ {exc.error.message}", ephemeral=True)
        return
    except StoreError as exc:
        await answer_storage_error(interaction, exc)
        return
    await attach_job(bot, interaction, job)


async def recover_deferred_replies(bot: MidjourneyBot) -> int:
    """At start, before the publisher resumes: jobs stored before their command's public
    "thinking" reply was bound to them (a kill in between) get that reply back, through
    the interaction token their row kept while it lives; the reply then shows the job.
    Returns how many; the publisher's resume delivers them."""
    now = bot.engine.clock.time()
    count = 0
    for job_id in await bot.store.deliveries.jobs_without_delivery(now - REPLY_TOKEN_TTL_S):
        job = await bot.engine.get(job_id)
        hint = job.delivery_hint if job is not None else {}
        token, app_id = hint.get("reply_token"), hint.get("application_id")
        if job is None or not token or not app_id or hint.get("message_id"):
            continue
        # Several processes on PostgreSQL all run this at start: only the lease holder
        # recovers a reply, or two processes would edit it (and race its delivery claim).
        if not bot.engine.holds(job.id):
            continue
        rendered = render(job, now=now, extra_actions=bot_actions(bot, job))
        webhook = discord.Webhook.partial(int(app_id), str(token), client=bot)
        try:
            # The first edit of a deferred reply is what makes it a message with an id.
            data = await async_context.get().edit_original_interaction_response(
                int(app_id),
                str(token),
                session=webhook.session,
                proxy=bot.http.proxy,
                proxy_auth=bot.http.proxy_auth,
                payload=to_payload(rendered, job.id),
            )
        except discord.HTTPException as exc:
            log.info("job %s: its reply could not be recovered (%s)", job.id, exc.status)
            continue
        # The delivery record only: Publisher.resume, next, delivers every undelivered
        # record once (starting a delivery here too would race it to a second final).
        try:
            claimed = await _claim_reply(bot, job, hint, int(data["id"]), now)
        except StoreError as exc:  # the job stays stored; its reply is not recovered
            log.warning("job %s: its reply could not be recorded (%s)", job.id, exc)
            continue
        if claimed:
            log.info("job %s: its command's reply recovered after a restart", job.id)
            count += 1
    return count


async def _claim_reply(
    bot: MidjourneyBot, job: Job, hint: dict[str, Any], message_id: int, now: float
) -> bool:
    return await bot.store.deliveries.claim(
        Delivery(
            job_id=job.id,
            channel_id=str(hint.get("channel_id") or job.channel_id or 0),
            message_id=str(message_id),
            guild_id=hint.get("guild_id"),
            upload_limit=int(hint.get("upload_limit") or DEFAULT_UPLOAD_LIMIT),
            created_at=now,
            updated_at=now,
        )
    )


async def start_after_private_ack(
    bot: MidjourneyBot, interaction: discord.Interaction[Any], operation: Operation, *, what: str
) -> Job | None:
    """For commands acknowledged with a private "thinking" reply (their input took long to
    check): start the job in its own public message and say so, or why not, privately."""
    try:
        job, _ = await start_job(
            bot, interaction, operation, idempotency_key=f"interaction:{interaction.id}"
        )
    except EngineError as exc:
        await interaction.edit_original_response(content=f"❌ {exc.error.message}")
        return None
    except StoreError as exc:
        await answer_storage_error(interaction, exc)
        return None
    await interaction.edit_original_response(
        content=f"{what}; the result will appear in this channel (job `{job.id}`)."
    )
    return job


async def follow_up_speed(
    policy: Policy | None,
    interaction: discord.Interaction[Any],
    operation: Operation,
    parent: Job,
) -> Operation:
    """`operation` (a follow-up of `parent`) at its one decided speed: the parent's, unless
    its text (a remix form's prompt) asks for another; the text keeps at most a flag that
    agrees (bot/speed.py). Raises SpeedConflictError when the text asks for two."""
    if operation.kind is OperationKind.SEED:
        return operation  # asks for the parent's seed; runs at no speed
    if policy is None:
        speed = decide_speed(
            None, None, None, operation.prompt, inherited=parent.operation.mode, keep_flag=True
        )
    else:
        speed = await policy.decide_speed(
            Member.of(interaction), prompt=operation.prompt, parent=parent
        )
    return dataclasses.replace(operation, mode=speed.mode, prompt=speed.prompt)


async def refused_by_policy(
    bot: MidjourneyBot,
    interaction: discord.Interaction[Any],
    operation: Operation,
    *,
    parent: Job | None = None,
) -> bool:
    """Check the server's rules (bot/discord/policy.py) for `operation`; when they refuse,
    say why privately (the interaction must not be acknowledged yet) and return True."""
    return await refused_by(bot.policy, interaction, operation, parent=parent)


async def refused_by(
    policy: Policy | None,
    interaction: discord.Interaction[Any],
    operation: Operation,
    *,
    parent: Job | None = None,
) -> bool:
    """`refused_by_policy` for who holds the rules themselves (None: no rules, no refusal);
    a click on `parent` is checked against its rules too."""
    if policy is None:
        return False
    member = Member.of(interaction)
    reason = None
    if parent is not None:
        reason = await policy.check_click(member, parent)
    if reason is None:
        reason = await policy.check_job(member, operation, parent=parent)
    if reason is None:
        return False
    await refuse(interaction, reason)
    return True


async def mark_clicked(
    interaction: discord.Interaction[Any], parent: Job, action: str, *, remixed: bool = False
) -> None:
    """Acknowledge a click on `parent`'s message by colouring that button as Midjourney
    does: blue when used plainly, green when remixed. Content and image stay as they are."""
    used = used_actions(interaction.message) | {action}
    green = actions_with_style(interaction.message, discord.ButtonStyle.success)
    if remixed:
        green |= {action}
    rendered = render(
        parent,
        now=parent.finished_at or parent.updated_at,
        used_actions=used,
        follow_up_window=None,
        extra_actions=bot_actions(interaction.client, parent),
    )
    buttons = [
        dataclasses.replace(b, style=STYLE_SUCCESS) if b.action in green else b
        for b in rendered.buttons
    ]
    view = job_view(buttons, parent.id)
    if interaction.response.is_done():  # deferred earlier (e.g. while a form's images loaded)
        await interaction.edit_original_response(view=view)
    else:
        await interaction.response.edit_message(view=view)


async def refuse(interaction: discord.Interaction[Any], text: str) -> None:
    """A private answer that costs nothing: bad input, no permission, unknown job."""
    await answer_refusal(interaction, text)


def optional_str(value: int | None) -> str | None:
    return str(value) if value is not None else None


def prompt_limit(bot: MidjourneyBot) -> int:
    """The longest prompt accepted: the provider's limit or the server's, whichever is lower."""
    return min(bot.provider.capabilities.max_prompt_length, bot.settings.mj_max_prompt_length)


# Jobs whose images have a Midjourney seed worth asking for (🌱).
_SEEDABLE = frozenset(
    {
        OperationKind.IMAGINE,
        OperationKind.REROLL,
        OperationKind.VARIATION,
        OperationKind.BLEND,
        OperationKind.UPSCALE,
        OperationKind.OUTPAINT,
        OperationKind.PAN,
        OperationKind.INPAINT,
    }
)


def bot_actions(bot: MidjourneyBot, job: Job) -> list[str]:
    """Buttons the bot offers beyond the provider's actions, where the provider can serve
    them: 🌱 Seed on image jobs."""
    if job.operation.kind in _SEEDABLE and bot.provider.capabilities.supports(OperationKind.SEED):
        return ["seed"]
    return []
