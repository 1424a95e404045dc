"""Starting a job from a Discord interaction: the engine records it, the publisher shows it.

`JobStarter` is built once in `setup_hook` with everything it needs and is the one way a
command or a click starts a job, so every entry point credits the member, keys the job
for idempotency, checks the server's rules and binds the job to a message the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import discord
from discord.webhook.async_ import async_context

from bot.discord.policy import Member, Policy
from bot.discord.presenter import render, to_payload
from bot.discord.publisher import DEFAULT_UPLOAD_LIMIT, Publisher
from bot.domain import Job, Operation, OperationKind
from bot.engine import Engine, EngineError
from bot.interactions.errors import Refusal, answer_storage_error
from bot.interactions.ids import optional_str
from bot.interactions.rules import policy_refusal
from bot.providers.base import Capabilities
from bot.store.base import Delivery, DeliveryRepository, StoreError

log = logging.getLogger(__name__)

# An interaction token lets its holder edit the reply for 15 minutes (DISCORD_PROTOCOL §7).
REPLY_TOKEN_TTL_S = 15 * 60.0
# How long /imagine waits for its job to be stored before acknowledging some other way:
# Discord allows 3 seconds from the interaction, and the checks before took some of them.
STORE_BEFORE_ACK_S = 2.0
SLOW_STORE = (
    "Saving your job is taking longer than usual; it will appear in this channel in its "
    "own message once it is saved (and you will be told here if it cannot be)."
)

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


def bot_actions(capabilities: Capabilities, job: Job) -> list[str]:
    """Buttons the bot offers beyond the provider's actions, where the provider can serve
    them: 🌱 Seed on image jobs."""
    if job.operation.kind in _SEEDABLE and capabilities.supports(OperationKind.SEED):
        return ["seed"]
    return []


class JobStarter:
    """Records, checks and shows the jobs members start; see the module docstring."""

    def __init__(
        self,
        *,
        engine: Engine,
        publisher: Publisher,
        policy: Policy,
        deliveries: DeliveryRepository,
        capabilities: Capabilities,
        max_prompt_length: int,
    ) -> None:
        self.engine = engine
        self.publisher = publisher
        self.policy = policy
        self.capabilities = capabilities
        self._deliveries = deliveries
        # The provider's limit or the server's, whichever is lower.
        self.prompt_limit = min(capabilities.max_prompt_length, max_prompt_length)

    def bot_actions(self, job: Job) -> list[str]:
        return bot_actions(self.capabilities, job)

    async def check(
        self,
        interaction: discord.Interaction[Any],
        operation: Operation,
        *,
        parent: Job | None = None,
    ) -> None:
        """The server's rules for `operation` (a click on `parent` is checked against its
        rules too); raises Refusal with the member's sentence when they refuse."""
        reason = await policy_refusal(self.policy, Member.of(interaction), operation, parent)
        if reason is not None:
            raise Refusal(reason)

    async def record(
        self,
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
        return await self.engine.submit(
            operation,
            requester_id=str(interaction.user.id),
            guild_id=optional_str(interaction.guild_id),
            channel_id=optional_str(interaction.channel_id),
            idempotency_key=idempotency_key,
            delivery_hint=hint,
        )

    async def attach(
        self,
        interaction: discord.Interaction[Any],
        job: Job,
        *,
        message_id: int | None = None,
        use_token: bool = False,
    ) -> bool:
        """Bind `job` to its message (None: the publisher posts one); False if already bound."""
        return await self.publisher.attach(
            job,
            channel_id=interaction.channel_id or 0,
            message_id=message_id,
            guild_id=interaction.guild_id,
            interaction=interaction if use_token else None,
            upload_limit=interaction.filesize_limit,
        )

    async def start(
        self,
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
        job = await self.record(
            interaction, operation, idempotency_key=idempotency_key, message_id=message_id
        )
        attached = await self.attach(interaction, job, message_id=message_id, use_token=use_token)
        return job, attached

    async def start_follow_up(
        self, interaction: discord.Interaction[Any], operation: Operation, *, key: str
    ) -> bool:
        """A click's job in its own new message, after the click was acknowledged: a
        refusal or a repeat is told privately. Returns whether the job runs (new or not)."""
        try:
            _, attached = await self.start(interaction, operation, idempotency_key=key)
        except EngineError as exc:
            await interaction.followup.send(exc.error.message, ephemeral=True)
            return False
        except StoreError as exc:
            await answer_storage_error(interaction, exc)
            return False
        if not attached:
            await interaction.followup.send("You already started that one.", ephemeral=True)
        return True

    async def start_public(
        self, interaction: discord.Interaction[Any], operation: Operation
    ) -> None:
        """/imagine's order: store the job, acknowledge with a public "thinking" reply, bind
        the job to that reply. Stored first, so a kill after the acknowledgement finds the job
        at the restart (and the reply's token in its row); never acknowledged before the store
        answers, so a refused or failed store is told privately and nothing is left thinking."""
        key = f"interaction:{interaction.id}"
        recording = asyncio.ensure_future(
            self.record(interaction, operation, idempotency_key=key, keep_reply=True)
        )
        done, _ = await asyncio.wait({recording}, timeout=STORE_BEFORE_ACK_S)
        if not done:
            await self._after_slow_store(interaction, recording)
            return
        try:
            job = recording.result()
        except EngineError as exc:
            raise Refusal(f"❌ {exc.error.message}") from None
        try:
            response = await interaction.response.defer(thinking=True)
        except discord.HTTPException as exc:  # the 3-second window closed meanwhile
            log.warning("job %s: acknowledgement failed (%s); posting its own message", job.id, exc)
            await self.attach(interaction, job)
            return
        try:
            await self.attach(
                interaction,
                job,
                message_id=response.message_id if response else None,
                use_token=True,
            )
        except StoreError:
            with contextlib.suppress(EngineError):
                await self.engine.cancel(job.id)  # unseen, it must not run (or be charged)
            raise

    async def _after_slow_store(
        self, interaction: discord.Interaction[Any], recording: asyncio.Future[Job]
    ) -> None:
        """The store did not answer within the window: a private word now (nothing public that
        could be left thinking), then the job's own message once it is stored, or why not."""
        await interaction.response.send_message(SLOW_STORE, ephemeral=True)
        try:
            job = await recording
        except EngineError as exc:
            await interaction.followup.send(f"❌ {exc.error.message}", ephemeral=True)
            return
        await self.attach(interaction, job)

    async def start_after_private_ack(
        self, interaction: discord.Interaction[Any], operation: Operation, *, what: str
    ) -> Job | None:
        """For commands acknowledged with a private "thinking" reply (their input took long to
        check): start the job in its own public message and say so, or why not, privately."""
        try:
            job, _ = await self.start(
                interaction, operation, idempotency_key=f"interaction:{interaction.id}"
            )
        except EngineError as exc:
            await interaction.edit_original_response(content=f"❌ {exc.error.message}")
            return None
        await interaction.edit_original_response(
            content=f"{what}; the result will appear in this channel (job `{job.id}`)."
        )
        return job

    async def recover_deferred_replies(self, client: discord.Client) -> int:
        """At start, before the publisher resumes: jobs stored before their command's public
        "thinking" reply was bound to them (a kill in between) get that reply back, through
        the interaction token their row kept while it lives; the reply then shows the job.
        Returns how many; the publisher's resume delivers them."""
        now = self.engine.clock.time()
        count = 0
        for job_id in await self._deliveries.jobs_without_delivery(now - REPLY_TOKEN_TTL_S):
            job = await self.engine.get(job_id)
            hint = job.delivery_hint if job is not None else {}
            if job is None or not hint.get("reply_token") or not hint.get("application_id"):
                continue
            # Several processes on PostgreSQL all run this at start: only the lease holder
            # recovers a reply, or two processes would edit it (and race its delivery claim).
            if hint.get("message_id") or not self.engine.holds(job.id):
                continue
            if await self._recover_reply(client, job, hint, now):
                log.info("job %s: its command's reply recovered after a restart", job.id)
                count += 1
        return count

    async def _recover_reply(
        self, client: discord.Client, job: Job, hint: dict[str, Any], now: float
    ) -> bool:
        app_id, token = int(hint["application_id"]), str(hint["reply_token"])
        rendered = render(job, now=now, extra_actions=self.bot_actions(job))
        webhook = discord.Webhook.partial(app_id, token, client=client)
        try:
            # The first edit of a deferred reply is what makes it a message with an id.
            data = await async_context.get().edit_original_interaction_response(
                app_id,
                token,
                session=webhook.session,
                proxy=client.http.proxy,
                proxy_auth=client.http.proxy_auth,
                payload=to_payload(rendered, job.id),
            )
        except discord.HTTPException as exc:
            log.info("job %s: its reply could not be recovered (%s)", job.id, exc.status)
            return False
        # The delivery record only: Publisher.resume, next, delivers every undelivered
        # record once (starting a delivery here too would race it to a second final).
        try:
            return await self._deliveries.claim(
                Delivery(
                    job_id=job.id,
                    channel_id=str(hint.get("channel_id") or job.channel_id or 0),
                    message_id=str(data["id"]),
                    guild_id=hint.get("guild_id"),
                    upload_limit=int(hint.get("upload_limit") or DEFAULT_UPLOAD_LIMIT),
                    created_at=now,
                    updated_at=now,
                )
            )
        except StoreError as exc:  # the job stays stored; its reply is not recovered
            log.warning("job %s: its reply could not be recorded (%s)", job.id, exc)
            return False
