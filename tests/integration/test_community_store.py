"""Server settings, the audit log and usage figures on a real SQLite file and on a real
PostgreSQL database: round trips, reopening, ordering, numbers that add up across units,
statuses and servers; and SQLite's 0004 migration on a database made by the older ones."""

from __future__ import annotations

import calendar
import json
import sqlite3
from collections.abc import AsyncIterator
from decimal import Decimal
from importlib import resources
from itertools import count
from pathlib import Path

import pytest

from bot.community import DAY_SECONDS, GuildSettings, Limits
from bot.domain import (
    Cost,
    ErrorCode,
    Job,
    JobError,
    JobStatus,
    Operation,
    OperationKind,
    SpeedMode,
)
from bot.store import load_migrations, open_store
from bot.store.base import AuditEntry, DailyUsage, Store, UsageSummary
from bot.store.sqlite import V1_JOB_COLUMNS, _row
from tests.pg import StoreBackend

DAY0 = float(calendar.timegm((2024, 5, 1, 0, 0, 0)))  # a UTC midnight
_ids = count(1)


def job(
    *,
    guild: str | None = "g1",
    user: str | None = "alice",
    at: float = DAY0 + 3600,
    status: JobStatus = JobStatus.COMPLETED,
    mode: SpeedMode | None = SpeedMode.FAST,
    cost: str | None = None,
    unit: str = "point",
    error: ErrorCode | None = None,
    kind: OperationKind = OperationKind.IMAGINE,
) -> Job:
    return Job(
        id=f"job{next(_ids):09d}",
        operation=Operation(kind, prompt="a kite", mode=mode),
        provider="piapi",
        status=status,
        requester_id=user,
        guild_id=guild,
        channel_id="c1",
        cost=Cost(Decimal(cost), unit) if cost is not None else None,
        error=JobError(error, "refused") if error is not None else None,
        created_at=at,
        updated_at=at,
        finished_at=at + 60 if status.is_terminal else None,
    )


async def insert(store: Store, *jobs: Job) -> None:
    for j in jobs:
        _, created = await store.jobs.insert(j)
        assert created


def insert_as_an_older_bot(path: str, *jobs: Job) -> None:
    """Rows as a bot from before migration 0005 wrote them: the first schema's columns."""
    marks = ", ".join("?" for _ in V1_JOB_COLUMNS)
    with sqlite3.connect(path) as conn:
        for j in jobs:
            conn.execute(
                f"INSERT INTO jobs ({', '.join(V1_JOB_COLUMNS)}) VALUES ({marks})",
                _row(j)[: len(V1_JOB_COLUMNS)],
            )


# --- settings -----------------------------------------------------------------------------


async def test_settings_default_round_trip_and_survive_reopening(
    store_backend: StoreBackend,
) -> None:
    custom = GuildSettings(
        "g1",
        allowed_channel_ids=("10",),
        allowed_role_ids=("20", "21"),
        default_mode="relax",
        allowed_modes=("relax", "fast"),
        follow_up_clicks="requester",
        limits=Limits(1, None, 0),
        role_limits={"20": Limits(5, 50, None)},
        spoiler_flagged=False,
        banned_words_added=("dragon",),
        banned_words_removed=("blood",),
        moderation_error_budget=1,
    )
    async with await store_backend.open() as store:
        assert await store.guilds.get("g1") == GuildSettings("g1")
        await store.guilds.save(custom)
        assert await store.guilds.get("g1") == custom
        assert await store.guilds.get("g2") == GuildSettings("g2")  # per server
    async with await store_backend.open() as store:
        assert await store.guilds.get("g1") == custom
        # Saving again replaces the row.
        await store.guilds.save(custom.with_changes(default_mode="turbo"))
        assert (await store.guilds.get("g1")).default_mode == "turbo"
    rows = await store_backend.fetch("SELECT guild_id, data FROM guild_settings")
    assert [r[0] for r in rows] == ["g1"]
    assert json.loads(rows[0][1])["role_limits"]["20"]["jobs_per_day"] == 50


