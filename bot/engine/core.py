"""The job engine: owns every job from request to terminal state.

Promises (DESIGN.md invariants 1, 2, 4):
- A job is stored before its submission is sent, and marked as "being submitted" in
  the store first. A restart that finds such a mark does not send it again: the
  outcome is unknown, and a second send could charge the account twice.
- Every job ends: completed, failed with a reason, cancelled, or timed out when its
  progress stalls (the deadline restarts on every visible change) or it runs too long.
- On start, every job that was in flight is picked up again from the store.

One scheduler (a timer heap) wakes jobs for polling; provider slots are shared fairly
between requesters; "job changed" events go to subscribers after each change. A change of
status is persisted before its event; progress alone is kept in memory and written at most
every `progress_save_interval_s` (a restart's first poll brings it back), which turns a
dozen writes per job into two or three.
The engine knows nothing of Discord.

Push mode: `ingest()` takes a provider's own report of a job (a webhook), applies it exactly
as a poll would, and never moves a job backwards (duplicate and out-of-order posts change
nothing). Polling stays on as a slow safety net (`push_safety_poll_s`) so that a lost
webhook never strands a job.

Work per event is O(1) or O(log n) in the number of jobs: in-flight jobs are counted, not
recounted; queue positions are recomputed only when the queue changed, and beyond the first
`QUEUE_EXACT_POSITIONS` places a job's shown position is refreshed in coarse steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from bot.accounts.pool import Account, AccountPool
from bot.clock import Clock, SystemClock
from bot.domain import (
    ErrorCode,
    Job,
    JobError,
    JobStatus,
    Operation,
    ProviderSnapshot,
    new_job_id,
)
from bot.engine.fair_queue import FairQueue
from bot.engine.leases import LeaseKeeper, LeaseSettings
from bot.engine.live import LiveJob, LiveJobs
from bot.engine.scheduler import TimerHeap
from bot.engine.shared_queue import DISPATCH_PERIOD_S, SharedDispatch, shared_queue_of
from bot.providers.base import (
    NotFoundError,
    ParentTooOldError,
    Provider,
    ProviderError,
    RateLimitedError,
    SubmitOutcomeUnknownError,
    UnsupportedOperationError,
)
from bot.store.base import (
    ClaimedJob,
    Delivery,
    DeliveryRepository,
    JobLeases,
    JobRepository,
    LeaseLostError,
)

if TYPE_CHECKING:
    from bot.metrics import Metrics

log = logging.getLogger(__name__)

EventKind = Literal["created", "changed"]
# What became of one pushed report (the webhook receiver counts these).
PushOutcome = Literal["accepted", "duplicate", "stale", "unknown_job"]

# Queue positions 1..N are always shown exactly; further back, a job's shown position is
# refreshed only when it is off by more than a tenth (bounds events on long queues).
QUEUE_EXACT_POSITIONS = 50
# Longer queues have their positions recomputed (O(queue)) at most once per this many
# seconds instead of on every change; shorter ones at once.
QUEUE_SYNC_LIMIT = 200
QUEUE_REFRESH_S = 1.0
_POSITIONS_TIMER = "\x00queue-positions"  # a timer key no job id can take
_PROBE_TIMER = "\x00account-probe"  # set-aside accounts are probed when it fires
_DISPATCH_TIMER = "\x00shared-dispatch"  # the periodic dispatch of a shared store
# Looking for a queued job some account can take now stops after this many (bounded work
# per dispatch when every account with room is one the waiting jobs cannot use).
PUMP_SCAN_LIMIT = 500
# Refs of recently finished jobs, so that late webhooks for them count as duplicates.
RECENT_REFS = 4096
_STATUS_RANK = {
    JobStatus.QUEUED: 0,
    JobStatus.SUBMITTED: 1,
    JobStatus.RUNNING: 2,
}


@dataclass(frozen=True, slots=True)
class JobEvent:
    kind: EventKind
    job: Job  # a copy: listeners cannot change the engine's record
    previous_status: JobStatus | None


JobListener = Callable[[JobEvent], None]


@dataclass(frozen=True, slots=True)
class EngineSettings:
    max_concurrent_jobs: int = 3
    # Polling: the interval adapts to how often the provider's state actually changes.
    poll_initial_s: float = 3.0
    poll_min_s: float = 1.0
    poll_max_s: float = 15.0
    stall_timeout_s: float = 600.0
    max_duration_s: float = 3600.0
    # A provider that loses a task just after creating it is given this long to find it.
    not_found_grace_s: float = 60.0
    # Submissions refused for transient reasons (429, 5xx, no connection) are retried for
    # this long: 5, 10, 20, 30, 30 s... then given up, so an outage ends a job in about two
    # minutes instead of reading as a long queue (issue 15 item 1).
    submit_retry_window_s: float = 120.0
    submit_retry_base_s: float = 5.0
    submit_retry_max_s: float = 30.0
    max_parallel_requests: int = 8
    # Push mode: providers report changes themselves; each job is still polled this often.
    push_mode: bool = False
    push_safety_poll_s: float = 60.0
    # A change of progress or preview alone is written to the store at most this often per
    # job (status changes and endings always are). After a restart the first poll brings
    # the progress back anyway; what the store must not fall far behind on is the time of
    # the last change, which the stall deadline reads, so keep this well below
    # `stall_timeout_s`. Most jobs end before it elapses: one write instead of a dozen.
    progress_save_interval_s: float = 60.0


class EngineError(Exception):
    """A request the engine refuses before anything is sent (message is for users)."""

    def __init__(self, error: JobError) -> None:
        super().__init__(error.message)
        self.error = error


class Engine:
    def __init__(
        self,
        provider: Provider,
        jobs: JobRepository,
        *,
        clock: Clock | None = None,
        settings: EngineSettings | None = None,
        metrics: Metrics | None = None,
        leases: JobLeases | None = None,
        lease_settings: LeaseSettings | None = None,
    ) -> None:
        self.metrics = metrics
        self.jobs = jobs
        self.clock = clock or SystemClock()
        self.settings = settings or EngineSettings()
        # The accounts jobs go to; a bare provider is today's single account.
        self.pool = (
            provider
            if isinstance(provider, AccountPool)
            else AccountPool.single(provider, limit=self.settings.max_concurrent_jobs)
        )
        # Requests go through the pool, which forwards each to the job's own account.
        self.provider: Provider = self.pool
        if metrics is not None:
            register_account_gauges(metrics, self.pool)
        self._init_bookkeeping()
        # Several processes on one database: jobs are ours only while we hold their lease.
        self._adopted: list[Callable[[list[Job]], None]] = []
        self._lost: list[Callable[[str], None]] = []
        self._lease_users: list[Callable[[str], bool]] = []
        self.keeper: LeaseKeeper | None = (
            LeaseKeeper(
                leases,
                lease_settings or LeaseSettings(),
                adopt=self._adopt,
                lose=self._drop,
                needed=self._lease_needed,
            )
            if leases is not None
            else None
        )
        # PostgreSQL: one account limit and one members' queue for every process.
        self._shared = self._shared_dispatch(leases)

    def _shared_dispatch(self, leases: JobLeases | None) -> SharedDispatch | None:
        queue = shared_queue_of(leases)
        if queue is None:
            return None
        return SharedDispatch(
            queue,
            limits=lambda: {a.name: a.limit for a in self.pool.accounts},
            place=self._shared_place,
            start=self._start_granted,
            show=self._show_positions,
            spawn=self._spawn,
            waiting=lambda: len(self._queue) > 0,
        )

    def _init_bookkeeping(self) -> None:
        """The engine's in-memory state, empty: what is queued, polled, timed and unsaved."""
        # Every non-terminal job, one record each (poll pace, retries, what is in flight).
        self._live = LiveJobs()
        self._queue = FairQueue()
        self._timers = TimerHeap(self.clock)
        self._listeners: list[JobListener] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._requests = asyncio.Semaphore(self.settings.max_parallel_requests)
        # A 429 on a poll pauses the polls of that account only (by account name).
        self._paused_until: dict[str, float] = {}
        self._recent_refs: OrderedDict[str, None] = OrderedDict()
        self._queue_version = 0  # bumped on every change of the queue
        self._positions_version = -1
        self._published_version = -1
        # Queue positions, recomputed whole when the queue changed (not kept per job).
        self._positions: dict[str, int] = {}

    # --- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Resume every job the store holds as in flight, then start the scheduler. With
        leases, only the jobs this process could claim; the keeper takes over more later."""
        if self.keeper is not None:
            jobs = [c.job for c in await self.keeper.start() if c.job.status.is_active]
        else:
            jobs = await self.jobs.list_active()
        for job in jobs:
            await self._resume(job)
        if self._shared is not None:
            await self._shared.open()
        log.info("engine started: %d job(s) resumed", len(self._live))
        self._schedule_probe()  # accounts set aside before the start (refresh_accounts)
        self._runner = asyncio.create_task(
            self._timers.run(self._on_timer), name="engine-scheduler"
        )
        self._pump()

    async def _resume(self, job: Job) -> None:
        """Take up a stored job in flight (at start, or taken over from another process)."""
        if job.status is JobStatus.QUEUED and job.submit_started_at is not None:
            # We stopped between sending the submission and storing its answer.
            await self._finish(
                job,
                JobStatus.FAILED,
                JobError(
                    ErrorCode.SUBMIT_INTERRUPTED,
                    "The bot restarted while this job was being sent to the image service. "
                    "It was not sent again, so that the account is not charged twice.",
                ),
            )
            return
        live = self._live.add(job)
        if job.status is JobStatus.QUEUED:
            self._enqueue(job)
        else:
            # It holds a slot at its account, even beyond a limit lowered since.
            self.pool.acquire(job.id, self.pool.account_for(job))
            if job.provider_ref:
                self._live.index_ref(live, job.provider_ref)
            self._timers.schedule(job.id, self.clock.time())

    # --- leases (several processes on one database) ----------------------------------------

    def holds(self, job_id: str) -> bool:
        """This process may act on the job now (always, without leases)."""
        return self.keeper is None or self.keeper.holds(job_id)

    def on_adopted(self, callback: Callable[[list[Job]], None]) -> None:
        """`callback(jobs)` after jobs were taken over from another process (not at start)."""
        self._adopted.append(callback)

    def on_lost(self, callback: Callable[[str], None]) -> None:
        """`callback(job_id)` when a job's lease is lost and the job dropped here."""
        self._lost.append(callback)

    def keep_lease_while(self, predicate: Callable[[str], bool]) -> None:
        """Keep renewing an ended job's lease while `predicate(job_id)` (its final is due)."""
        self._lease_users.append(predicate)

    async def record_final(self, delivery: Delivery, deliveries: DeliveryRepository) -> bool:
        """Record a final delivery; with leases a fenced write, False if it was not ours."""
        if self.keeper is None:
            await deliveries.save(delivery)
            return True
        return await self.keeper.leases.deliver_final(delivery)

    async def release_leases(self) -> None:
        """At a clean stop, after everything that writes has stopped: hand every job over."""
        if self.keeper is not None:
            await self.keeper.release()

    def _lease_needed(self, job_id: str) -> bool:
        return job_id in self._live or any(use(job_id) for use in self._lease_users)

    async def _adopt(self, claimed: list[ClaimedJob]) -> None:
        jobs = [c.job for c in claimed]
        for job in jobs:
            if job.status.is_active and job.id not in self._live:
                await self._resume(job)
        self._pump()
        for callback in list(self._adopted):
            try:
                callback(jobs)
            except Exception:
                log.exception("adoption listener failed")

    def _drop(self, job_id: str) -> None:
        """Forget a job whose lease is no longer ours, writing nothing anywhere."""
        live = self._live.remove(job_id)  # the record, its ref and its flags, at once
        self.pool.release(job_id)
        if self._queue.remove(job_id):
            self._queue_version += 1
        self._timers.cancel(job_id)
        if self.keeper is not None:
            self.keeper.leases.forget(job_id)
        for callback in list(self._lost):
            try:
                callback(job_id)
            except Exception:
                log.exception("lost-lease listener failed")
        if live is not None:
            self._pump()

    async def stop(self) -> None:
        """Stop watching; jobs stay in the store and resume on the next start."""
        if self.keeper is not None:
            await self.keeper.stop()  # no more takeovers while stopping
        if self._runner:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Progress held in memory goes to the store on a clean stop.
        for live in self._live:
            if live.unsaved:
                try:
                    await self._save(live.job)
                except Exception:  # the store may be going away; progress comes back anyway
                    log.warning("job %s: progress not written at stop", live.job.id, exc_info=True)
        for live in self._live:
            live.unsaved = False

    def subscribe(self, listener: JobListener) -> Callable[[], None]:
        """Call `listener` after every change (status changes once persisted). It must not
        block."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def set_max_concurrent_jobs(self, slots: int, *, account: str | None = None) -> None:
        """The limit of one account (by name), or of every account."""
        self.pool.set_limit(slots, account=account)
        self._pump()

    async def refresh_accounts(self, *, timeout_s: float = 5.0) -> None:
        """Read every account's information (balance, concurrency) now; an account whose
        answer says it cannot serve (a refused key, no credit) is set aside at once."""
        await self.pool.read_accounts(timeout_s=timeout_s, now=self.clock.time())
        self._schedule_probe()
        await self._fail_stranded()
        self._pump()

    def restore_account(self, name: str) -> Account:
        """An admin puts a set-aside account back; waiting jobs may go to it at once."""
        account = self.pool.restore(name)
        self._pump()
        return account

    # --- requests ------------------------------------------------------------------------

    async def submit(
        self,
        operation: Operation,
        *,
        requester_id: str | None = None,
        guild_id: str | None = None,
        channel_id: str | None = None,
        idempotency_key: str | None = None,
        delivery_hint: dict[str, Any] | None = None,
    ) -> Job:
        """Record a job and queue it. The same idempotency key returns the first job.

        `delivery_hint` is stored with the job for the presentation layer (where its
        message is), so that nothing about it is lost between two writes."""
        home = await self._account_for_request(operation)
        now = self.clock.time()
        job = Job(
            id=new_job_id(),
            operation=operation,
            provider=home.kind if home is not None else self.pool.name,
            account=home.name if home is not None else None,
            requester_id=requester_id,
            guild_id=guild_id,
            channel_id=channel_id,
            idempotency_key=idempotency_key,
            delivery_hint=dict(delivery_hint or {}),
            created_at=now,
            updated_at=now,
            last_change_at=now,
        )
        stored, created = await self.jobs.insert(job)
        if not created:
            return copy.copy(self._live.job(stored.id) or stored)
        self._live.add(job)
        self._enqueue(job)
        self._emit("created", job, None)
        self._pump()
        return copy.copy(job)

    async def _account_for_request(self, operation: Operation) -> Account | None:
        """A follow-up's account (its parent's, always), or None for a new job, which is
        placed when a slot frees. EngineError when no account will take it."""
        if not self.pool.can_serve(operation):
            raise EngineError(UnsupportedOperationError().to_job_error())
        if operation.parent_job_id is None:
            refusal = self.pool.refusal(operation)
            if refusal is not None:
                raise EngineError(JobError(ErrorCode.UNAVAILABLE, refusal))
            return None
        parent = self._live.job(operation.parent_job_id) or await self.jobs.get(
            operation.parent_job_id
        )
        if parent is None:
            return None  # refused with a reason when it is sent (_parent_refusal)
        home = self.pool.account_for(parent)
        refusal = self.pool.pinned_refusal(home)
        if refusal is not None:
            raise EngineError(JobError(ErrorCode.UNAVAILABLE, refusal))
        if not home.serves(operation):
            raise EngineError(
                UnsupportedOperationError(
                    "The image service account that made this image cannot do that."
                ).to_job_error()
            )
        return home

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job: at once if it is still waiting in the bot, else at the provider."""
        live = self._live.get(job_id)
        if live is None:
            stored = await self.jobs.get(job_id)
            if stored is None:
                raise EngineError(JobError(ErrorCode.NOT_FOUND, "There is no such job."))
            if self.keeper is not None and stored.status.is_active:
                # Run by another process sharing the database: only its owner may act.
                raise EngineError(
                    JobError(
                        ErrorCode.INVALID_REQUEST,
                        "This job is being run by another of the bot's processes, which "
                        "cannot be asked to cancel it yet; it will finish on its own.",
                    )
                )
            return stored
        job = live.job
        if job.id in self._queue:
            self._queue.remove(job.id)
            self._queue_version += 1
            await self._finish(
                job, JobStatus.CANCELLED, JobError(ErrorCode.CANCELLED, "Cancelled.")
            )
            self._publish_queue_positions()
            return copy.copy(job)
        if live.submitting or not job.provider_ref:
            raise EngineError(
                JobError(
                    ErrorCode.INVALID_REQUEST,
                    "The job is being sent right now; try again in a moment.",
                )
            )
        if not self.pool.capabilities_for(job).can_cancel:
            raise EngineError(
                UnsupportedOperationError("This image service cannot cancel jobs.").to_job_error()
            )
        account = self.pool.account_for(job)
        try:
            await self.provider.cancel(job)
        except ProviderError as exc:
            self._count_request("cancel", exc, account)
            raise EngineError(exc.to_job_error()) from None
        self._count_request("cancel", None, account)
        if job.id in self._live and not job.status.is_terminal:
            await self._finish(
                job, JobStatus.CANCELLED, JobError(ErrorCode.CANCELLED, "Cancelled.")
            )
        return copy.copy(job)

    async def get(self, job_id: str) -> Job | None:
        job = self._live.job(job_id)
        if job is not None:
            return copy.copy(job)
        return await self.jobs.get(job_id)

    def queue_position(self, job_id: str) -> int | None:
        if self._shared is not None:
            return self._shared.positions.get(job_id)
        return self._current_positions().get(job_id)

    def active_jobs(self) -> list[Job]:
        """Copies of every job not yet ended."""
        return [copy.copy(job) for job in self._live.jobs()]

    @property
    def active_count(self) -> int:
        return len(self._live)

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> bool:
        """The scheduler is alive (for health checks)."""
        return self._runner is not None and not self._runner.done()

    def state_counts(self) -> dict[str, int]:
        """Active jobs by status (for metrics; O(n), meant for an occasional scrape)."""
        counts = {status.value: 0 for status in _STATUS_RANK}
        for job in self._live.jobs():
            counts[job.status.value] = counts.get(job.status.value, 0) + 1
        return counts

    def operation_for_ref(self, ref: str) -> Operation | None:
        """The operation of the active job a provider ref belongs to (push parsing needs
        it for backends whose reports do not say what kind of job they are)."""
        live = self._live.by_ref(ref)
        return live.job.operation if live is not None else None

    # --- push ----------------------------------------------------------------------------

    async def ingest(self, snapshot: ProviderSnapshot) -> bool:
        """Apply a provider's own report of a job (a webhook). True when it changed the job;
        unknown refs, stale and duplicate reports change nothing."""
        return await self.ingest_outcome(snapshot) == "accepted"

    async def ingest_outcome(self, snapshot: ProviderSnapshot) -> PushOutcome:
        live = self._live.by_ref(snapshot.ref)
        if live is None or live.job.status.is_terminal or live.finishing:
            if snapshot.ref in self._recent_refs or live is not None:
                return "duplicate"  # a late report of a job that has ended
            return "unknown_job"
        job = live.job
        if self._is_stale(job, snapshot):
            return "stale"
        probe = copy.copy(job)
        before = probe.visible_state()
        self._apply(probe, snapshot)
        if probe.visible_state() == before and not probe.status.is_terminal:
            return "duplicate"
        await self._observe(job, snapshot)
        return "accepted"

    @staticmethod
    def _is_stale(job: Job, snap: ProviderSnapshot) -> bool:
        """Older than what the job already shows: an earlier status, or less progress."""
        if snap.status.is_terminal:
            return False
        have, got = _STATUS_RANK.get(job.status, 3), _STATUS_RANK.get(snap.status, 3)
        if got != have:
            return got < have
        return (
            snap.progress is not None and job.progress is not None and snap.progress < job.progress
        )

    # --- dispatching ---------------------------------------------------------------------

    def _enqueue(self, job: Job, *, front: bool = False) -> None:
        self._queue.push(job.id, job.requester_id or "", front=front)
        self._queue_version += 1
        if front and self._shared is not None:
            # Back in the queue (a refused submission): so in the shared one too.
            live = self._live.get(job.id)
            delay = max(0.0, live.retry_at - self.clock.time()) if live is not None else 0.0
            self._shared.requeue(job.id, delay)

    def _pump(self) -> None:
        """Send queued jobs while some account has a free slot: members' turns stay one
        round-robin across the pool; each job goes to an account that can take it now."""
        if self._shared is not None:
            self._shared.wake()  # the database decides, for every process (shared_queue.py)
            if len(self._queue) and _DISPATCH_TIMER not in self._timers:
                self._timers.schedule(_DISPATCH_TIMER, self.clock.time() + DISPATCH_PERIOD_S)
            return
        now = self.clock.time()
        while self.pool.has_room():
            job_id = self._queue.pop_where(
                lambda jid: self._placement(jid, now) is not None, limit=PUMP_SCAN_LIMIT
            )
            if job_id is None:
                break
            self._queue_version += 1
            live = self._live.get(job_id)
            account = self._placement(job_id, now)
            if live is None or account is None:
                continue
            job = live.job
            self.pool.acquire(job.id, account)
            job.account, job.provider = account.name, account.kind
            live.submitting = True
            self._spawn(self._send(job), f"submit-{job_id}")
        self._publish_queue_positions()

    def _placement(self, job_id: str, now: float) -> Account | None:
        """The account a queued job would go to now, or None (it waits)."""
        live = self._live.get(job_id)
        if live is None:
            return self.pool.accounts[0]  # gone: popped and dropped by the pump
        job = live.job
        if live.retry_at > now:
            return None  # a delayed resubmission; its timer pumps again
        if job.operation.parent_job_id is not None and job.account is not None:
            home = self.pool.account_for(job)
            return home if home.available and home.has_room else None
        return self.pool.choose(job.operation)

    def _shared_place(self, job: Job, used: Mapping[str, int]) -> str | None:
        """`_placement` for a job of any process, against the slots every process uses."""
        if job.submit_started_at is not None:
            return None  # caught mid-submission: its owner fails it, never sends it again
        if job.operation.parent_job_id is not None and job.account is not None:
            home = self.pool.account_for(job)
            free = home.available and used.get(home.name, 0) < home.limit
            return home.name if free else None
        account = self.pool.choose_by(job.operation, used)
        return account.name if account is not None else None

    def _start_granted(self, granted: dict[str, str]) -> None:
        """Send the jobs of ours the shared dispatch granted a slot (at `granted[id]`)."""
        for job_id, name in granted.items():
            live = self._live.get(job_id)
            account = self.pool.get(name)
            if live is None or account is None or live.submitting or job_id not in self._queue:
                continue
            self._queue.remove(job_id)
            self._queue_version += 1
            job = live.job
            self.pool.acquire(job.id, account)
            job.account, job.provider = account.name, account.kind
            live.submitting = True
            self._spawn(self._send(job), f"submit-{job_id}")

    def _current_positions(self) -> dict[str, int]:
        if self._positions_version != self._queue_version:
            self._positions = self._compute_positions()
            self._positions_version = self._queue_version
        return self._positions

    def _compute_positions(self) -> dict[str, int]:
        """1-based positions. With several accounts a job counts only the jobs ahead that
        compete for one of its accounts (a follow-up waits for its parent's account only)."""
        if len(self.pool.accounts) == 1:
            return self._queue.positions()
        eligible: dict[str, frozenset[str]] = {}
        counts: dict[str, int] = {}
        positions: dict[str, int] = {}
        for job_id in self._queue.order():
            job = self._live.job(job_id)
            if job is None:
                continue
            group = self._group(job, eligible)
            mine = eligible[group]
            ahead = sum(n for g, n in counts.items() if g == group or eligible[g] & mine)
            positions[job_id] = ahead + 1
            counts[group] = counts.get(group, 0) + 1
        return positions

    def _group(self, job: Job, eligible: dict[str, frozenset[str]]) -> str:
        op = job.operation
        if op.parent_job_id is not None and job.account is not None:
            group = "@" + job.account
            names = frozenset({job.account})
        else:
            group = f"{op.kind.value}:{op.mode.value if op.mode else ''}"
            names = frozenset(a.name for a in self.pool.serving(op))
        eligible.setdefault(group, names)
        return group

    def _publish_queue_positions(self) -> None:
        if self._shared is not None:
            return  # the database's positions, shown after each dispatch
        if self._published_version == self._queue_version:
            return  # nothing moved since the last time
        if len(self._queue) > QUEUE_SYNC_LIMIT:
            # A long queue: coalesce the moves of the next second into one pass.
            if _POSITIONS_TIMER not in self._timers:
                self._timers.schedule(_POSITIONS_TIMER, self.clock.time() + QUEUE_REFRESH_S)
            return
        self._publish_positions_now()

    def _publish_positions_now(self) -> None:
        if self._published_version == self._queue_version:
            return
        self._published_version = self._queue_version
        self._show_positions(self._current_positions())

    def _show_positions(self, positions: dict[str, int]) -> None:
        for job_id, position in positions.items():
            job = self._live.job(job_id)
            if job is None or job.queue_position == position:
                continue
            shown = job.queue_position
            if (
                shown is not None
                and position > QUEUE_EXACT_POSITIONS
                and abs(shown - position) * 10 <= shown
            ):
                continue  # far back: refresh in coarse steps, not on every move
            previous = job.status
            job.queue_position = position
            self._emit("changed", job, previous)

    async def _send(self, job: Job) -> None:
        try:
            await self._send_inner(job)
        finally:
            live = self._live.get(job.id)
            if live is not None:
                live.submitting = False
            if self._shared is None:  # shared: its end or its re-queue wakes the dispatch
                self._pump()

    async def _send_inner(self, job: Job) -> None:
        parent: Job | None = None
        if job.operation.parent_job_id:
            parent = await self.jobs.get(job.operation.parent_job_id)
            refusal = self._parent_refusal(parent, job)
            if refusal is not None:
                await self._finish(job, JobStatus.FAILED, refusal)
                return

        # Invariant 1: the mark (and the account it goes to) reach disk before the request.
        account = self.pool.account_for(job)
        job.submit_started_at = self.clock.time()
        job.queue_position = None
        await self._save(job)
        if not self.holds(job.id):
            # The lease is about to lapse: another process may take the job, so it is
            # not sent from here (it fails there as interrupted, never sent twice).
            self._drop(job.id)
            return
        try:
            async with self._requests:
                snapshot = await account.provider.submit(
                    job.operation, job=copy.copy(job), parent=parent
                )
        except ProviderError as exc:
            self._count_request("submit", exc, account)
            await self._submit_failed(job, account, exc)
            return
        except Exception:
            self._count_request("submit", ErrorCode.INTERNAL, account)
            log.exception("job %s: submission failed unexpectedly", job.id)
            await self._finish(
                job,
                JobStatus.FAILED,
                JobError(ErrorCode.INTERNAL, "The bot failed to send the job."),
            )
            return

        await self._submitted(job, account, snapshot)

    async def _submitted(self, job: Job, account: Account, snapshot: ProviderSnapshot) -> None:
        """An accepted submission: record the provider's ref and first answer, then poll."""
        self._count_request("submit", None, account)
        self.pool.record_success(account)
        previous = job.status
        job.provider_ref = snapshot.ref
        live = self._live.get(job.id)
        if live is not None:  # not dropped while the request was out
            self._live.index_ref(live, snapshot.ref)
            live.retry_at = 0.0
        job.submitted_at = self.clock.time()
        job.error = None  # a "retrying" note of an earlier refusal
        self._apply(job, snapshot)
        if job.status is JobStatus.QUEUED:
            job.status = JobStatus.SUBMITTED
        log.info(
            "job %s %s: submitted as %s (%s)",
            job.id,
            job.operation.kind.value,
            snapshot.ref,
            job.status,
        )
        if job.status.is_terminal:
            await self._finish(job, job.status, job.error)
            return
        await self._save(job)
        live = self._live.get(job.id)
        if live is None or job.status.is_terminal:
            return  # a push finished it while the answer was being saved
        self._emit("changed", job, previous)
        first = self._first_poll_s()
        live.interval = first
        self._timers.schedule(job.id, self.clock.time() + first)

    def _first_poll_s(self) -> float:
        s = self.settings
        return s.push_safety_poll_s if s.push_mode else s.poll_initial_s

    async def _submit_failed(self, job: Job, account: Account, exc: ProviderError) -> None:
        """A refused submission. An unanswered one stays failed (never sent twice); one
        the account is to blame for moves to another account; others retry or fail."""
        if isinstance(exc, SubmitOutcomeUnknownError):
            self.pool.record_failure(account, exc, self.clock.time())
            await self._finish(job, JobStatus.FAILED, exc.to_job_error())
            return
        verdict = self.pool.record_failure(account, exc, self.clock.time())
        if verdict is not None:
            await self._account_set_aside(job, account, exc)
        elif isinstance(exc, RateLimitedError):
            await self._retry_submit_later(job, exc, exc.retry_after)
        elif exc.transient:
            await self._retry_submit_later(job, exc, None)
        else:
            await self._finish(job, JobStatus.FAILED, exc.to_job_error())

    async def _account_set_aside(self, job: Job, account: Account, exc: ProviderError) -> None:
        """The account refused for reasons of its own: nothing was created there, so the
        job goes back to the queue for another account (a follow-up cannot go elsewhere)."""
        self._schedule_probe()
        pinned = job.operation.parent_job_id is not None
        refusal = self.pool.pinned_refusal(account) if pinned else None
        if refusal is not None:
            await self._finish(job, JobStatus.FAILED, JobError(exc.code, refusal))
        elif self.pool.refusal(job.operation) is not None:
            await self._finish(job, JobStatus.FAILED, exc.to_job_error())  # nowhere else
        else:
            self.pool.release(job.id)
            if not pinned:
                job.account = None
            job.submit_started_at = None
            await self._save(job)
            self._enqueue(job, front=True)
            log.info("job %s: back in the queue (account %s set aside)", job.id, account.name)
        await self._fail_stranded()

    async def _fail_stranded(self) -> None:
        """End queued jobs no account will take until an admin acts (every account that
        could is out of credit or refused its key; a follow-up's own account is)."""
        for job_id in self._queue.order():
            job = self._live.job(job_id)
            if job is None:
                continue
            home = self.pool.get(job.account) if job.operation.parent_job_id else None
            if home is not None:
                aside = home.aside
                stuck = aside is not None and aside.kind.waits_for_admin
                reason = self.pool.pinned_refusal(home) if stuck else None
            else:
                reason = self.pool.refusal(job.operation)
            if reason is not None:
                await self._finish(job, JobStatus.FAILED, JobError(ErrorCode.UNAVAILABLE, reason))

    def _schedule_probe(self) -> None:
        at = self.pool.next_probe_at()
        if at is not None:
            self._timers.schedule(_PROBE_TIMER, at)

    async def _probe_accounts(self) -> None:
        back = await self.pool.probe_due(self.clock.time())
        if back:
            log.info("account(s) back after their cool-down: %s", ", ".join(back))
        self._schedule_probe()
        self._pump()

    def _parent_refusal(self, parent: Job | None, job: Job) -> JobError | None:
        if parent is None:
            return JobError(ErrorCode.NOT_FOUND, "The image this follows up no longer exists.")
        if parent.status is not JobStatus.COMPLETED or not parent.provider_ref:
            return JobError(
                ErrorCode.INVALID_REQUEST, "The image this follows up has not finished."
            )
        window = self.pool.capabilities_for(job).follow_up_window
        if window is not None and self.clock.time() - parent.created_at > window:
            return ParentTooOldError().to_job_error()
        return None

    async def _retry_submit_later(
        self, job: Job, exc: ProviderError, retry_after: float | None
    ) -> None:
        now = self.clock.time()
        if now - job.created_at > self.settings.submit_retry_window_s:
            await self._finish(job, JobStatus.FAILED, _gave_up(exc, now - job.created_at))
            return
        # A job dropped while its request was out keeps counting on a detached record.
        live = self._live.get(job.id) or LiveJob(job)
        live.submit_attempts += 1
        attempt = live.submit_attempts
        # Doubling from the base, capped: the last try comes at most one cap (or the
        # service's Retry-After) past the window, so giving up takes about two minutes.
        backoff = min(
            self.settings.submit_retry_base_s * 2 ** min(attempt - 1, 10),
            self.settings.submit_retry_max_s,
        )
        delay = retry_after if retry_after is not None else backoff
        # Nothing was created at the provider: clear the mark so a restart may send it.
        job.submit_started_at = None
        self.pool.release(job.id)
        if job.operation.parent_job_id is None:
            job.account = None  # any account may take it next time
        # The member sees at once that the service is the problem, not a long queue.
        job.error = _retrying(exc)
        previous = job.status
        await self._save(job)
        live.retry_at = now + delay
        self._enqueue(job, front=True)
        self._timers.schedule(job.id, now + delay)
        self._emit("changed", job, previous)
        log.warning(
            "job %s: submission refused (%s); retrying in %.1fs", job.id, exc.code.value, delay
        )

    # --- watching ------------------------------------------------------------------------

    def _on_timer(self, job_id: str) -> None:
        if job_id == _POSITIONS_TIMER:
            self._publish_positions_now()
            return
        if job_id == _PROBE_TIMER:
            self._spawn(self._probe_accounts(), "account-probe")
            return
        if job_id == _DISPATCH_TIMER and self._shared is not None:
            self._shared.look_next()  # a lost notification, a resubmission whose delay passed
            self._pump()
            return
        live = self._live.get(job_id)
        if live is None:
            return
        job = live.job
        if not self.holds(job_id):
            # Its local deadline passed (a freeze, a database that did not answer): the job
            # may be another process's now, so act no more and write nothing.
            log.warning("job %s: lease deadline passed; dropped here", job_id)
            if self.keeper is not None:
                self.keeper.lost += 1
            self._drop(job_id)
            return
        if job.status is JobStatus.QUEUED:
            self._pump()  # a delayed resubmission is due
            return
        if live.polling:
            return  # the poll in flight reschedules when it is done
        now = self.clock.time()
        paused_until = self._paused_until.get(self.pool.account_for(job).name, 0.0)
        if now < paused_until:
            self._timers.schedule(job_id, paused_until)
            return
        live.polling = True
        self._spawn(self._poll(job), f"poll-{job_id}")

    async def _poll(self, job: Job) -> None:
        try:
            await self._poll_inner(job)
        finally:
            live = self._live.get(job.id)
            if live is not None:
                live.polling = False

    async def _poll_inner(self, job: Job) -> None:
        now = self.clock.time()
        deadline_error = self._deadline_error(job, now)
        if deadline_error is not None:
            await self._time_out(job, deadline_error)
            return
        account = self.pool.account_for(job)
        try:
            async with self._requests:
                snapshot = await account.provider.fetch(copy.copy(job))
        except ProviderError as exc:
            self._count_request("fetch", exc, account)
            await self._fetch_failed(job, account, exc, now)
            return
        except Exception:
            self._count_request("fetch", ErrorCode.INTERNAL, account)
            log.exception("job %s: poll failed unexpectedly", job.id)
            self._reschedule(job, changed=False)
            return

        self._count_request("fetch", None, account)
        self.pool.record_success(account)
        job.polls += 1
        live = self._live.get(job.id)
        if live is None or job.status.is_terminal or live.finishing:
            return  # a push finished it while the request was out
        if self.settings.push_mode and self._is_stale(job, snapshot):
            # A push overtook this poll with newer news: keep them.
            self._reschedule(job, changed=False)
            return
        await self._observe(job, snapshot)

    async def _fetch_failed(
        self, job: Job, account: Account, exc: ProviderError, now: float
    ) -> None:
        if self.pool.record_failure(account, exc, now) is not None:
            # Jobs already there keep being watched; new ones go elsewhere.
            self._schedule_probe()
            await self._fail_stranded()
        if isinstance(exc, RateLimitedError):
            until = max(self._paused_until.get(account.name, 0.0), now + (exc.retry_after or 5.0))
            self._paused_until[account.name] = until
            self._timers.schedule(job.id, until)
            return
        if isinstance(exc, NotFoundError):
            if now - (job.submitted_at or job.created_at) < self.settings.not_found_grace_s:
                self._reschedule(job, changed=False)
                return
            await self._finish(job, JobStatus.FAILED, exc.to_job_error())
            return
        log.warning(
            "job %s: poll failed (%s): %s",
            job.id,
            exc.code.value,
            exc.provider_text or exc.message,
        )
        job.polls += 1
        self._reschedule(job, changed=False)

    async def _observe(self, job: Job, snapshot: ProviderSnapshot) -> None:
        """Apply one observation (a poll's answer or a push), persist (status changes; see
        progress_save_interval_s), emit, reschedule.
        Everything up to the terminal check runs without awaiting, so a poll and a push
        arriving together cannot both finish the job."""
        previous_status = job.status
        before = job.visible_state()
        self._apply(job, snapshot)
        changed = job.visible_state() != before
        if job.status.is_terminal:
            await self._finish(job, job.status, job.error)
            return
        if changed:
            now = self.clock.time()
            job.last_change_at = now
            # The stored time of the last change must stay well within the stall deadline.
            save_every = min(
                self.settings.progress_save_interval_s, self.settings.stall_timeout_s / 4
            )
            if job.status is not previous_status or now - job.updated_at >= save_every:
                await self._save(job)
                if job.id not in self._live or job.status.is_terminal:
                    return  # finished by another observation while saving
            else:
                self._mark_unsaved(job)  # progress only: written later (see settings)
            self._emit("changed", job, previous_status)
            log.log(
                logging.INFO if job.status is not previous_status else logging.DEBUG,
                "job %s: %s %s%%",
                job.id,
                job.status.value,
                job.progress if job.progress is not None else "?",
            )
        self._reschedule(job, changed=changed)

    def _reschedule(self, job: Job, *, changed: bool) -> None:
        s = self.settings
        live = self._live.get(job.id)
        if live is None:
            return  # ended or dropped while a request was out: nothing to watch
        if s.push_mode:
            # Pushes bring the news; the poll is only a safety net for a lost webhook.
            live.interval = s.push_safety_poll_s
            self._timers.schedule(job.id, self.clock.time() + s.push_safety_poll_s)
            return
        interval = live.interval if live.interval is not None else s.poll_initial_s
        # Unchanged: back off gently; changed: keep pace with the provider.
        interval = s.poll_initial_s if changed else min(s.poll_max_s, interval * 1.5)
        interval = max(s.poll_min_s, interval)
        live.interval = interval
        self._timers.schedule(job.id, self.clock.time() + interval)

    def _deadline_error(self, job: Job, now: float) -> JobError | None:
        started = job.submitted_at or job.created_at
        if now - started > self.settings.max_duration_s:
            minutes = self.settings.max_duration_s / 60
            return JobError(
                ErrorCode.TIMED_OUT,
                f"The job ran for more than {minutes:.0f} minutes and was stopped.",
            )
        if now - job.last_change_at > self.settings.stall_timeout_s:
            minutes = self.settings.stall_timeout_s / 60
            return JobError(
                ErrorCode.TIMED_OUT,
                f"The image service showed no progress for {minutes:.0f} minutes.",
            )
        return None

    async def _time_out(self, job: Job, error: JobError) -> None:
        if self.pool.capabilities_for(job).can_cancel and job.status is JobStatus.SUBMITTED:
            with contextlib.suppress(ProviderError):
                await self.provider.cancel(copy.copy(job))  # best effort: stop paying for it
        if job.id in self._live and not job.status.is_terminal:
            await self._finish(job, JobStatus.TIMED_OUT, error)

    # --- state ---------------------------------------------------------------------------

    def _apply(self, job: Job, snap: ProviderSnapshot) -> None:
        job.status = snap.status
        job.raw_status = snap.raw_status
        if snap.progress is not None:
            job.progress = snap.progress
        job.preview_url = snap.preview_url or (
            job.preview_url if not snap.status.is_terminal else None
        )
        if snap.result_url:
            job.result_url = snap.result_url
        if snap.tiles:
            job.tiles = snap.tiles
        if snap.actions is not None:
            job.actions = snap.actions
        if snap.cost is not None:
            job.cost = snap.cost
        if snap.error is not None:
            job.error = snap.error
        if snap.seed:
            job.seed = snap.seed
        if snap.prompts:
            job.prompts = snap.prompts
        # The provider's own queue (mj-proxy code 22); the bot's own queue sets it otherwise.
        job.queue_position = snap.queue_position
        if snap.data:
            job.provider_data = {**job.provider_data, **snap.data}

    async def _finish(self, job: Job, status: JobStatus, error: JobError | None) -> None:
        live = self._live.get(job.id)  # None: a job never taken up (interrupted at start)
        if live is not None:
            if live.finishing:
                return  # already being finished by another observation
            live.finishing = True
        try:
            await self._finish_inner(job, status, error)
        finally:
            if live is not None:
                live.finishing = False

    async def _finish_inner(self, job: Job, status: JobStatus, error: JobError | None) -> None:
        previous = job.status
        job.status = status
        job.error = error if status is not JobStatus.COMPLETED else None
        job.queue_position = None
        job.finished_at = self.clock.time()
        if status is JobStatus.COMPLETED:
            job.progress = 100
            job.preview_url = None
        await self._save(job)
        live = self._live.remove(job.id)  # the record, its ref and its flags, at once
        self.pool.release(job.id)
        if self._queue.remove(job.id):
            self._queue_version += 1
        if live is not None and live.ref:
            self._recent_refs[live.ref] = None
            if len(self._recent_refs) > RECENT_REFS:
                self._recent_refs.popitem(last=False)
        self._timers.cancel(job.id)
        reason = f" ({job.error.code.value}: {job.error.message})" if job.error else ""
        if job.error and job.error.provider_text:
            # The detail members are spared (issue 15 item 2) is logged here, once.
            reason += f" [provider: {job.error.provider_text[:300]}]"
        log.info("job %s: %s%s", job.id, status.value, reason)
        self._emit("changed", job, previous)
        self._pump()

    async def _save(self, job: Job) -> None:
        job.updated_at = self.clock.time()
        live = self._live.get(job.id)
        if live is not None:
            live.unsaved = False
        try:
            await self.jobs.save(job)
        except LeaseLostError:
            log.warning("job %s: lease lost (another process holds it now); dropped here", job.id)
            if self.keeper is not None:
                self.keeper.lost += 1
            self._drop(job.id)
            raise

    def _mark_unsaved(self, job: Job) -> None:
        live = self._live.get(job.id)
        if live is not None:
            live.unsaved = True

    def _emit(self, kind: EventKind, job: Job, previous: JobStatus | None) -> None:
        event = JobEvent(kind, copy.copy(job), previous)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("job listener failed")

    def _count_request(
        self,
        method: str,
        error: ProviderError | ErrorCode | None,
        account: Account | None = None,
    ) -> None:
        if self.metrics is None:
            return
        outcome = "ok" if error is None else "error"
        self.metrics.provider_requests.inc(method=method, outcome=outcome)
        if account is not None:
            self.metrics.account_requests.inc(account=account.name, method=method, outcome=outcome)
        if error is None:
            return
        code = error if isinstance(error, ErrorCode) else error.code
        self.metrics.provider_errors.inc(code=code.value)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(_unless_lost(coro), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- tests and tools -----------------------------------------------------------------

    async def settle(self, limit_s: float = 10.0) -> None:
        """Wait until nothing is running and nothing is due (bounded; for tests and tools)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + limit_s
        quiet_rounds = 0
        # Enough rounds for a woken scheduler to resume and park again (its wake-up passes
        # through a sleeper task and asyncio.wait's callback before it runs).
        while quiet_rounds < 6:
            await asyncio.sleep(0)
            if self._tasks or self._timers.has_due() or not self._timers.parked:
                quiet_rounds = 0
                if loop.time() > give_up:
                    raise TimeoutError("engine did not settle")
                await asyncio.sleep(0.002)
            else:
                quiet_rounds += 1


async def _unless_lost(coro: Coroutine[Any, Any, None]) -> None:
    """A task whose job's lease was lost ends quietly: the job was dropped, nothing else."""
    with contextlib.suppress(LeaseLostError):
        await coro


def register_account_gauges(metrics: Metrics, pool: AccountPool) -> None:
    """Each account's slots in use, its limit and whether it takes new jobs, read at scrape
    time."""

    def per_account(read: Callable[[Account], float]) -> Callable[[], dict[Any, float]]:
        return lambda: {(("account", a.name),): read(a) for a in pool.accounts}

    metrics.account_in_flight.source = per_account(lambda a: float(a.in_flight))
    metrics.account_limit.source = per_account(lambda a: float(a.limit))
    metrics.account_available.source = per_account(lambda a: 1.0 if a.available else 0.0)


def _retrying(exc: ProviderError) -> JobError:
    """The note an active job carries while its submission waits for another try."""
    if exc.code is ErrorCode.RATE_LIMITED:
        words = "The image service is busy; retrying."
    else:
        words = "The image service isn't answering; retrying."
    return JobError(exc.code, words, provider_text=exc.provider_text)


def _gave_up(exc: ProviderError, waited_s: float) -> JobError:
    minutes = max(1, round(waited_s / 60))
    unit = "minute" if minutes == 1 else "minutes"
    busy = "was too busy" if exc.code is ErrorCode.RATE_LIMITED else "did not answer"
    words = f"The image service {busy} for {minutes} {unit}; nothing was charged. Try again later."
    return JobError(exc.code, words, provider_text=exc.provider_text)
