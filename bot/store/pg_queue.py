"""One account limit and one members' queue for all processes on PostgreSQL (issue 17).

On SQLite (one process) the engine's own `FairQueue` and the pool's counters decide what is
sent next. Here several processes share the jobs, so both live in the database
(migration 0003):

- a dispatch is one transaction: it locks the pool's `accounts` rows (ORDER BY name, so
  dispatchers wait for each other and never deadlock), counts each account's slots in use
  across every process (`jobs.slot_account`), and while an account has room grants the
  next job of the members' round-robin that some account can take, exactly as
  `FairQueue.pop_where` would choose it: lanes in `member_turns` order, each from its
  head; the member served moves to the back. The grant sets the job's `slot_account`;
  the job's own process (its lease holder, which alone edits its message) sends it, woken
  by a NOTIFY on `DISPATCH_CHANNEL`;
- a slot is given back by the job's terminal save (`slot_account` cleared in the same
  statement) or when the job goes back to the queue (`requeue`). Nothing else frees it:
  the jobs of a killed process keep their slots until another process has taken them
  over (their leases lapse) and finished them, so the limit holds through a crash too;
- only jobs whose owner's lease is alive are granted: a dead process's queued jobs wait
  for their takeover rather than hold a slot nobody would use (a job granted just before
  its owner died keeps the slot; whoever takes it over finds it granted and sends it);
- the limits are those of the process that dispatches (its configured pool; processes
  are meant to share one configuration), the count is every process's: a process never
  adds a job beyond its limit, whoever holds the others. `accounts` keeps the names (the
  lock) and the limits last registered, for operators;
- queue positions shown to members are read from the same order (`positions`), one
  statement for every job a process shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

from bot.domain import Job
from bot.store.serialize import job_from_dict

if TYPE_CHECKING:
    from bot.store.postgres import PostgresDatabase

log = logging.getLogger(__name__)

# NOTIFY channel: the payload is the owner whose jobs were granted a slot.
DISPATCH_CHANNEL = "mjbot_dispatch"
# A dispatch looks at this many waiting jobs at most per free slot (bounded work when every
# account with room is one the waiting jobs cannot use; FairQueue's PUMP_SCAN_LIMIT).
SCAN_LIMIT = 500

# The order of the members' round-robin: lanes by turn, each lane from its head (jobs put
# back at the front first, the latest first; then the others in the order they came).
_LANE_KEY = "CASE WHEN j.queued_front THEN -j.queued_seq ELSE j.queued_seq END"
_WAITING = "j.status = 'queued' AND j.slot_account IS NULL"
_MEMBER = "COALESCE(j.requester_id, '')"

# Is anything waiting at all? One cheap read (the jobs_waiting index) spares the dispatch
# transaction when not: a job queued after it wakes a dispatch of its own.
_ANY_WAITING = f"SELECT EXISTS (SELECT 1 FROM jobs j WHERE {_WAITING})"
_LOCK_ACCOUNTS = "SELECT name FROM accounts WHERE name = ANY($1::text[]) ORDER BY name FOR UPDATE"
_SLOTS = (
    "SELECT slot_account, count(*) FROM jobs WHERE slot_account = ANY($1::text[])"
    " GROUP BY slot_account"
)
_CANDIDATES = f"""
SELECT j.id, j.data, j.owner, t.requester_id FROM jobs j
JOIN member_turns t ON t.requester_id = {_MEMBER}
WHERE {_WAITING}
  AND j.owner IS NOT NULL AND j.lease_expires_at > now()
  AND (j.not_before IS NULL OR j.not_before <= now())