async def test_settings_from_a_newer_bot_read_back(store_backend: StoreBackend) -> None:
    async with await store_backend.open():
        pass
    await store_backend.execute(
        "INSERT INTO guild_settings (guild_id, data, updated_at) VALUES (?, ?, 0)",
        "g1",
        json.dumps({"default_mode": "relax", "some_future_setting": [1, 2]}),
    )
    async with await store_backend.open() as store:
        assert await store.guilds.get("g1") == GuildSettings("g1", default_mode="relax")


# --- audit ---------------------------------------------------------------------------------


async def test_audit_is_newest_first_per_server_and_limited(store_backend: StoreBackend) -> None:
    async with await store_backend.open() as store:
        await store.audit.record("g1", "admin", "modes", "default_mode: fast → relax", 100.0)
        await store.audit.record("g1", "admin", "limits", "limits.jobs_per_day: 100 → 5", 300.0)
        await store.audit.record("g2", "other", "clicks", "follow_up_clicks: …", 400.0)
        await store.audit.record("g1", "mod", "spoiler", "spoiler_flagged: on → off", 200.0)
        # Two changes in the same instant: the later recorded comes first.
        await store.audit.record("g1", "mod", "banned add", "first", 300.0)
    async with await store_backend.open() as store:
        entries = await store.audit.recent("g1")
        assert [e.detail for e in entries] == [
            "first",
            "limits.jobs_per_day: 100 → 5",
            "spoiler_flagged: on → off",
            "default_mode: fast → relax",
        ]
        assert entries[-1] == AuditEntry(
            "g1", "admin", "modes", "default_mode: fast → relax", 100.0
        )
        assert [e.action for e in await store.audit.recent("g1", limit=2)] == [
            "banned add",
            "limits",
        ]
        assert await store.audit.recent("g3") == []
        with pytest.raises(ValueError):
            await store.audit.recent("g1", limit=-1)


# --- usage -------------------------------------------------------------------------------


@pytest.fixture
async def store(store_backend: StoreBackend) -> AsyncIterator[Store]:
    opened = await store_backend.open()
    yield opened
    await opened.close()  # closing twice is harmless


async def test_member_usage_adds_up(store: Store) -> None:
    async with store:
        await insert(
            store,
            job(cost="10"),
            job(cost="2.5", mode=SpeedMode.TURBO),
            job(status=JobStatus.FAILED, cost="1", mode=SpeedMode.RELAX),  # charged anyway
            job(status=JobStatus.CANCELLED, mode=SpeedMode.RELAX),  # no cost reported
            job(status=JobStatus.RUNNING, mode=None, kind=OperationKind.UPSCALE),
            job(cost="0.015", unit="usd"),  # another unit stays apart
            job(at=DAY0 - 1, cost="100"),  # the day before
            job(user="bob", cost="7"),
            job(guild="g2", cost="9"),
            job(guild=None, cost="9"),  # a DM
        )
        today = await store.usage.member_summary("g1", "alice", since=DAY0)
        assert today == UsageSummary(
            jobs=6,
            completed=3,
            fast=3,
            costs={"point": Decimal("13.5"), "usd": Decimal("0.015")},
        )
        assert isinstance(today.costs["point"], Decimal)
        earlier = await store.usage.member_summary("g1", "alice", since=DAY0 - DAY_SECONDS)
        assert earlier.jobs == 7 and earlier.costs["point"] == Decimal("113.5")
        assert await store.usage.member_summary("g1", "carol", since=DAY0) == UsageSummary()

        assert await store.usage.count_since("g1", "alice", DAY0) == 6
        assert await store.usage.count_since("g1", "alice", DAY0, modes={"fast", "turbo"}) == 3
        assert await store.usage.count_since("g1", "alice", DAY0, modes=["relax"]) == 2
        assert await store.usage.count_since("g1", "alice", DAY0, modes=[]) == 0
        assert await store.usage.count_since("g1", "alice", DAY0 + DAY_SECONDS) == 0
        assert await store.usage.count_active("g1", "alice") == 1
        assert await store.usage.count_active("g1", "bob") == 0


