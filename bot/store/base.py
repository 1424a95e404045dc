"""The storage contract the engine depends on, free of any one database.

SQLite implements it today (`bot.store.sqlite`); a PostgreSQL backend can follow by
implementing the same protocols and raising the same errors.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Protocol

from bot.domain import Job


class StoreError(Exception):
    """Something in the store failed; the message is safe to log (no secrets, no data)."""


class StoreBusyError(StoreError):
    """The database stayed locked by another writer after every retry.

    Raised rather than dropping the write, so the caller can decide what to do.
    """


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


@dataclass(frozen=True, slots=True)
class MemberPrefs:
    """One member's preferences in one server (`guild_id` None in DMs).

    Stored as JSON (see migrations/0003_member_prefs.sql): a new preference is a new
    field with a default, and rows written before it read back with that default.
    """

    guild_id: str | None
    user_id: str
    remix: bool = False

    def to_data(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _PREFS_KEY}

    @classmethod
    def from_data(cls, guild_id: str | None, user_id: str, data: dict[str, Any]) -> MemberPrefs:
        # Unknown keys (written by a newer bot) are ignored rather than refused.
        known = {f.name for f in fields(cls)} - _PREFS_KEY
        return cls(guild_id, user_id, **{k: v for k, v in data.items() if k in known})


_PREFS_KEY = frozenset({"guild_id", "user_id"})


class MemberPrefsRepository(Protocol):
    async def get(self, guild_id: str | None, user_id: str) -> MemberPrefs:
        """The member's preferences; the defaults when none were ever saved."""
        ...

    async def save(self, prefs: MemberPrefs) -> None:
        """Store `prefs` over any earlier version for the same member and server."""
        ...


class Store(Protocol):
    """Every repository of one database, and the means to close it."""

    @property
    def jobs(self) -> JobRepository: ...

    @property
    def deliveries(self) -> DeliveryRepository: ...

    @property
    def prefs(self) -> MemberPrefsRepository: ...

    async def close(self) -> None: ...
