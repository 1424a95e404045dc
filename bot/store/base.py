"""The storage contract the engine depends on, free of any one database.

SQLite implements it today (`bot.store.sqlite`); a PostgreSQL backend can follow by
implementing the same protocols and raising the same errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from bot.community import GuildSettings, SettingsEdit
from bot.domain import ErrorCode, Job, JobStatus


class StoreError(Exception):
    """Something in the store failed; the message is safe to log (no secrets, no data)."""


class StoreBusyError(StoreError):
    """The database stayed locked by another writer after every retry.

    Raised rather than dropping the write, so the caller can decide what to do.
    """


class StoreUnavailableError(StoreError):
    """The database cannot take writes now: the disk is full, the file cannot be written,
    or it was deleted or replaced under the running bot. Nothing of the write was saved;
    members are told that nothing was saved or charged."""


@runtime_checkable
class StorageHealth(Protocol):
    """A repository that can tell whether its storage still works (for /healthz)."""

    def storage_problem(self) -> str | None:
        """Why writes are refused now (a short sentence, no secrets), or None."""
        ...


class SchemaVersionError(StoreError):
    """The database was migrated by code this version does not know (usually newer)."""


class MigrationError(StoreError):
    """A schema migration failed; it was rolled back and the store is not opened."""


class JobNotFoundError(StoreError, LookupError):
    """`save` was asked to update a job that was never inserted."""


class JobExistsError(StoreError):
    """`insert` was given a job whose id is already stored (a bug, unlike a key conflict)."""


class JobRepository(Protocol):
    """Where jobs live between state changes, and across restarts."""

    async def insert(self, job: Job) -> tuple[Job, bool]:
        """Store a new job; returns `(job, True)`.

        When `job.idempotency_key` is already taken, nothing is stored and the job that
        holds the key is returned as `(existing, False)`. Atomic: of two concurrent
        inserts with one key, exactly one is created.
        """
        ...

    async def save(self, job: Job) -> None:
        """Persist the whole job over its stored version; `JobNotFoundError` if absent."""
        ...

    async def get(self, job_id: str) -> Job | None: ...

    async def get_by_idempotency_key(self, key: str) -> Job | None: ...

    async def get_by_provider_ref(self, provider: str, ref: str) -> Job | None:
        """The newest job of `provider` whose provider reference is `ref`."""
        ...

    async def list_active(self) -> list[Job]:
        """Every job not yet in a terminal state, oldest first (the order to resume in)."""
        ...

    async def list_for_requester(
        self,
        requester_id: str,
        *,
        guild_id: str | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[Job]:
        """A member's jobs, newest first; `guild_id=None` means every guild and DMs."""
        ...

    async def count_for_requester_since(
        self, requester_id: str, since: float, *, guild_id: str | None = None
    ) -> int:
        """How many jobs a member created at or after `since` (Unix seconds); for quotas."""
        ...


@dataclass(slots=True)
class Delivery:
    """Where a job's message lives in Discord (see migrations/0002_deliveries.sql)."""

    job_id: str
    channel_id: str
    upload_limit: int
    message_id: str | None = None
    guild_id: str | None = None
    final_delivered_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


class DeliveryRepository(Protocol):
    async def claim(self, delivery: Delivery) -> bool:
        """Record a new delivery; False (and nothing written) if the job already has one."""
        ...

    async def save(self, delivery: Delivery) -> None: ...

    async def get(self, job_id: str) -> Delivery | None: ...

    async def list_undelivered(self) -> list[Delivery]:
        """Deliveries whose final state has not reached Discord yet, oldest first."""
        ...

    async def jobs_without_delivery(self, since: float) -> list[str]:
        """Ids of jobs created at or after `since` that have no delivery (a kill came
        between storing the job and its delivery), oldest first."""
        ...


@dataclass(frozen=True, slots=True)
class MemberPrefs:
    """One member's preferences in one server (`guild_id` None in DMs).

    Stored as JSON (see migrations/0003_member_prefs.sql): a new preference is a new
    field with a default, and rows written before it read back with that default.
    """

    guild_id: str | None
    user_id: str
    remix: bool = False
    default_mode: str | None = None  # None: the server's default speed
    default_aspect_ratio: str | None = None  # used when /imagine gives none
    suffix: str | None = None  # appended to every prompt (Midjourney's /prefer suffix)
    version: str | None = None  # "--v 6.1", "--niji 7": used when a prompt names none
    draft: bool = False  # /imagine in draft mode (V7) unless its option says otherwise
    # Named parameter sets (Midjourney's /prefer option set): (name, value) pairs.
    presets: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "presets", preset_pairs(self.presets))

    def preset(self, name: str) -> str | None:
        return dict(self.presets).get(name.strip().lower())

    def to_data(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _PREFS_KEY}

    @classmethod
    def from_data(cls, guild_id: str | None, user_id: str, data: dict[str, Any]) -> MemberPrefs:
        # Unknown keys (written by a newer bot) are ignored rather than refused.
        known = {f.name for f in fields(cls)} - _PREFS_KEY
        return cls(guild_id, user_id, **{k: v for k, v in data.items() if k in known})