async def test_active_jobs_are_every_non_terminal_status(store: Store) -> None:
    async with store:
        for status in JobStatus:
            await insert(store, job(status=status, at=DAY0 - 30 * DAY_SECONDS))
        active = sum(1 for s in JobStatus if s.is_active)
        assert await store.usage.count_active("g1", "alice") == active == 3


async def test_guild_summary_and_top_members(store: Store) -> None:
    async with store:
        await insert(
            store,
            job(user="alice", cost="5"),
            job(user="alice", cost="5"),
            job(user="bob", cost="20"),
            job(user="carol", status=JobStatus.FAILED),
            job(user="carol", status=JobStatus.FAILED),
            job(user="carol", status=JobStatus.FAILED),
            job(user="dave", cost="1", unit="usd"),  # the odd unit out does not rank
            job(user="erin", cost="10"),
            job(user=None, cost="3"),  # no requester: in the totals, not in the ranking
            job(guild="g2", user="zed", cost="1000"),
        )
        total = await store.usage.guild_summary("g1", since=DAY0)
        assert total == UsageSummary(
            jobs=9, completed=6, fast=9, costs={"point": Decimal(43), "usd": Decimal(1)}
        )
        top = await store.usage.top_members("g1", since=DAY0)
        assert [user for user, _ in top] == ["bob", "alice", "erin", "carol", "dave"]
        by_user = dict(top)
        assert by_user["alice"] == UsageSummary(2, 2, 2, {"point": Decimal(10)})
        assert by_user["carol"] == UsageSummary(3, 0, 3, {})
        assert by_user["dave"].costs == {"usd": Decimal(1)}
        assert [u for u, _ in await store.usage.top_members("g1", since=DAY0, limit=2)] == [
            "bob",
            "alice",
        ]
        # The per-member figures add up to the server's.
        assert sum(s.jobs for _, s in top) + 1 == total.jobs
        assert sum((s.costs.get("point", Decimal(0)) for _, s in top), Decimal(3)) == Decimal(43)
        assert await store.usage.top_members("g3", since=DAY0) == []


async def test_daily_totals_are_zero_filled_utc_days(store: Store) -> None:
    async with store:
        await insert(
            store,
            job(at=DAY0 - 1, cost="100"),  # before the window
            job(at=DAY0, cost="1"),  # the first instant of day 0
            job(at=DAY0 + DAY_SECONDS - 0.5, cost="2"),
            job(at=DAY0 + DAY_SECONDS - 0.5, status=JobStatus.FAILED),
            job(at=DAY0 + 2 * DAY_SECONDS + 10, cost="0.5", unit="usd"),
            job(at=DAY0 + 3 * DAY_SECONDS, cost="50"),  # after the window
            job(at=DAY0 + 10, cost="5", guild="g2"),
        )
        # `since` anywhere in the first day starts the window at its midnight.
        days = await store.usage.daily_totals("g1", since=DAY0 + 5000, days=3)
        assert days == [
            DailyUsage("2024-05-01", jobs=3, costs={"point": Decimal(3)}),
            DailyUsage("2024-05-02", jobs=0, costs={}),
            DailyUsage("2024-05-03", jobs=1, costs={"usd": Decimal("0.5")}),
        ]
        assert await store.usage.daily_totals("g1", since=DAY0, days=0) == []
        month = await store.usage.daily_totals("g1", since=DAY0 - 29 * DAY_SECONDS, days=30)
        assert len(month) == 30 and month[-1].date == "2024-05-01"
        assert month[0].date == "2024-04-02"
        assert sum(d.jobs for d in month) == 4