ORDER BY t.turn, {_LANE_KEY}
LIMIT $1
"""
# Re-checked on the row's latest version: a job cancelled meanwhile is not granted a slot
# (nothing would ever give it back). The member served goes to the back of the ring.
_GRANT = """
WITH g AS (
    UPDATE jobs SET slot_account = $2
    WHERE id = $1 AND status = 'queued' AND slot_account IS NULL RETURNING id
)
UPDATE member_turns SET turn = nextval('queue_turns')
WHERE requester_id = $3 AND EXISTS (SELECT 1 FROM g)
"""
# Back to the front of its member's lane (FairQueue.push(front=True)), fenced by the lease.
_REQUEUE = """
WITH j AS (
    UPDATE jobs SET slot_account = NULL, queued_front = true,
        queued_seq = nextval('queue_turns'),
        not_before = CASE WHEN $4 > 0 THEN now() + make_interval(secs => $4) END
    WHERE id = $1 AND owner = $2 AND lease_epoch = $3 AND status = 'queued'
    RETURNING id, COALESCE(requester_id, '') AS member
)
SELECT queue_push_turn(j.member, j.id) FROM j
"""
_GRANTED = (
    "SELECT id, slot_account FROM jobs"
    " WHERE owner = $1 AND status = 'queued' AND slot_account IS NOT NULL"
)
# Position = place in FairQueue.order(): depth in the member's lane first, then the turn.
_POSITIONS = f"""
WITH w AS (
    SELECT j.id, j.owner, t.turn,
        row_number() OVER (PARTITION BY t.requester_id ORDER BY {_LANE_KEY}) AS depth
    FROM jobs j JOIN member_turns t ON t.requester_id = {_MEMBER}
    WHERE {_WAITING}
), r AS (
    SELECT id, owner, row_number() OVER (ORDER BY depth, turn) AS position FROM w
)
SELECT id, position FROM r WHERE owner = $1
"""

# Which account a waiting job would go to, given the slots in use per account (None: it
# waits). The engine's placement rules (follow-ups to their parent's account, the least
# loaded account that serves the operation).
Place = Callable[[Job, Mapping[str, int]], str | None]


@dataclass(frozen=True, slots=True)
class Grant:
    """A slot granted to a job: the account, and the process that is to send it."""

    job_id: str
    account: str
    owner: str


class PostgresSharedQueue:
    """The dispatch transaction and its reads, for one process (`owner`)."""

    def __init__(
        self,
        db: PostgresDatabase,
        owner: Callable[[], str],
        epoch: Callable[[str], int | None],
        database_url: str | None,
    ) -> None:
        self._db = db
        self._owner = owner
        self._epoch = epoch  # the lease epoch this process holds a job at
        self._url = database_url
        self._listener: asyncpg.Connection | None = None
        self.dispatches = 0  # dispatch transactions run (for tests and figures)

    @property
    def owner(self) -> str:
        return self._owner()

    async def register_accounts(self, limits: Mapping[str, int]) -> None:
        """Make the pool's accounts rows exist (the lock of a dispatch), with their limits."""
        names, values = list(limits), [int(limits[n]) for n in limits]

        async def work(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO accounts (name, max_concurrent_jobs, updated_at)"
                " SELECT n, l, $3 FROM unnest($1::text[], $2::int[]) AS a(n, l)"
                " ON CONFLICT (name) DO UPDATE SET"
                " max_concurrent_jobs = excluded.max_concurrent_jobs,"
                " updated_at = excluded.updated_at",
                names,
                values,
                time.time(),
            )

        await self._db.write_statement(work)

    async def dispatch(
        self,
        limits: Mapping[str, int],
        place: Place,
        *,
        scan_limit: int = SCAN_LIMIT,
        known_waiting: bool = False,
    ) -> list[Grant]:
        """Grant slots to waiting jobs of every process while an account has room, in the
        members' round-robin order; returns the grants (this process's and the others').
        `known_waiting`: the caller has jobs waiting, so the first cheap look is skipped."""
        me = self.owner

        async def waiting(conn: asyncpg.Connection) -> bool:
            return bool(await conn.fetchval(_ANY_WAITING))

        if not known_waiting and not await self._db.read(waiting):
            return []

        async def work(conn: asyncpg.Connection) -> list[Grant]:
            names = sorted(limits)
            await conn.fetch(_LOCK_ACCOUNTS, names)
            used = {name: 0 for name in names}
            for name, count in await conn.fetch(_SLOTS, names):
                used[str(name)] = int(count)
            grants: list[Grant] = []
            more = True
            while more and any(used[n] < limits[n] for n in names):
                grant, more = await _grant_next(conn, used, place, scan_limit)
                if grant is None:
                    break
                grants.append(grant)
                used[grant.account] += 1
            for owner in sorted({g.owner for g in grants} - {me}):
                await conn.execute("SELECT pg_notify($1, $2)", DISPATCH_CHANNEL, owner)
            return grants

        grants = await self._db.write(work)
        self.dispatches += 1
        return grants

    async def granted(self) -> dict[str, str]:
        """This process's jobs granted a slot and not yet sent: job id -> account."""
        owner = self.owner

        async def work(conn: asyncpg.Connection) -> dict[str, str]:
            return {str(i): str(a) for i, a in await conn.fetch(_GRANTED, owner)}

        return await self._db.read(work)

    async def requeue(self, job_id: str, delay_s: float) -> bool:
        """The job gives its slot back and waits at the front of its member's lane, for
        `delay_s` seconds of the database's clock at least. False if it is not ours."""
        owner, epoch = self.owner, self._epoch(job_id)
        if epoch is None:
            return False

        async def work(conn: asyncpg.Connection) -> bool:
            rows = await conn.fetch(_REQUEUE, job_id, owner, epoch, float(max(0.0, delay_s)))
            return bool(rows)

        return await self._db.write_statement(work)

    async def positions(self) -> dict[str, int]:
        """1-based place of each of this process's waiting jobs in the shared order."""
        owner = self.owner

        async def work(conn: asyncpg.Connection) -> dict[str, int]:
            return {str(i): int(p) for i, p in await conn.fetch(_POSITIONS, owner)}

        return await self._db.read(work)

    async def listen(self, callback: Callable[[], None]) -> None:
        """`callback()` whenever another process granted a slot to one of our jobs."""
        if self._url is None or self._listener is not None:
            return
        # Its own connection: LISTEN lasts for a session, and pooled ones change hands.
        self._listener = await asyncpg.connect(self._url)

        def notified(conn: object, pid: int, channel: str, payload: str) -> None:
            if payload == self.owner:
                callback()

        await self._listener.add_listener(DISPATCH_CHANNEL, notified)

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.close(), timeout=5)


async def _grant_next(
    conn: asyncpg.Connection, used: Mapping[str, int], place: Place, scan_limit: int
) -> tuple[Grant | None, bool]:
    """The first waiting job in round-robin order that an account can take now, granted;
    and whether more jobs wait after it (if not, no second look is needed)."""
    grant: Grant | None = None
    async for row in conn.cursor(_CANDIDATES, scan_limit, prefetch=32):
        if grant is not None:
            return grant, True  # another job waits
        job = job_from_dict(json.loads(row["data"]))
        account = place(job, used)
        if account is None:
            continue
        granted = await conn.execute(_GRANT, row["id"], account, row["requester_id"])
        if granted == "UPDATE 1":  # else ended or granted since the cursor read it
            grant = Grant(str(row["id"]), account, str(row["owner"]))
    return grant, False
