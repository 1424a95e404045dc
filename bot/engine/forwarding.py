"""What a process does with a webhook or a cancel for a job it does not hold (issue 17).

Several processes share one PostgreSQL; each job is run by the holder of its lease. A
provider's post may land on any process, and a member's /job cancel on the process whose
shard holds the member's guild. Here:

- a post or cancel for a job another live process holds is stored in the inbox
  (`bot.store.pg_inbox`) and its owner woken by NOTIFY; the owner takes its rows (each
  once), parses posts with the provider's own push parser and ingests them, and applies
  cancels, answering on a NOTIFY the asking process waits for (bounded);
- one for a job whose lease lapsed (its owner died or froze) is stored as well, and this
  process takes the job over through the lease keeper's usual claim (fenced, epoch + 1),
  whose adoption shows the job and takes its rows;
- every process also takes its rows every `drain_s`, for a notification that was lost.

With SQLite (one process) none of this exists: the engine answers everything itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from bot import redaction
from bot.domain import ErrorCode, Job, JobError, ProviderSnapshot
from bot.engine.core import Engine, EngineError, PushOutcome
from bot.engine.leases import LeaseKeeper
from bot.providers.base import PushProvider
from bot.store.base import JobRepository, StoreError
from bot.store.pg_inbox import ANSWER_CHANNEL, CANCEL, INBOX_CHANNEL, PUSH, InboxItem, PgInbox

log = logging.getLogger(__name__)

ForwardOutcome = PushOutcome | Literal["forwarded"]
DRAIN_S = 5.0  # the fallback look for rows whose NOTIFY was lost
CANCEL_WAIT_S = 5.0  # how long a member's cancel waits for the owner's answer
NOT_CONFIRMED = (
    "The process of the bot that runs this job did not confirm the cancel in time. "
    "The cancel is recorded and will be applied as soon as that process (or the one "
    "taking the job over) gets to it."
)

Listen = Callable[[str, Callable[[str], None]], Awaitable[bool]]
DeadOwners = Callable[[list[str]], list[str]]


class Forwarder:
    def __init__(
        self,
        engine: Engine,
        keeper: LeaseKeeper,
        inbox: PgInbox,
        jobs: JobRepository,
        provider: PushProvider | None,
        *,
        dead_owners: DeadOwners,
        drain_s: float = DRAIN_S,
        cancel_wait_s: float = CANCEL_WAIT_S,
    ) -> None:
        self._engine = engine
        self._keeper = keeper
        self._inbox = inbox
        self._jobs = jobs
        self._provider = provider
        self._dead_owners = dead_owners
        self._drain_s = drain_s
        self._cancel_wait_s = cancel_wait_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._answers: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._draining = asyncio.Lock()

    # --- life cycle ------------------------------------------------------------------------

    async def start(self, listen: Listen) -> None:
        """Listen for rows addressed to us and for cancel answers; start the periodic look."""
        try:
            listening = await listen(INBOX_CHANNEL, self._notified)
            listening = await listen(ANSWER_CHANNEL, self._answered) and listening
        except (StoreError, OSError) as exc:
            listening = False
            log.warning("inbox notifications unavailable (%s)", exc)
        if not listening:
            log.warning("inbox notifications off; looking every %.0fs instead", self._drain_s)
        # Jobs adopted from another process may have rows waiting: take them at once.
        self._engine.on_adopted(lambda jobs: self._wake.set())
        self._task = asyncio.create_task(self._loop(), name="inbox")
        self._wake.set()  # rows left for the jobs claimed at start

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _notified(self, owner: str) -> None:
        if owner == self._inbox.owner:
            self._wake.set()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):  # not wait_for: see LeaseKeeper._loop
                async with asyncio.timeout(self._drain_s):
                    await self._wake.wait()
            periodic = not self._wake.is_set()
            self._wake.clear()
            try:
                await self.drain()
                if periodic:
                    await self._inbox.sweep()
            except StoreError as exc:  # the rows stay; the next look takes them
                log.warning("inbox not read (%s); retrying", exc)
            except Exception:
                log.exception("inbox reading failed unexpectedly")

    # --- a provider's post -----------------------------------------------------------------

    async def push(self, body: Any, snapshot: ProviderSnapshot) -> ForwardOutcome:
        """A post the engine did not know (no job of ours has its ref): forward or adopt it.
        Returns once the post is stored or applied (the provider's 2xx comes after)."""
        if self._provider is None:
            return "unknown_job"
        job = await self._jobs.get_by_provider_ref(self._provider.name, snapshot.ref)
        if job is None:
            return "unknown_job"
        if job.status.is_terminal:
            return "duplicate"
        # The body may echo the callback URL (its path token) or the secret: never stored.
        payload = redaction.scrub(json.dumps(body))
        placed = await self._inbox.put(job.id, PUSH, self._provider.name, payload)
        if placed.ended:
            return "duplicate"
        if not placed.stored:  # ours after all (it just ended here, or was never resumed)
            return "unknown_job"
        if placed.live and not self._dead(placed.owner):
            return "forwarded"
        await self._take_over(job.id)
        return "forwarded"

    def _dead(self, owner: str | None) -> bool:
        return owner is not None and bool(self._dead_owners([owner]))

    async def _take_over(self, job_id: str) -> None:
        """The job's owner is gone: claim what is free (this job among it) and apply its rows."""
        await self._keeper.tick(renew=False, scan=True)
        if self._engine.holds(job_id):
            await self.drain()

    # --- a member's cancel -----------------------------------------------------------------

    async def cancel(self, job_id: str) -> Job:
        """`Engine.cancel`, also for a job another process runs: the owner is asked, and
        its answer awaited for `cancel_wait_s`; past that, EngineError(NOT_CONFIRMED)."""
        if self._engine.holds(job_id):  # ours: the engine knows it (running or ended)
            return await self._engine.cancel(job_id)
        stored = await self._jobs.get(job_id)
        if stored is None or stored.status.is_terminal:
            return await self._engine.cancel(job_id)  # its own answers: no such job, ended
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._answers.setdefault(job_id, []).append(answer)
        try:
            placed = await self._inbox.put(job_id, CANCEL, "", "{}")
            if not placed.stored:
                return await self._engine.cancel(job_id)
            if not placed.live or self._dead(placed.owner):
                await self._take_over(job_id)
            async with asyncio.timeout(self._cancel_wait_s):
                said = await answer
        except TimeoutError:
            raise EngineError(JobError(ErrorCode.INVALID_REQUEST, NOT_CONFIRMED)) from None
        finally:
            self._forget_answer(job_id, answer)
        error = said.get("error")
        if isinstance(error, dict):
            raise EngineError(JobError.from_dict(error))
        return await self._jobs.get(job_id) or stored

    def _forget_answer(self, job_id: str, answer: asyncio.Future[dict[str, Any]]) -> None:
        waiting = self._answers.get(job_id, [])
        if answer in waiting:
            waiting.remove(answer)
        if not waiting:
            self._answers.pop(job_id, None)

    def _answered(self, payload: str) -> None:
        try:
            said = json.loads(payload)
        except ValueError:
            return
        if isinstance(said, dict):
            self._resolve(str(said.get("job_id")), said)

    def _resolve(self, job_id: str, said: dict[str, Any]) -> None:
        for answer in self._answers.get(job_id, []):
            if not answer.done():
                answer.set_result(said)

    # --- the owner's side ------------------------------------------------------------------

    async def drain(self) -> int:
        """Take and apply the rows of every job held here; returns how many were taken."""
        async with self._draining:  # one reader here at a time; other processes skip locked
            items = await self._inbox.take(self._keeper.leases.held())
            for item in items:
                try:
                    await self._apply(item)
                except Exception:  # taken already: the next rows must still be applied
                    log.exception("job %s: forwarded %s not applied", item.job_id, item.kind)
            return len(items)

    async def _apply(self, item: InboxItem) -> None:
        if item.kind == CANCEL:
            await self._apply_cancel(item.job_id)
            return
        if self._provider is None:
            log.warning("job %s: a forwarded webhook dropped (push mode is off)", item.job_id)
            return
        body = json.loads(item.payload)
        snapshot = self._provider.parse_push(body)
        if snapshot is None:
            return
        operation = self._engine.operation_for_ref(snapshot.ref)
        if operation is not None:
            snapshot = self._provider.parse_push(body, operation=operation)
            assert snapshot is not None
        outcome = await self._engine.ingest_outcome(snapshot)
        log.info(
            "job %s: webhook forwarded by another process applied (%s, %.0f ms after it came)",
            item.job_id,
            outcome,
            max(0.0, time.time() - item.received_at) * 1000,
        )

    async def _apply_cancel(self, job_id: str) -> None:
        answer: dict[str, Any] = {}
        try:
            job = await self._engine.cancel(job_id)
            answer["status"] = job.status.value
            log.info("job %s: cancel forwarded by another process applied", job_id)
        except EngineError as exc:
            answer["error"] = exc.error.to_dict()
        self._resolve(job_id, {"job_id": job_id, **answer})  # a member who asked here
        await self._inbox.answer(job_id, answer)


async def start_forwarding(engine: Engine, store: object, provider: object) -> Forwarder | None:
    """The forwarder of a process sharing PostgreSQL with others (started), else None.

    `provider` reads forwarded webhooks: the push provider in push mode, else None."""
    from bot.store.postgres import PostgresStore, dead_on_this_host

    if engine.keeper is None or not isinstance(store, PostgresStore):
        return None
    forwarder = Forwarder(
        engine,
        engine.keeper,
        PgInbox(store.db, store.leases.owner),
        store.jobs,
        provider if isinstance(provider, PushProvider) else None,
        dead_owners=dead_on_this_host,
    )
    await forwarder.start(store.leases.listen_to)
    return forwarder