async def test_moderation_failures(store: Store) -> None:
    async with store:
        await insert(
            store,
            job(status=JobStatus.FAILED, error=ErrorCode.MODERATED),
            job(status=JobStatus.FAILED, error=ErrorCode.MODERATED, mode=SpeedMode.RELAX),
            job(status=JobStatus.FAILED, error=ErrorCode.GENERATION_FAILED),
            job(status=JobStatus.FAILED, error=ErrorCode.MODERATED, at=DAY0 - 10),
            job(status=JobStatus.FAILED, error=ErrorCode.MODERATED, user="bob"),
            job(status=JobStatus.FAILED, error=ErrorCode.MODERATED, guild="g2"),
            job(status=JobStatus.COMPLETED),
        )
        assert await store.usage.moderation_failures_since("g1", "alice", DAY0) == 2
        assert await store.usage.moderation_failures_since("g1", "alice", DAY0 - 60) == 3
        assert await store.usage.moderation_failures_since("g1", "bob", DAY0) == 1
        assert await store.usage.moderation_failures_since("g1", "carol", DAY0) == 0


async def test_saved_job_changes_show_in_usage(store: Store) -> None:
    async with store:
        running = job(status=JobStatus.RUNNING)
        await insert(store, running)
        assert await store.usage.count_active("g1", "alice") == 1
        assert (await store.usage.member_summary("g1", "alice", since=DAY0)).costs == {}
        running.status = JobStatus.COMPLETED
        running.cost = Cost(Decimal("4.25"), "point")
        await store.jobs.save(running)
        assert await store.usage.count_active("g1", "alice") == 0
        summary = await store.usage.member_summary("g1", "alice", since=DAY0)
        assert summary == UsageSummary(1, 1, 1, {"point": Decimal("4.25")})


# --- the migration -----------------------------------------------------------------------


async def test_migration_applies_to_a_database_made_by_the_old_migrations(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "bot.db")
    old = [m for m in load_migrations() if m.version < 4]
    assert [m.version for m in old] == [1, 2, 3]
    async with await open_store(path, migrations=old):
        pass
    insert_as_an_older_bot(
        path,
        job(cost="2", error=ErrorCode.MODERATED, status=JobStatus.FAILED),
        job(status=JobStatus.RUNNING),
    )
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "guild_settings" not in tables and "audit_log" not in tables

    async with await open_store(path) as store:
        assert len(await store.jobs.list_active()) == 1  # old rows read as before
        assert (await store.usage.member_summary("g1", "alice", since=DAY0)).costs == {
            "point": Decimal(2)
        }
        # Mode and error code were copied out of the old rows' JSON (migration 0005).
        counts = await store.usage.quota_counts("g1", "alice", DAY0)
        assert (counts.active, counts.since, counts.fast_since, counts.moderated_since) == (
            1,
            2,
            2,
            1,
        )
        assert await store.guilds.get("g1") == GuildSettings("g1")
        await store.audit.record("g1", "admin", "modes", "x", 1.0)
    with sqlite3.connect(path) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        # The file itself can run again without harm (IF NOT EXISTS throughout).
        sql = resources.files("bot.store").joinpath("migrations", "0004_community.sql")
        conn.executescript(sql.read_text("utf-8"))
        assert conn.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0] == 1
    assert versions == [1, 2, 3, 4, 5, 6]
    assert "jobs_member_usage" in indexes


async def test_member_queries_use_the_new_index(tmp_path: Path) -> None:
    async with await open_store(str(tmp_path / "bot.db")) as store:
        rows = await store.db.connection.execute_fetchall(
            "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM jobs"
            " WHERE guild_id = ? AND requester_id = ? AND created_at >= ?",
            ("g1", "alice", 0.0),
        )
    plan = " ".join(str(r[-1]) for r in rows)
    assert "jobs_member_usage" in plan, plan


async def test_member_queries_can_use_the_usage_index_on_postgres(pg_url: str) -> None:
    # On a few rows the planner rightly prefers a scan; with scans priced out, the plan
    # shows that the index answers the quota count (a real database holds many rows).
    async with await open_store(pg_url) as store, store.db.pool.acquire() as conn:
        await conn.execute("SET enable_seqscan = off")
        rows = await conn.fetch(
            "EXPLAIN SELECT COUNT(*) FROM jobs"
            " WHERE guild_id = $1 AND requester_id = $2 AND created_at >= $3",
            "g1",
            "alice",
            0.0,
        )
    plan = " ".join(str(r[0]) for r in rows)
    assert "jobs_member_usage" in plan, plan