_PREFS_KEY = frozenset({"guild_id", "user_id"})


def preset_pairs(value: Any) -> tuple[tuple[str, str], ...]:
    """Presets as stored (a list of [name, value] pairs, or a mapping), normalised:
    names lowercased, unreadable entries dropped, the last of a name kept."""
    items = value.items() if isinstance(value, dict) else value
    found: dict[str, str] = {}
    if isinstance(items, Iterable) and not isinstance(items, str):
        for item in items:
            if isinstance(item, (list, tuple)) and len(item) == 2:
                name, text = item
                if isinstance(name, str) and isinstance(text, str) and name.strip():
                    found[name.strip().lower()] = text
    return tuple(found.items())


class MemberPrefsRepository(Protocol):
    async def get(self, guild_id: str | None, user_id: str) -> MemberPrefs:
        """The member's preferences; the defaults when none were ever saved."""
        ...

    async def save(self, prefs: MemberPrefs) -> None:
        """Store `prefs` over any earlier version for the same member and server."""
        ...


class GuildSettingsRepository(Protocol):
    """Each server's settings (see bot/community.py and migrations/0004_community.sql)."""

    async def get(self, guild_id: str) -> GuildSettings:
        """The server's settings; the defaults when none were ever saved."""
        ...

    async def save(self, settings: GuildSettings) -> None:
        """Store `settings` over any earlier version for the same server (no audit row)."""
        ...

    def edit(
        self, guild_id: str, actor_id: str, action: str, *, at: float
    ) -> AbstractAsyncContextManager[SettingsEdit]:
        """`async with guilds.edit(...) as edit:` — one transaction that reads the server's
        row under a lock (a concurrent edit of the same server waits), yields it to change,
        and on normal exit writes the row and its audit row (`actor_id`, `action`, `at`,
        the change) together. An exception in the block, or no change, writes nothing."""
        ...


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change to a server's settings: who (`actor_id`), what, and when (Unix seconds)."""

    guild_id: str
    actor_id: str
    action: str  # the command, e.g. "limits" or "banned add"
    detail: str  # what changed, e.g. "default_mode: fast → relax"
    at: float


class AuditRepository(Protocol):
    async def record(
        self, guild_id: str, actor_id: str, action: str, detail: str, at: float
    ) -> None:
        """Append one entry to the server's audit log."""
        ...

    async def recent(self, guild_id: str, limit: int = 20) -> list[AuditEntry]:
        """The server's latest `limit` entries, newest first (ties: the later recorded)."""
        ...


@dataclass(frozen=True)
class UsageSummary:
    """What a member or a server used in a period.

    jobs       every job asked for, whatever became of it (failed and cancelled included)
    completed  jobs that completed
    fast       jobs asked for in fast or turbo mode
    costs      unit ("usd", "point", …) → the total the provider reported; jobs without
               a reported cost add nothing. Units are never converted into each other.
    """

    jobs: int = 0
    completed: int = 0
    fast: int = 0
    costs: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class DailyUsage:
    """One UTC day of a server's usage: `date` is ISO ("2024-05-31")."""

    date: str
    jobs: int = 0
    costs: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QuotaCounts:
    """What a member's limits are checked against, read in one query."""

    active: int = 0  # jobs not yet ended
    since: int = 0  # jobs asked for since the given time
    fast_since: int = 0  # of those, fast or turbo
    moderated_since: int = 0  # of those, refused by the provider's moderation


# Endings that are the service's or the owner's doing, not what a member chose to spend:
# they do not count against per_day / fast_per_day (issue 15 item 4). A moderation refusal
# still counts (the member's prompt), and so does a job cancelled after it started.
UNSPENT_ERROR_CODES = tuple(
    sorted(
        code.value
        for code in (
            ErrorCode.AUTH,
            ErrorCode.INSUFFICIENT_CREDIT,
            ErrorCode.UNAVAILABLE,
            ErrorCode.RATE_LIMITED,
            ErrorCode.MALFORMED_REPLY,
            ErrorCode.TIMED_OUT,
            ErrorCode.SUBMIT_INTERRUPTED,
            ErrorCode.INTERNAL,
        )
    )
)
_UNSPENT_LIST = ", ".join(f"'{code}'" for code in UNSPENT_ERROR_CODES)  # constants
# The same SQL in SQLite and PostgreSQL, so both stores agree.
UNSPENT_JOB_SQL = (
    f"(status = '{JobStatus.TIMED_OUT.value}'"
    f" OR (status = '{JobStatus.FAILED.value}' AND COALESCE(error_code, '') IN ({_UNSPENT_LIST}))"
    f" OR (status = '{JobStatus.CANCELLED.value}' AND provider_ref IS NULL))"
)


@dataclass(frozen=True, slots=True)
class VideoCounts:
    """A member's video jobs since a time (issue 18): all asked for, those that count
    against the quotas (not the service's failures), and of those the fast or turbo."""

    asked: int = 0
    spent: int = 0
    fast_spent: int = 0


