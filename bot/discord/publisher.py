"""Delivers each job's state to its Discord message.

- Coalescing: only the latest state of a job is kept; at most one edit per message per
  `edit_interval`, and none when nothing visible changed.
- The final state is always delivered, with the result uploaded as an attachment
  (provider URLs expire) fitted to the upload limit, and recorded as delivered in the
  store so that a restart neither loses nor repeats it.
- The interaction token is used while it lives; after that (jobs can outlive its 15
  minutes) the bot's own channel edit takes over. A deleted message gets a new one.
- Every write waits for its turn in Discord's buckets (write_queue.py, rate_limits.py):
  finals first, then first states, then progress, round-robin between messages; the
  state rendered is the newest at the moment the turn comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import discord
from discord.http import MultipartParameters
from discord.webhook.async_ import async_context

from bot import media
from bot.clock import Clock
from bot.discord.presenter import (
    RenderedMessage,
    render,
    to_discord_embed,
    to_payload,
    visible_key,
    with_original_link,
)
from bot.discord.rate_limits import RESERVED, BucketLedger, Ticket, Write
from bot.discord.video_delivery import Clip, plan_video_files, with_video_links
from bot.discord.views import job_view
from bot.discord.write_queue import Priority, WriteQueue
from bot.domain import Job, JobStatus
from bot.engine import Engine, JobEvent
from bot.media_fetcher import MediaFetcher
from bot.metrics import Metrics
from bot.store.base import Delivery, DeliveryRepository

log = logging.getLogger(__name__)

# Discord kills interaction tokens after 15 minutes; stop using one a little earlier.
TOKEN_LIFETIME_S = 14 * 60
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
INVALID_WEBHOOK_TOKEN = 50027
UNKNOWN_MESSAGE = 10008
UNKNOWN_WEBHOOK = 10015
REQUEST_TOO_LARGE = 40005
# Consecutive failed deliveries (after discord.py's own retries) before giving up until restart.
MAX_DELIVERY_FAILURES = 5
# Below this an image is not worth uploading; the message links the original instead.
MIN_UPLOAD_BYTES = 64 * 1024
TOKEN_GONE = (INVALID_WEBHOOK_TOKEN, UNKNOWN_WEBHOOK, UNKNOWN_MESSAGE)
# A linked video's still is a small picture beside the link, never what crowds out a video.
STILL_MIN_BYTES = 8 * 1024


@dataclass(eq=False)
class _Target:
    delivery: Delivery
    interaction: discord.Interaction | None = None
    token_deadline: float = 0.0
    latest: Job | None = None
    last_key: tuple[Any, ...] | None = None
    last_edit_at: float = 0.0
    message_lost: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    edits: int = 0
    # The turn given is for the bot's own channel edit, not the interaction's token.
    by_channel: bool = False
    # What the last write showed apart from queue position and elapsed time (priority).
    last_substance: tuple[Any, ...] | None = None
    # When the oldest state change not yet on Discord happened (for the latency metric).
    pending_since: float | None = None


# Builds the final message and its files for one upload limit (retried with less on a 413).
_Builder = Callable[[int], Awaitable[tuple[RenderedMessage, list[discord.File] | None]]]

# Jobs without a delivery record are recovered at start if they are at most this old.
RECOVERY_WINDOW_S = 24 * 3600.0


class Publisher:
    def __init__(
        self,
        *,
        client: discord.Client,
        engine: Engine,
        deliveries: DeliveryRepository,
        clock: Clock,
        fetcher: MediaFetcher,
        edit_interval: float = 1.5,
        follow_up_window: float | None = None,
        extra_actions: Callable[[Job], list[str]] | None = None,
        spoiler: Callable[[Job], Awaitable[bool]] | None = None,
        metrics: Metrics | None = None,
        ledger: BucketLedger | None = None,
    ) -> None:
        self._client = client
        # Without the app's ledger (hooked into discord.py's session) turns are never held.
        self._ledger = ledger or BucketLedger()
        self._queue = WriteQueue(self._ledger)
        self._metrics = metrics
        self._engine = engine
        self._deliveries = deliveries
        self._clock = clock
        self._edit_interval = edit_interval
        # The bot's one media client (result images, videos); the bot closes it.
        self._fetcher = fetcher
        self._follow_up_window = follow_up_window
        self._extra_actions = extra_actions or (lambda job: [])
        # Whether a result goes out as a spoiler (the server's rule; see app.py).
        self._spoiler = spoiler
        self._targets: dict[str, _Target] = {}
        engine.subscribe(self._on_event)

    async def close(self) -> None:
        tasks = [t.task for t in self._targets.values() if t.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- binding jobs to messages -----------------------------------------------------------

    async def attach(
        self,
        job: Job,
        *,
        channel_id: int,
        message_id: int | None,
        guild_id: int | None,
        interaction: discord.Interaction | None = None,
        upload_limit: int | None = None,
    ) -> bool:
        """Show `job` in a message from now on. False if the job already has a message."""
        now = self._clock.time()
        delivery = Delivery(
            job_id=job.id,
            channel_id=str(channel_id),
            message_id=str(message_id) if message_id else None,
            guild_id=str(guild_id) if guild_id else None,
            upload_limit=upload_limit or DEFAULT_UPLOAD_LIMIT,
            created_at=now,
            updated_at=now,
        )
        if job.id in self._targets or not await self._deliveries.claim(delivery):
            return False
        target = _Target(delivery=delivery, interaction=interaction, latest=job, pending_since=now)
        self._ledger.register_channel(channel_id, guild_id)
        if interaction is not None:
            target.token_deadline = now + TOKEN_LIFETIME_S
            self._ledger.register_interaction(interaction.token, channel_id, guild_id)
        self._start(target)
        # The job may have moved on while we were claiming: show its newest state.
        current = await self._engine.get(job.id)
        if current is not None:
            target.latest = current
        target.wake.set()
        return True

    async def resume(self) -> int:
        """After a restart: keep delivering every job whose final state is not shown yet."""
        count = 0
        for delivery in await self._deliveries.list_undelivered():
            if not self._engine.holds(delivery.job_id):
                continue  # another process's job: only the lease holder edits its message
            job = await self._engine.get(delivery.job_id)
            if job is None or delivery.job_id in self._targets:
                continue
            target = _Target(delivery=delivery, latest=job)
            self._start(target)
            target.wake.set()
            count += 1
        # Killed after a job was stored but before its delivery was: the job's own hint
        # says where its message is (only recent jobs: the interaction's message lasts).
        since = self._clock.time() - RECOVERY_WINDOW_S
        for job_id in await self._deliveries.jobs_without_delivery(since):
            if not self._engine.holds(job_id):
                continue
            job = await self._engine.get(job_id)
            if job is None or job.id in self._targets or not job.delivery_hint:
                continue
            hint = job.delivery_hint
            message_id = hint.get("message_id")
            if await self.attach(
                job,
                channel_id=int(hint.get("channel_id") or job.channel_id or 0),
                message_id=int(message_id) if message_id else None,
                guild_id=int(hint["guild_id"]) if hint.get("guild_id") else None,
                upload_limit=hint.get("upload_limit"),
            ):
                log.info("job %s: delivery recovered from the job's own record", job.id)
                count += 1
        return count

    def writes_waiting_by_bucket(self) -> dict[str, int]:
        return self._queue.waiting_by_bucket()

    def drop(self, job_id: str) -> None:
        """Stop showing a job whose lease was lost: its new holder edits the message."""
        target = self._targets.get(job_id)
        if target is not None and target.task is not None:
            target.task.cancel()

    def edits_sent(self, job_id: str) -> int | None:
        target = self._targets.get(job_id)
        return target.edits if target else None

    # --- the delivery loop --------------------------------------------------------------------

    def _on_event(self, event: JobEvent) -> None:
        target = self._targets.get(event.job.id)
        if target is None:
            return
        target.latest = event.job
        if target.pending_since is None:
            target.pending_since = self._clock.time()
        target.wake.set()

    def _start(self, target: _Target) -> None:
        self._targets[target.delivery.job_id] = target
        target.task = asyncio.create_task(
            self._run(target), name=f"publish-{target.delivery.job_id}"
        )

    async def _run(self, target: _Target) -> None:
        job_id = target.delivery.job_id
        failures = 0
        try:
            while True:
                await target.wake.wait()
                # Coalesce: let changes pile up for the rest of the interval; the newest wins.
                wait = target.last_edit_at + self._edit_interval - self._clock.time()
                if wait > 0:
                    await self._clock.sleep(wait)
                target.wake.clear()
                try:
                    if await self._step(target):
                        return
                    failures = 0
                except (discord.HTTPException, OSError, TimeoutError) as exc:
                    failures += 1
                    if failures > MAX_DELIVERY_FAILURES:
                        raise
                    # discord.py already retried 429s and 5xx; wait longer before the next try.
                    delay = min(60.0, 2.0**failures)
                    log.warning(
                        "job %s: Discord edit failed (%s); retrying in %.0fs", job_id, exc, delay
                    )
                    await self._clock.sleep(delay)
                    target.wake.set()
        except asyncio.CancelledError:
            raise
        except Exception:
            # Left undelivered in the store: the next start tries again.
            log.exception("job %s: delivering to Discord failed", job_id)
        finally:
            self._targets.pop(job_id, None)

    async def _step(self, target: _Target) -> bool:
        """Show the newest state if it changed anything visible; True once the final is out."""
        job = target.latest
        if job is None:
            return False
        # This step shows every change so far; later ones start a new latency clock.
        since, target.pending_since = target.pending_since, None
        try:
            if job.is_terminal:
                await self._deliver_final(target, job)
                self._observe_latency(since)
                return True
            if self._unchanged(target, self._render(job)):
                return False
            async with self._turn(target):
                job = target.latest or job
                if not self._engine.holds(job.id):
                    log.info("job %s: no longer leased here; its new holder shows it", job.id)
                    return True
                if job.is_terminal:  # ended while waiting: the final goes next round
                    target.pending_since = since
                    target.wake.set()
                    return False
                rendered = self._render(job)
                if self._unchanged(target, rendered):
                    return False
                await self._edit(target, rendered, files=None)
                target.last_key = visible_key(rendered)
                target.last_substance = _substance(job)
                self._observe_latency(since)
        except BaseException:
            if target.pending_since is None:
                target.pending_since = since  # not shown yet: keep counting from then
            raise
        return False

    def _unchanged(self, target: _Target, rendered: RenderedMessage) -> bool:
        return target.message_lost or visible_key(rendered) == target.last_key

    @contextlib.asynccontextmanager
    async def _turn(self, target: _Target) -> AsyncIterator[Ticket]:
        """Wait for this message's turn in Discord's buckets; the write made inside goes
        out on the room reserved for it (rate_limits.RESERVED)."""
        ticket = await self._queue.turn(
            target, lambda: self._write_for(target), lambda: self._rank(target)
        )
        target.by_channel = ticket.write.bot_token
        reset = RESERVED.set(ticket)
        try:
            yield ticket
        finally:
            RESERVED.reset(reset)
            self._ledger.release(ticket)  # nothing if the write went out

    def _write_for(self, target: _Target) -> tuple[Write, ...]:
        """The requests this message's next write may be, as far as limits go: through
        the interaction's token while it lives (exempt from the global limit), or the
        bot's own channel edit (not in the guild's webhook bucket) when the first is full."""
        delivery = target.delivery
        editing = delivery.message_id is not None and not target.message_lost
        by_channel = self._ledger.channel_write(
            "PATCH" if editing else "POST", delivery.channel_id, message=editing
        )
        if self._token_alive(target):
            assert target.interaction is not None
            by_token = self._ledger.webhook_write("PATCH", target.interaction.token, message=True)
            return (by_token, by_channel) if editing else (by_token,)
        return (by_channel,)

    def _token_alive(self, target: _Target) -> bool:
        return target.interaction is not None and self._clock.time() < target.token_deadline

    def _rank(self, target: _Target) -> tuple[Priority, float]:
        """Whose write goes first (write_queue.py): finals by when their job ended, the
        rest round-robin by their message's last write."""
        job = target.latest
        if job is None or job.is_terminal:
            ended = job.finished_at if job is not None else None
            return Priority.FINAL, ended or target.last_edit_at
        if target.edits == 0:
            return Priority.FIRST, target.delivery.created_at
        if target.last_substance != _substance(job):
            return Priority.PROGRESS, target.last_edit_at
        return Priority.COSMETIC, target.last_edit_at

    def _observe_latency(self, since: float | None) -> None:
        if self._metrics is not None and since is not None:
            self._metrics.edit_latency.observe(self._clock.time() - since)

    def _render(self, job: Job) -> RenderedMessage:
        mention = f"<@{job.requester_id}>" if job.requester_id else None
        return render(
            job,
            now=self._clock.time(),
            requester_mention=mention,
            follow_up_window=self._follow_up_window,
            extra_actions=self._extra_actions(job) if job.status is JobStatus.COMPLETED else [],
        )

    async def _deliver_final(self, target: _Target, job: Job) -> None:
        base = self._render(job)
        limit = target.delivery.upload_limit
        build = (
            await self._video_builder(job, base, limit)
            if job.is_video and job.videos and job.status is JobStatus.COMPLETED
            else await self._image_builder(job, base)
        )
        while True:
            rendered, files = await build(limit)
            try:
                async with self._turn(target):
                    # One editor per message: only the lease holder posts the final.
                    if not self._engine.holds(job.id):
                        log.info("job %s: not leased here; its final is left to its holder", job.id)
                        return
                    await self._edit(target, rendered, files=files, final=True)
                break
            except discord.HTTPException as exc:
                if exc.code != REQUEST_TOO_LARGE or files is None:
                    raise
                # Discord's real limit is below what the interaction reported: halve it.
                # Past MIN_UPLOAD_BYTES the message goes out with the link alone.
                limit //= 2
                target.delivery.upload_limit = limit
                log.info(
                    "job %s: upload refused as too large; retrying within %d bytes", job.id, limit
                )
        target.delivery.final_delivered_at = self._clock.time()
        target.delivery.updated_at = target.delivery.final_delivered_at
        # A fenced write when processes share the database: the lease holder's alone.
        if not await self._engine.record_final(target.delivery, self._deliveries):
            log.warning("job %s: final shown; the lease was lost before it was recorded", job.id)
            return
        log.info("job %s: final state delivered after %d edit(s)", job.id, target.edits)

    async def _image_builder(self, job: Job, base: RenderedMessage) -> _Builder:
        """The result image, fetched once, fitted anew for each limit tried."""
        original: bytes | None = None
        if base.image is not None and base.image.kind == "result":
            original = await self._result_bytes(job)
        prefix = "SPOILER_" if original is not None and await self._spoilered(job) else ""

        async def build(limit: int) -> tuple[RenderedMessage, list[discord.File] | None]:
            files: list[discord.File] | None = None
            rendered = base
            fitted = None
            if original is not None and limit >= MIN_UPLOAD_BYTES:
                fitted = await self._fit(job, original, limit)
                if fitted is not None:
                    filename = prefix + fitted.filename
                    files = [discord.File(io.BytesIO(fitted.data), filename=filename)]
                    rendered = base.with_attachment(filename)
            if job.result_url and (fitted is None or fitted.reencoded):
                rendered = with_original_link(rendered, job.result_url)
            return rendered, files

        return build

    async def _video_builder(self, job: Job, base: RenderedMessage, limit: int) -> _Builder:
        """The MP4s, each fetched once up to `limit` bytes; per limit tried, as many as fit
        are uploaded and the rest linked with their stills (video_delivery.py)."""
        clips = await self.video_clips(job, limit)
        prefix = "SPOILER_" if await self._spoilered(job) else ""

        async def build(room: int) -> tuple[RenderedMessage, list[discord.File] | None]:
            plan = plan_video_files(clips, room, stem=f"mj_{job.id}", prefix=prefix)
            rendered = with_video_links(base, plan.linked)
            files = [discord.File(io.BytesIO(data), filename=name) for name, data in plan.uploads]
            return rendered, files or None

        return build

    async def video_message(
        self, job: Job, rendered: RenderedMessage, limit: int, *, spoiler: bool
    ) -> tuple[RenderedMessage, list[discord.File]]:
        """A video job's message and files within `limit` (for re-posting it: /job show)."""
        clips = await self.video_clips(job, limit)
        prefix = "SPOILER_" if spoiler else ""
        plan = plan_video_files(clips, limit, stem=f"mj_{job.id}", prefix=prefix)
        files = [discord.File(io.BytesIO(data), filename=name) for name, data in plan.uploads]
        return with_video_links(rendered, plan.linked), files

    async def video_clips(self, job: Job, limit: int) -> list[Clip]:
        """Every video of `job` downloaded within `limit` bytes (None where it is larger or
        failed), each with its still, made small (uploaded for the videos only linked)."""
        clips = []
        for n, video in enumerate(job.videos, start=1):
            data = await self._download_video(job, video.url, limit)
            cover = await self._download(job, video.cover) if video.cover else None
            if cover is not None:
                fitted = await self._fit(job, cover, max(STILL_MIN_BYTES, limit // 16))
                cover = fitted.data if fitted is not None else None
            clips.append(Clip(n, video, data, cover))
        return clips

    async def _download_video(self, job: Job, url: str, limit: int) -> bytes | None:
        try:
            return await self._fetcher.fetch_video(url, max_bytes=limit)
        except media.TooLargeError:
            log.info(
                "job %s: a video is larger than the %d-byte upload room; linked", job.id, limit
            )
            return None
        except media.MediaError as exc:
            log.warning("job %s: video not fetched: %s", job.id, exc.message)
            return None

    async def _spoilered(self, job: Job) -> bool:
        if self._spoiler is None:
            return False
        try:
            return await self._spoiler(job)
        except Exception:  # the rule must never stop a delivery
            log.exception("job %s: spoiler rule failed", job.id)
            return False

    async def fitted_result(self, job: Job, limit: int) -> media.FittedImage | None:
        """The job's result image fitted within `limit` bytes, or None if it cannot be had
        (provider links expire after some days). For re-posting a job (/job show)."""
        data = await self._result_bytes(job)
        return await self._fit(job, data, limit) if data is not None else None

    async def _result_bytes(self, job: Job) -> bytes | None:
        """The result image: the provider's own, or its four tiles put back into a grid
        (Vtrix returns only the tiles)."""
        if job.result_url:
            return await self._download(job, job.result_url)
        if not job.tiles or len(job.tiles) != 4:
            return None
        tiles = await asyncio.gather(*(self._download(job, url) for url in job.tiles))
        if any(t is None for t in tiles):
            return None
        try:
            return await asyncio.to_thread(media.compose_grid, [t for t in tiles if t])
        except media.MediaError as exc:
            log.warning("job %s: tiles not put together: %s", job.id, exc.message)
            return None

    async def _download(self, job: Job, url: str) -> bytes | None:
        try:
            data = await self._fetcher.fetch_image(url)
            tile = job.provider_data.get("crop_tile")
            if isinstance(tile, int) and 1 <= tile <= 4:
                # A tile picked from a grid whose single images the provider did not give.
                data = await asyncio.to_thread(media.crop_tile, data, tile)
            return data
        except media.MediaError as exc:
            log.warning("job %s: result image not fetched: %s", job.id, exc.message)
            return None

    async def _fit(self, job: Job, data: bytes, limit: int) -> media.FittedImage | None:
        try:
            # Pillow work off the event loop.
            return await asyncio.to_thread(
                media.fit_to_limit, data, limit, filename_stem=f"mj_{job.id}"
            )
        except media.MediaError as exc:
            log.warning("job %s: result image not uploaded: %s", job.id, exc.message)
            return None

    # --- talking to Discord -------------------------------------------------------------------

    async def _edit(
        self,
        target: _Target,
        rendered: RenderedMessage,
        *,
        files: list[discord.File] | None,
        final: bool = False,
    ) -> None:
        job_id = target.delivery.job_id
        # Progress edits, nearly all of them, go out as a ready JSON body (to_payload: the
        # same bytes discord.py would send, minus building its View, Embed and Message
        # objects). The final edit (uploads) and new messages keep discord.py's full path.
        message = (
            _Message(
                json=to_payload(rendered, job_id, default_mentions=self._client.allowed_mentions)
            )
            if files is None and not final
            else _Message(kwargs=_message_kwargs(rendered, job_id, files))
        )
        target.last_edit_at = self._clock.time()
        target.edits += 1
        if self._token_alive(target) and not target.by_channel:
            assert target.interaction is not None
            try:
                if message.json is not None:
                    await _edit_original_response_json(target.interaction, message.json)
                else:
                    await target.interaction.edit_original_response(**message.kwargs)
                self._count_edit()
                return
            except discord.HTTPException as exc:
                # A dead token (or a deleted message): the channel edit below decides.
                if exc.status != 401 and exc.code not in TOKEN_GONE:
                    raise
                log.info("job %s: interaction token no longer usable; editing by channel", job_id)
                target.interaction = None
                _rewind(files)
        await self._edit_by_channel(target, rendered, message, final=final, files=files)
        self._count_edit()

    def _count_edit(self) -> None:
        if self._metrics is not None:
            self._metrics.discord_edits.inc()

    async def _edit_by_channel(
        self,
        target: _Target,
        rendered: RenderedMessage,
        message: _Message,
        *,
        final: bool,
        files: list[discord.File] | None,
    ) -> None:
        channel = self._client.get_partial_messageable(int(target.delivery.channel_id))
        if target.delivery.message_id and not target.message_lost:
            message_id = int(target.delivery.message_id)
            try:
                if message.json is not None:
                    await _edit_message_json(self._client, channel.id, message_id, message.json)
                else:
                    await channel.get_partial_message(message_id).edit(**message.kwargs)
                return
            except discord.NotFound:
                log.info("job %s: its message was deleted", target.delivery.job_id)
                target.message_lost = True
                _rewind(files)
        if not final and target.message_lost:
            return  # no new message for every step; the final state gets one
        send_kwargs = dict(
            message.kwargs or _message_kwargs(rendered, target.delivery.job_id, files)
        )
        attachments = send_kwargs.pop("attachments", None)
        if attachments:
            send_kwargs["files"] = attachments
        sent = await channel.send(**send_kwargs)
        target.message_lost = False
        target.delivery.message_id = str(sent.id)
        target.delivery.updated_at = self._clock.time()
        await self._deliveries.save(target.delivery)


def _substance(job: Job) -> tuple[Any, ...]:
    """What a write shows apart from the queue position and the elapsed time."""
    return (job.status, job.progress, job.preview_url, job.result_url)


@dataclass(frozen=True)
class _Message:
    """One edit, either as discord.py keyword arguments or as the finished JSON body."""

    kwargs: dict[str, Any] = field(default_factory=dict)
    json: dict[str, Any] | None = None


def _message_kwargs(
    rendered: RenderedMessage, job_id: str, files: list[discord.File] | None
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "content": rendered.content,
        "embed": to_discord_embed(rendered.embed) if rendered.embed else None,
        "view": job_view(rendered.buttons, job_id),
        # Ping the requester, nobody else, whatever the prompt contains.
        "allowed_mentions": discord.AllowedMentions(
            everyone=False,
            roles=False,
            users=[discord.Object(uid) for uid in rendered.mention_user_ids],
        ),
    }
    if files is not None:
        kwargs["attachments"] = files
    return kwargs


# The two lean edits below are what discord.py's own `Interaction.edit_original_response`
# and `PartialMessage.edit` do once their JSON body is built (interactions.py, message.py,
# discord.py 2.7), without building the body from objects or a Message from the reply.
# They go through the same adapter / HTTP client, so 429 handling and the
# HTTPException / NotFound / Forbidden they raise are unchanged. The View is not needed
# for clicks: JobButton is a DynamicItem registered on the bot (app.py), dispatched from
# the custom id alone. A discord.py upgrade should only need a look here.


async def _edit_original_response_json(
    interaction: discord.Interaction[Any], payload: dict[str, Any]
) -> None:
    """PATCH the interaction's @original message with a ready JSON body."""
    adapter = async_context.get()
    http = interaction.client.http
    await adapter.edit_original_interaction_response(
        interaction.application_id,
        interaction.token,
        # Private: the HTTP client's aiohttp session, as edit_original_response uses it.
        session=interaction._session,
        proxy=http.proxy,
        proxy_auth=http.proxy_auth,
        payload=payload,
    )


async def _edit_message_json(
    client: discord.Client, channel_id: int, message_id: int, payload: dict[str, Any]
) -> None:
    """PATCH a channel message with a ready JSON body (the bot's own token)."""
    params = MultipartParameters(payload=payload, multipart=None, files=None)
    await client.http.edit_message(channel_id, message_id, params=params)


def _rewind(files: list[discord.File] | None) -> None:
    for file in files or []:
        with contextlib.suppress(Exception):
            file.reset()
