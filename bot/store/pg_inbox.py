"""The webhook inbox on PostgreSQL (issue 17: webhooks on any process, cancels forwarded).

A provider posts a job's change to whichever process its callback URL names; a member's
/job cancel arrives at whichever process holds the member's shard. When another process
holds the job's lease, the post (or the cancel) is stored here and that owner is woken by a
NOTIFY on `INBOX_CHANNEL` whose payload is its owner id. The owner takes the rows of the
jobs it holds with DELETE ... RETURNING (SKIP LOCKED), so each row is applied once even
when two readers look at the same time; a row whose NOTIFY was lost is taken by the
owner's periodic look, or by whoever adopts the job next.

An owner that applied a forwarded cancel says so on `ANSWER_CHANNEL` (JSON payload), so
the process the member asked can answer within its bounded wait.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from bot.domain import JobStatus
from bot.store.postgres import PostgresDatabase

# NOTIFY channels: rows waiting for an owner (payload: that owner's id), and answers to
# forwarded cancels (payload: JSON, see `answer`).
INBOX_CHANNEL = "mjbot_inbox"
ANSWER_CHANNEL = "mjbot_inbox_answers"
PUSH = "push"
CANCEL = "cancel"
# NOTIFY payloads must stay under 8000 bytes: the provider's words are clipped to this.
_ANSWER_TEXT_LIMIT = 1500
_ENDED = [status.value for status in JobStatus if status.is_terminal]


@dataclass(frozen=True, slots=True)
class InboxItem:
    id: int
    job_id: str
    kind: str  # PUSH or CANCEL
    provider: str
    payload: str  # a push: the provider's JSON body as received
    received_at: float  # epoch seconds, the database's clock


@dataclass(frozen=True, slots=True)
class Placement:
    """What `put` found: whether the row was stored, and who holds the job now."""

    stored: bool
    owner: str | None  # None: the job is unowned (or unknown)
    live: bool  # the owner's lease has not expired by the database's clock
    ended: bool = False  # the job has ended: nothing to forward


_LOOK = (
    "SELECT owner, owner IS NOT NULL AND lease_expires_at > now(), status = ANY($2::text[])"
    " FROM jobs WHERE id = $1 FOR SHARE"
)
_INSERT = (
    "INSERT INTO webhook_inbox (job_id, kind, provider, payload) VALUES ($1, $2, $3, $4)"
    " RETURNING id"
)
# Only rows of jobs the database says are ours now; SKIP LOCKED: two readers never wait
# for each other, and a row one of them took is gone for the other.
_TAKE = """
DELETE FROM webhook_inbox WHERE id IN (
    SELECT w.id FROM webhook_inbox w JOIN jobs j ON j.id = w.job_id
    WHERE j.owner = $1 AND j.lease_expires_at > now() AND w.job_id = ANY($2::text[])
    ORDER BY w.id LIMIT $3
    FOR UPDATE OF w SKIP LOCKED)
RETURNING id, job_id, kind, provider, payload, EXTRACT(EPOCH FROM received_at)
"""

_SWEEP = """
DELETE FROM webhook_inbox w USING jobs j
WHERE j.id = w.job_id AND j.status = ANY($1::text[])
  AND w.received_at < now() - make_interval(secs => $2)
"""


class PgInbox:
    """The `webhook_inbox` table, seen from one process (`owner`)."""

    def __init__(self, db: PostgresDatabase, owner: str) -> None:
        self._db = db
        self.owner = owner

    async def put(self, job_id: str, kind: str, provider: str, payload: str) -> Placement:
        """Store a post or cancel for a job this process does not hold, and wake its owner.

        Not stored when the job is unknown or its live lease is ours (the caller applies it).
        A lapsed job's row is stored too: whoever adopts the job next applies it."""

        async def work(conn: asyncpg.Connection) -> Placement:
            row = await conn.fetchrow(_LOOK, job_id, _ENDED)
            if row is None:
                return Placement(False, None, False)
            owner, live = row[0], bool(row[1])
            if row[2]:
                return Placement(False, owner, live, ended=True)
            if owner == self.owner and live:
                return Placement(False, owner, True)
            await conn.fetchval(_INSERT, job_id, kind, provider, payload)
            if live:  # delivered at commit, so the owner finds the row when it looks
                await conn.execute("SELECT pg_notify($1, $2)", INBOX_CHANNEL, owner)
            return Placement(True, owner, live)

        return await self._db.write(work)

    async def take(self, job_ids: list[str], *, limit: int = 200) -> list[InboxItem]:
        """Remove and return (oldest first) the rows of `job_ids` that this process holds."""
        if not job_ids:
            return []

        async def work(conn: asyncpg.Connection) -> list[Any]:
            return list(await conn.fetch(_TAKE, self.owner, job_ids, limit))

        rows = await self._db.write_statement(work)
        items = [
            InboxItem(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), float(r[5]))
            for r in rows
        ]
        return sorted(items, key=lambda item: item.id)  # RETURNING has no order

    async def sweep(self, older_than_s: float = 60.0) -> int:
        """Drop rows of jobs that ended meanwhile (a post that crossed the job's end, or
        a cancel of a job that finished first): no owner takes them any more."""

        async def work(conn: asyncpg.Connection) -> str:
            return str(await conn.execute(_SWEEP, _ENDED, older_than_s))

        status = await self._db.write_statement(work)
        return int(status.rsplit(" ", 1)[-1]) if status.startswith("DELETE") else 0

    async def waiting(self) -> int:
        """Rows in the inbox, every owner's (for health figures and tests)."""

        async def work(conn: asyncpg.Connection) -> int:
            return int(await conn.fetchval("SELECT count(*) FROM webhook_inbox"))

        return await self._db.read(work)

    async def answer(self, job_id: str, answer: dict[str, Any]) -> None:
        """Tell every process that a forwarded cancel of `job_id` was applied (or refused)."""
        text = answer.get("provider_text")
        if isinstance(text, str):
            answer = {**answer, "provider_text": text[:_ANSWER_TEXT_LIMIT]}
        payload = json.dumps({"job_id": job_id, **answer})

        async def work(conn: asyncpg.Connection) -> None:
            await conn.execute("SELECT pg_notify($1, $2)", ANSWER_CHANNEL, payload)

        await self._db.write_statement(work)