class UsageRepository(Protocol):
    """Usage read from the jobs themselves, counted by when each job was asked for
    (`created_at`), so quotas and reports can never disagree with the job history."""

    async def video_counts(self, guild_id: str, user_id: str, since: float) -> VideoCounts:
        """A member's video jobs (Animate, /animate, Extend, HD) asked for since `since`:
        the quotas weigh them, /usage shows them apart."""
        ...

    async def quota_counts(self, guild_id: str, user_id: str, since: float) -> QuotaCounts:
        """Every count a quota check needs, in one read (it runs before each job)."""
        ...

    async def member_summary(self, guild_id: str, user_id: str, *, since: float) -> UsageSummary:
        """A member's usage in a server from `since` (Unix seconds) on."""
        ...

    async def count_active(self, guild_id: str, user_id: str) -> int:
        """A member's jobs in a server that have not reached a terminal state."""
        ...

    async def count_since(
        self, guild_id: str, user_id: str, since: float, *, modes: Iterable[str] | None = None
    ) -> int:
        """A member's jobs in a server asked for at or after `since`; with `modes`, only
        jobs in one of those speed modes ("relax", "fast", "turbo")."""
        ...

    async def top_members(
        self, guild_id: str, *, since: float, limit: int = 10
    ) -> list[tuple[str, UsageSummary]]:
        """The server's biggest users from `since` on, as (user id, usage): by cost in the
        server's main unit (the one most jobs reported), then by jobs, then by user id."""
        ...

    async def guild_summary(self, guild_id: str, *, since: float) -> UsageSummary:
        """The whole server's usage from `since` on."""
        ...

    async def account_summary(self, account: str, *, since: float) -> UsageSummary:
        """One provider account's usage from `since` on, every server together (the
        `account` column, migration 0006)."""
        ...

    async def daily_totals(self, guild_id: str, *, since: float, days: int) -> list[DailyUsage]:
        """`days` entries, one per UTC day from the day containing `since`, oldest first;
        days without jobs are there with zero jobs and no costs."""
        ...

    async def moderation_failures_since(self, guild_id: str, user_id: str, since: float) -> int:
        """A member's jobs in a server that failed with error code "moderated" and ended
        (or, if no end is recorded, were asked for) at or after `since`."""
        ...


class Store(Protocol):
    """Every repository of one database, and the means to close it."""

    @property
    def jobs(self) -> JobRepository: ...

    @property
    def deliveries(self) -> DeliveryRepository: ...

    @property
    def prefs(self) -> MemberPrefsRepository: ...

    @property
    def guilds(self) -> GuildSettingsRepository: ...

    @property
    def audit(self) -> AuditRepository: ...

    @property
    def usage(self) -> UsageRepository: ...

    async def close(self) -> None: ...


# --- leases: several processes on one database (issue 17) -------------------------------


class LeaseLostError(StoreError):
    """The job's lease is no longer this process's (it lapsed, or another process took the
    job over with a newer epoch): nothing was written, and the job must be dropped here."""


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job this process now holds: its fencing epoch and who held it before (None when
    it was unowned or released)."""

    job: Job
    epoch: int
    previous_owner: str | None


@runtime_checkable
class JobLeases(Protocol):
    """Ownership of jobs by leases, for stores shared by several processes (PostgreSQL).

    Until `enable`, nothing changes: jobs are created unowned and written unfenced. After
    it, jobs are created owned by `owner`, every write of a job is fenced by its epoch
    (`LeaseLostError` when it matches nothing), and a lease counts as held here only until
    a local deadline (`holds`) that falls before the database's expiry.
    """

    @property
    def owner(self) -> str: ...

    @property
    def enabled(self) -> bool: ...

    def enable(self, lease_s: float, margin_s: float) -> None: ...

    def holds(self, job_id: str) -> bool:
        """The job's lease is ours and its local deadline has not passed."""
        ...

    def held(self) -> list[str]:
        """Every job id this process holds a lease on (deadline passed or not)."""
        ...

    def forget(self, job_id: str) -> None:
        """Stop renewing and fencing for the job here (it was dropped or is done)."""
        ...

    def expired(self) -> list[str]:
        """Held jobs whose local deadline has passed: forgotten here, returned."""
        ...

    async def claim(self, *, dead_owners: Iterable[str] = (), limit: int = 200) -> list[ClaimedJob]:
        """Take jobs in flight (or awaiting their final delivery) that are unowned, whose
        lease expired, or whose owner is in `dead_owners`; oldest first, SKIP LOCKED."""
        ...

    async def renew(self) -> list[str]:
        """Extend every held lease in one statement; returns (and forgets) the ids lost."""
        ...

    async def release(self) -> int:
        """Give up every lease at once (a clean stop) and NOTIFY the other processes."""
        ...

    async def live_owners(self) -> list[str]:
        """Other owners holding live leases now (to tell a dead process on this host)."""
        ...

    async def deliver_final(self, delivery: Delivery) -> bool:
        """Record the job's final delivery, fenced by its lease, and release that lease.
        False (nothing written) when the lease is no longer ours."""
        ...

    async def listen(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever another process releases leases (LISTEN/NOTIFY)."""
        ...

    async def close(self) -> None: ...
