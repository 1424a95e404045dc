"""The SQLite store against real database files: round trips, idempotency, ordering,
migrations, locking, and surviving a killed process."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sqlite3
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain import (
    Action,
    BlendDimension,
    Cost,
    ErrorCode,
    Job,
    JobError,
    JobStatus,
    Operation,
    OperationKind,
    PanDirection,
    Placement,
    Size,
    SpeedMode,
)
from bot.store import (
    JobExistsError,
    JobNotFoundError,
    Migration,
    MigrationError,
    SchemaVersionError,
    SqliteStore,
    StoreBusyError,
    job_from_dict,
    job_to_dict,
    load_migrations,
    open_store,
    sqlite_path_from_url,
)
from bot.store.sqlite import split_sql

REPO_ROOT = Path(__file__).resolve().parents[2]


# --- helpers ----------------------------------------------------------------------------


def full_job(job_id: str = "full00000001") -> Job:
    """A job with every field set to something other than its default."""
    return Job(
        id=job_id,
        operation=Operation(
            kind=OperationKind.OUTPAINT,
            prompt="a lighthouse at dusk --ar 16:9 — «ünïcode» ✨",
            aspect_ratio="16:9",
            mode=SpeedMode.TURBO,
            parent_job_id="parent000001",
            index=3,
            variant="creative",
            zoom_ratio=Decimal("1.5"),
            direction=PanDirection.LEFT,
            image_urls=("https://cdn.example/a.png", "https://cdn.example/b.png"),
            dimension=BlendDimension.LANDSCAPE,
            mask_png_base64="iVBORw0KGgo=",
            canvas=Size(2048, 1024),
            placement=Placement(width=1024, height=1024, x=512, y=0),
            raw_action="MJ::Outpaint::50::1::SOLO",
        ),
        provider="piapi",
        status=JobStatus.FAILED,
        requester_id="111111111111111111",
        guild_id="222222222222222222",
        channel_id="333333333333333333",
        idempotency_key="interaction:444",
        provider_ref="task-abc-123",
        provider_data={"upstream": {"id": 7, "buttons": ["a", "b"]}, "ratio": 0.25, "ok": True},
        progress=93,
        preview_url="https://cdn.example/preview.webp",
        result_url="https://cdn.example/grid.png",
        tiles=["https://cdn.example/1.png", "https://cdn.example/2.png"],
        actions=[
            Action(name="upscale_1", raw="upsample1", images=(1,)),
            Action(name="variation_strong", raw="high_variation", images=(1, 2, 3, 4)),
            Action(name="reroll", raw="reroll"),
        ],
        cost=Cost(amount=Decimal("0.0450000000000000001"), unit="usd"),
        error=JobError(
            code=ErrorCode.MODERATED,
            message="The prompt was refused.",
            provider_text="Banned prompt detected: 'x'",
        ),
        seed="123456789",
        prompts=["one prompt", "another prompt"],
        queue_position=4,
        raw_status="FAILURE",
        created_at=1_800_000_000.125,
        submit_started_at=1_800_000_001.5,
        submitted_at=1_800_000_002.25,
        updated_at=1_800_000_100.75,
        last_change_at=1_800_000_090.0,
        finished_at=1_800_000_100.75,
        polls=17,
        delivery_hint={"channel_id": "42", "message_id": "43", "upload_limit": 8388608},
        account="second",
    )


def minimal_job(
    job_id: str,
    *,
    created_at: float = 0.0,
    status: JobStatus = JobStatus.QUEUED,
    requester_id: str | None = None,
    guild_id: str | None = None,
    key: str | None = None,
    provider: str = "piapi",
    provider_ref: str | None = None,
) -> Job:
    return Job(
        id=job_id,
        operation=Operation(kind=OperationKind.IMAGINE, prompt=f"prompt {job_id}"),
        provider=provider,
        status=status,
        requester_id=requester_id,
        guild_id=guild_id,
        idempotency_key=key,
        provider_ref=provider_ref,
        created_at=created_at,
        updated_at=created_at,
    )


def raw(path: Path) -> contextlib.closing[sqlite3.Connection]:
    """A plain sqlite3 connection beside the store's, closed when the `with` ends."""
    return contextlib.closing(sqlite3.connect(path, isolation_level=None, check_same_thread=False))


def row_count(path: Path, table: str = "jobs") -> int:
    with raw(path) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def migration_files() -> list[str]:
    folder = resources.files("bot.store").joinpath("migrations")
    return sorted(e.name for e in folder.iterdir() if e.name.endswith(".sql"))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "bot.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await open_store(f"sqlite:///{db_path}")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def lock_holder(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A second, raw connection that tests use to take the write lock themselves."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.rollback()
        conn.close()


# --- round trips ------------------------------------------------------------------------


def test_full_job_fixture_sets_every_field() -> None:
    # Guards the round-trip test: a new Job field must be populated here too.
    job = full_job()
    defaults = Job(id="x", operation=Operation(kind=OperationKind.IMAGINE), provider="p")
    for f in dataclasses.fields(Job):
        assert getattr(job, f.name) != getattr(defaults, f.name), f.name
    for f in dataclasses.fields(Operation):
        assert getattr(job.operation, f.name) != getattr(defaults.operation, f.name), f.name


async def test_full_job_round_trips(store: SqliteStore) -> None:
    job = full_job()
    stored, created = await store.jobs.insert(job)
    assert created and stored is job
    loaded = await store.jobs.get(job.id)
    assert loaded == job
    assert loaded is not job
    assert loaded.cost is not None and loaded.cost.amount == Decimal("0.0450000000000000001")
    assert isinstance(loaded.cost.amount, Decimal)
    assert loaded.operation.zoom_ratio == Decimal("1.5")
    assert loaded.actions[0].images == (1,) and loaded.actions[2].images is None
    assert loaded.error == job.error
    assert await store.jobs.get_by_idempotency_key("interaction:444") == job
    assert await store.jobs.get_by_provider_ref("piapi", "task-abc-123") == job


async def test_minimal_job_round_trips(store: SqliteStore) -> None:
    job = Job(id="min000000001", operation=Operation(kind=OperationKind.DESCRIBE), provider="vtrix")
    await store.jobs.insert(job)
    loaded = await store.jobs.get(job.id)
    assert loaded == job
    assert loaded is not None
    assert loaded.tiles is None and loaded.actions == [] and loaded.provider_data == {}


async def test_indexed_columns_mirror_the_job(store: SqliteStore, db_path: Path) -> None:
    job = full_job()
    await store.jobs.insert(job)
    with raw(db_path) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job.id,)).fetchone()
    assert row["idempotency_key"] == job.idempotency_key
    assert (row["provider"], row["provider_ref"]) == ("piapi", "task-abc-123")
    assert row["status"] == "failed"
    assert (row["requester_id"], row["guild_id"], row["channel_id"]) == (
        job.requester_id,
        job.guild_id,
        job.channel_id,
    )
    assert row["parent_job_id"] == "parent000001"
    assert (row["created_at"], row["updated_at"], row["finished_at"]) == (
        job.created_at,
        job.updated_at,
        job.finished_at,
    )
    assert json.loads(row["data"]) == job_to_dict(job)


async def test_get_missing_returns_none(store: SqliteStore) -> None:
    assert await store.jobs.get("nope") is None
    assert await store.jobs.get_by_idempotency_key("nope") is None
    assert await store.jobs.get_by_provider_ref("piapi", "nope") is None


async def test_save_persists_every_change(store: SqliteStore) -> None:
    job = minimal_job("save00000001", key="k1", created_at=10.0)
    await store.jobs.insert(job)
    job.status = JobStatus.COMPLETED
    job.provider_ref = "ref-9"
    job.progress = 100
    job.tiles = ["t1", "t2", "t3", "t4"]
    job.actions = [Action(name="upscale_2", raw="U2", images=(2,))]
    job.cost = Cost(Decimal("2"), "point")
    job.provider_data["button_ids"] = {"U2": "xyz"}
    job.finished_at = job.updated_at = 20.0
    job.polls = 5
    await store.jobs.save(job)
    assert await store.jobs.get(job.id) == job
    assert await store.jobs.get_by_provider_ref("piapi", "ref-9") == job
    assert await store.jobs.list_active() == []


async def test_save_of_unknown_job_raises(store: SqliteStore) -> None:
    with pytest.raises(JobNotFoundError):
        await store.jobs.save(minimal_job("ghost0000001"))
    assert await store.jobs.get("ghost0000001") is None


async def test_duplicate_id_raises_and_store_stays_usable(store: SqliteStore) -> None:
    await store.jobs.insert(minimal_job("dup000000001"))
    with pytest.raises(JobExistsError):
        await store.jobs.insert(minimal_job("dup000000001", created_at=5.0))
    # The failed transaction was rolled back, not left open.
    assert not store.db.connection.in_transaction
    await store.jobs.insert(minimal_job("dup000000002"))
    assert [j.id for j in await store.jobs.list_active()] == ["dup000000001", "dup000000002"]


# --- idempotency ------------------------------------------------------------------------


async def test_idempotency_conflict_returns_existing(store: SqliteStore, db_path: Path) -> None:
    first = minimal_job("first0000001", key="click:1", requester_id="u1", created_at=1.0)
    second = minimal_job("second000001", key="click:1", requester_id="u1", created_at=2.0)
    assert await store.jobs.insert(first) == (first, True)
    existing, created = await store.jobs.insert(second)
    assert not created
    assert existing == first
    assert await store.jobs.get(second.id) is None
    assert row_count(db_path) == 1


async def test_jobs_without_key_never_conflict(store: SqliteStore, db_path: Path) -> None:
    for i in range(3):
        _, created = await store.jobs.insert(minimal_job(f"nokey{i:07d}"))
        assert created
    assert row_count(db_path) == 3


async def test_concurrent_inserts_with_one_key_create_one_job(
    store: SqliteStore, db_path: Path
) -> None:
    jobs = [minimal_job(f"race{i:08d}", key="double-click") for i in range(20)]
    results = await asyncio.gather(*(store.jobs.insert(j) for j in jobs))
    winners = [job for job, created in results if created]
    assert len(winners) == 1
    assert {job.id for job, _ in results} == {winners[0].id}
    assert row_count(db_path) == 1


async def test_concurrent_inserts_across_connections(store: SqliteStore, db_path: Path) -> None:
    # Two stores on one file stand for two processes: the unique index decides.
    other = await open_store(str(db_path))
    try:
        jobs = [minimal_job(f"xconn{i:07d}", key="shared") for i in range(20)]
        results = await asyncio.gather(
            *((store if i % 2 else other).jobs.insert(j) for i, j in enumerate(jobs))
        )
    finally:
        await other.close()
    assert sum(created for _, created in results) == 1
    assert len({job.id for job, _ in results}) == 1
    assert row_count(db_path) == 1


# --- queries ----------------------------------------------------------------------------


async def test_list_active_is_oldest_first_and_skips_terminal(store: SqliteStore) -> None:
    specs = [
        ("a", 30.0, JobStatus.RUNNING),
        ("b", 10.0, JobStatus.QUEUED),
        ("c", 20.0, JobStatus.COMPLETED),
        ("d", 20.0, JobStatus.SUBMITTED),
        ("e", 20.0, JobStatus.QUEUED),  # same time as d: insertion order breaks the tie
        ("f", 5.0, JobStatus.FAILED),
        ("g", 1.0, JobStatus.CANCELLED),
        ("h", 2.0, JobStatus.TIMED_OUT),
    ]
    for job_id, created_at, status in specs:
        await store.jobs.insert(minimal_job(job_id, created_at=created_at, status=status))
    assert [j.id for j in await store.jobs.list_active()] == ["b", "d", "e", "a"]


async def test_list_for_requester_newest_first_with_paging(store: SqliteStore) -> None:
    specs = [
        ("u1-old", "u1", "g1", 100.0),
        ("u1-mid-a", "u1", "g2", 200.0),
        ("u1-mid-b", "u1", "g1", 200.0),  # tie with mid-a: the later insert is newer
        ("u1-new", "u1", "g1", 300.0),
        ("u1-dm", "u1", None, 250.0),
        ("u2-only", "u2", "g1", 400.0),
    ]
    for job_id, requester, guild, created_at in specs:
        await store.jobs.insert(
            minimal_job(job_id, requester_id=requester, guild_id=guild, created_at=created_at)
        )
    everything = ["u1-new", "u1-dm", "u1-mid-b", "u1-mid-a", "u1-old"]
    assert [j.id for j in await store.jobs.list_for_requester("u1")] == everything
    pages = [
        [j.id for j in await store.jobs.list_for_requester("u1", limit=2, offset=offset)]
        for offset in (0, 2, 4, 6)
    ]
    assert pages == [everything[0:2], everything[2:4], everything[4:], []]
    in_g1 = await store.jobs.list_for_requester("u1", guild_id="g1")
    assert [j.id for j in in_g1] == ["u1-new", "u1-mid-b", "u1-old"]
    assert await store.jobs.list_for_requester("nobody") == []
    with pytest.raises(ValueError):
        await store.jobs.list_for_requester("u1", limit=-1)


async def test_count_for_requester_since(store: SqliteStore) -> None:
    for i, created_at in enumerate((100.0, 200.0, 300.0)):
        await store.jobs.insert(
            minimal_job(f"cnt{i}", requester_id="u1", guild_id=f"g{i % 2}", created_at=created_at)
        )
    await store.jobs.insert(minimal_job("other", requester_id="u2", created_at=500.0))
    assert await store.jobs.count_for_requester_since("u1", 0.0) == 3
    assert await store.jobs.count_for_requester_since("u1", 200.0) == 2  # inclusive
    assert await store.jobs.count_for_requester_since("u1", 200.0, guild_id="g0") == 1
    assert await store.jobs.count_for_requester_since("u1", 301.0) == 0
    assert await store.jobs.count_for_requester_since("u3", 0.0) == 0


async def test_get_by_provider_ref(store: SqliteStore) -> None:
    await store.jobs.insert(minimal_job("p1", provider="piapi", provider_ref="T-1", created_at=1))
    await store.jobs.insert(minimal_job("p2", provider="vtrix", provider_ref="T-1", created_at=2))
    await store.jobs.insert(minimal_job("p3", provider="piapi", provider_ref="T-2", created_at=3))
    found = await store.jobs.get_by_provider_ref("piapi", "T-1")
    assert found is not None and found.id == "p1"
    found = await store.jobs.get_by_provider_ref("vtrix", "T-1")
    assert found is not None and found.id == "p2"
    assert await store.jobs.get_by_provider_ref("legnext", "T-1") is None


# --- opening, settings and migrations ---------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///data/bot.db", "data/bot.db"),
        ("sqlite:////srv/bot/bot.db", "/srv/bot/bot.db"),
        ("data/bot.db", "data/bot.db"),
        ("/srv/bot.db", "/srv/bot.db"),
        ("sqlite:///:memory:", ":memory:"),
        (":memory:", ":memory:"),
        ("sqlite://", ":memory:"),
    ],
)
def test_database_urls(url: str, expected: str) -> None:
    assert sqlite_path_from_url(url) == expected


@pytest.mark.parametrize("url", ["", "postgresql://user@host/db", "sqlite://host/x.db"])
def test_bad_database_urls(url: str) -> None:
    with pytest.raises(ValueError):
        sqlite_path_from_url(url)


async def test_relative_url_creates_parent_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with await open_store("sqlite:///data/deep/bot.db") as store:
        await store.jobs.insert(minimal_job("rel000000001"))
    assert (tmp_path / "data" / "deep" / "bot.db").is_file()


async def test_absolute_url_and_plain_path(tmp_path: Path) -> None:
    absolute = tmp_path / "abs" / "one.db"
    assert f"sqlite:///{absolute}".startswith("sqlite:////")
    async with await open_store(f"sqlite:///{absolute}") as store:
        await store.jobs.insert(minimal_job("abs000000001"))
    plain = tmp_path / "plain" / "two.db"
    async with await open_store(str(plain)) as store:
        await store.jobs.insert(minimal_job("pln000000001"))
    assert row_count(absolute) == 1 and row_count(plain) == 1


async def test_in_memory_store() -> None:
    async with await open_store("sqlite:///:memory:") as store:
        job = full_job()
        await store.jobs.insert(job)
        assert await store.jobs.get(job.id) == job


async def test_connection_settings(store: SqliteStore, db_path: Path) -> None:
    async def pragma(name: str) -> Any:
        async with store.db.connection.execute(f"PRAGMA {name}") as cursor:
            row = await cursor.fetchone()
        assert row is not None
        return row[0]

    assert await pragma("journal_mode") == "wal"
    assert await pragma("synchronous") == 1  # NORMAL
    assert await pragma("foreign_keys") == 1
    assert await pragma("busy_timeout") == 5000
    # WAL is a property of the file, so every other connection sees it too.
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_migrations_are_recorded_and_idempotent(db_path: Path) -> None:
    files = migration_files()
    assert files and files[0] == "0001_jobs.sql"
    assert [m.name for m in load_migrations()] == files

    async with await open_store(str(db_path)) as store:
        await store.jobs.insert(minimal_job("keep00000001", key="k"))
    with raw(db_path) as conn:
        first = conn.execute("SELECT version, name, applied_at FROM schema_migrations").fetchall()
    assert [(v, n) for v, n, _ in first] == [(int(f.split("_")[0]), f) for f in files]

    async with await open_store(str(db_path)) as store:
        assert await store.jobs.get("keep00000001") is not None
    with raw(db_path) as conn:
        again = conn.execute("SELECT version, name, applied_at FROM schema_migrations").fetchall()
    assert again == first  # nothing re-applied, not even re-recorded


async def test_reopening_keeps_data(db_path: Path) -> None:
    job = full_job()
    async with await open_store(str(db_path)) as store:
        await store.jobs.insert(job)
        job.status = JobStatus.RUNNING
        await store.jobs.save(job)
    async with await open_store(f"sqlite:///{db_path}") as store:
        assert await store.jobs.get(job.id) == job
        assert [j.id for j in await store.jobs.list_active()] == [job.id]


async def test_future_schema_version_is_refused(db_path: Path) -> None:
    async with await open_store(str(db_path)):
        pass
    with raw(db_path) as conn:
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, ?, 0)",
            ("9999_from_the_future.sql",),
        )
    with pytest.raises(SchemaVersionError, match=r"schema version 9999, newer than this code"):
        await open_store(str(db_path))
    # Refusing changed nothing.
    assert row_count(db_path, "schema_migrations") == len(migration_files()) + 1


async def test_migrations_apply_in_order_and_roll_back_on_failure(db_path: Path) -> None:
    base = load_migrations()
    top = max(m.version for m in base)  # extra test migrations follow the shipped ones
    extra = [
        Migration(
            top + 2, f"{top + 2:04d}_b.sql", "ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x;y';"
        ),
        Migration(
            top + 1,
            f"{top + 1:04d}_a.sql",
            "CREATE TABLE t (a INTEGER);\nINSERT INTO t (a) VALUES (1);",
        ),
    ]
    async with await open_store(str(db_path), migrations=[*base, *extra]) as store:
        rows = await store.db.connection.execute_fetchall("SELECT a, b FROM t")
        assert list(rows) == [(1, "x;y")]

    broken = Migration(
        top + 3, f"{top + 3:04d}_broken.sql", "CREATE TABLE u (a);\nTHIS IS NOT SQL;"
    )
    with pytest.raises(MigrationError, match=rf"{top + 3:04d}_broken\.sql"):
        await open_store(str(db_path), migrations=[*base, *extra, broken])
    with raw(db_path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert "u" not in tables  # the half-run migration was rolled back
    assert versions == [*range(1, top + 1), top + 1, top + 2]


async def test_duplicate_migration_versions_are_refused(db_path: Path) -> None:
    twins = [*load_migrations(), Migration(1, "0001_twin.sql", "SELECT 1;")]
    with pytest.raises(MigrationError, match="share version 1"):
        await open_store(str(db_path), migrations=twins)


def test_split_sql_respects_quotes_comments_and_triggers() -> None:
    script = textwrap.dedent(
        """
        -- a comment; with a semicolon
        CREATE TABLE a (x TEXT DEFAULT ';');
        /* block; comment */
        CREATE TRIGGER tr AFTER INSERT ON a BEGIN
            UPDATE a SET x = 'y;' WHERE rowid = new.rowid;
        END;
        SELECT 1
        -- trailing comment
        """
    )
    statements = split_sql(script)
    assert len(statements) == 3
    assert statements[1].startswith("/* block; comment */\nCREATE TRIGGER")
    assert statements[2].startswith("SELECT 1")
    assert split_sql("-- only a comment\n") == []


# --- locking ----------------------------------------------------------------------------


def hold_write_lock(conn: sqlite3.Connection, seconds: float) -> threading.Timer:
    conn.execute("BEGIN EXCLUSIVE")
    timer = threading.Timer(seconds, conn.commit)
    timer.start()
    return timer


async def test_locked_database_is_retried_until_the_write_succeeds(
    db_path: Path, lock_holder: sqlite3.Connection
) -> None:
    # A tiny busy timeout makes SQLite give up at once, so our own retry loop is what
    # carries the write through.
    async with await open_store(
        str(db_path), busy_timeout_ms=10, lock_retries=20, retry_backoff=0.02
    ) as store:
        timer = hold_write_lock(lock_holder, 0.4)
        try:
            job = minimal_job("locked000001", key="lk")
            started = time.monotonic()
            assert await store.jobs.insert(job) == (job, True)
            assert time.monotonic() - started >= 0.3  # it really had to wait
        finally:
            timer.join()
        assert store.db.busy_retries > 0
        assert await store.jobs.get(job.id) == job
    assert row_count(db_path) == 1


async def test_default_busy_timeout_waits_for_a_short_lock(
    store: SqliteStore, lock_holder: sqlite3.Connection, db_path: Path
) -> None:
    timer = hold_write_lock(lock_holder, 0.3)
    try:
        job = minimal_job("wait00000001")
        await store.jobs.insert(job)
    finally:
        timer.join()
    assert store.db.busy_retries == 0  # SQLite's own busy handler waited
    assert row_count(db_path) == 1


async def test_lock_that_outlasts_the_retries_raises(
    db_path: Path, lock_holder: sqlite3.Connection
) -> None:
    async with await open_store(
        str(db_path), busy_timeout_ms=10, lock_retries=2, retry_backoff=0.01
    ) as store:
        lock_holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreBusyError, match="locked after 3 attempts"):
            await store.jobs.insert(minimal_job("never0000001"))
        assert store.db.busy_retries == 2
        lock_holder.commit()
        # Nothing half-written, and the store carries on once the lock is gone.
        assert await store.jobs.get("never0000001") is None
        await store.jobs.insert(minimal_job("after0000001"))
    assert row_count(db_path) == 1


async def test_cancelled_write_leaves_no_open_transaction(
    db_path: Path, lock_holder: sqlite3.Connection
) -> None:
    async with await open_store(
        str(db_path), busy_timeout_ms=10, lock_retries=50, retry_backoff=0.02
    ) as store:
        lock_holder.execute("BEGIN EXCLUSIVE")
        task = asyncio.create_task(store.jobs.insert(minimal_job("cancel000001")))
        await asyncio.sleep(0.2)  # long enough to be stuck in the retry loop
        assert store.db.busy_retries > 0 and not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        lock_holder.commit()
        await store.jobs.insert(minimal_job("next00000001"))
        assert not store.db.connection.in_transaction
        assert [j.id for j in await store.jobs.list_active()] == ["next00000001"]


# --- crash safety -----------------------------------------------------------------------

CRASH_WRITER = """
import asyncio, sys
from bot.domain import Job, JobStatus, Operation, OperationKind
from bot.store import open_store

async def main() -> None:
    store = await open_store(sys.argv[1])  # never closed: the process is killed
    i = 0
    while True:
        job = Job(
            id=f"crash{i:07d}",
            operation=Operation(kind=OperationKind.IMAGINE, prompt="p" * 500),
            provider="piapi",
            idempotency_key=f"key-{i}",
            created_at=float(i),
        )
        await store.jobs.insert(job)
        print("inserted", job.id, flush=True)
        job.status = JobStatus.RUNNING
        job.progress = 50
        await store.jobs.save(job)
        print("saved", job.id, flush=True)
        i += 1

asyncio.run(main())
"""


async def test_committed_writes_survive_kill_9(db_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRASH_WRITER,
        str(db_path),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    inserted: set[str] = set()
    saved: set[str] = set()
    try:
        # Kill it mid-stream, while it is still writing.
        while len(saved) < 40:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
            if not line:
                stderr = await proc.stderr.read()
                pytest.fail(f"writer exited early: {stderr.decode(errors='replace')}")
            what, job_id = line.decode().split()
            (inserted if what == "inserted" else saved).add(job_id)
    finally:
        proc.kill()  # SIGKILL: no close, no checkpoint, no atexit
        await proc.wait()
    assert proc.returncode == -9

    assert (db_path.parent / (db_path.name + "-wal")).exists()  # it really was not closed
    async with await open_store(str(db_path)) as store:
        for job_id in inserted:
            job = await store.jobs.get(job_id)
            assert job is not None, job_id
            if job_id in saved:
                assert job.status is JobStatus.RUNNING and job.progress == 50
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


# --- property: serialisation ------------------------------------------------------------

texts = st.text(max_size=20)
opt_texts = st.none() | texts
floats = st.floats(allow_nan=False, allow_infinity=False)
decimals = st.decimals(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | floats | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=10,
)

operations = st.builds(
    Operation,
    kind=st.sampled_from(OperationKind),
    prompt=opt_texts,
    aspect_ratio=opt_texts,
    mode=st.none() | st.sampled_from(SpeedMode),
    parent_job_id=opt_texts,
    index=st.none() | st.integers(1, 4),
    variant=opt_texts,
    zoom_ratio=st.none() | decimals,
    direction=st.none() | st.sampled_from(PanDirection),
    image_urls=st.lists(texts, max_size=3).map(tuple),
    dimension=st.none() | st.sampled_from(BlendDimension),
    mask_png_base64=opt_texts,
    canvas=st.none() | st.builds(Size, st.integers(0, 4096), st.integers(0, 4096)),
    placement=st.none() | st.builds(Placement, *(st.integers(-4096, 4096) for _ in range(4))),
    raw_action=opt_texts,
)
actions = st.builds(
    Action,
    name=texts,
    raw=texts,
    images=st.none() | st.lists(st.integers(1, 4), max_size=4).map(tuple),
)
jobs = st.builds(
    Job,
    id=st.text(min_size=1, max_size=12),
    operation=operations,
    provider=st.sampled_from(["piapi", "vtrix", "legnext", "proxy"]),
    status=st.sampled_from(JobStatus),
    requester_id=opt_texts,
    guild_id=opt_texts,
    channel_id=opt_texts,
    idempotency_key=opt_texts,
    provider_ref=opt_texts,
    provider_data=st.dictionaries(texts, json_values, max_size=4),
    progress=st.none() | st.integers(0, 100),
    preview_url=opt_texts,
    result_url=opt_texts,
    tiles=st.none() | st.lists(texts, max_size=4),
    actions=st.lists(actions, max_size=4),
    cost=st.none() | st.builds(Cost, amount=decimals, unit=st.sampled_from(["usd", "point"])),
    error=st.none()
    | st.builds(JobError, code=st.sampled_from(ErrorCode), message=texts, provider_text=opt_texts),
    seed=opt_texts,
    prompts=st.none() | st.lists(texts, max_size=4),
    queue_position=st.none() | st.integers(0, 1000),
    raw_status=opt_texts,
    created_at=floats,
    submit_started_at=st.none() | floats,
    submitted_at=st.none() | floats,
    updated_at=floats,
    last_change_at=floats,
    finished_at=st.none() | floats,
    polls=st.integers(0, 10**6),
)


@given(jobs)
@settings(max_examples=300)
def test_job_dict_round_trip_through_json(job: Job) -> None:
    data = job_to_dict(job)
    assert set(data) == {f.name for f in dataclasses.fields(Job)}
    decoded = job_from_dict(json.loads(json.dumps(data, allow_nan=False)))
    assert decoded == job


@given(jobs)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_job_database_round_trip(job: Job) -> None:
    async def scenario() -> Job | None:
        async with await open_store(":memory:") as store:
            await store.jobs.insert(job)
            return await store.jobs.get(job.id)

    assert asyncio.run(scenario()) == job


def test_job_from_dict_tolerates_missing_and_unknown_keys() -> None:
    job = job_from_dict(
        {"id": "old000000001", "operation": {"kind": "imagine"}, "provider": "piapi", "new": 1}
    )
    assert job == Job(
        id="old000000001", operation=Operation(kind=OperationKind.IMAGINE), provider="piapi"
    )
    with pytest.raises(ValueError, match="operation"):
        job_from_dict({"id": "x", "provider": "piapi"})


async def test_deliveries_claim_once_and_list_undelivered(tmp_path: Path) -> None:
    from bot.store import Delivery

    store = await open_store(f"sqlite:///{tmp_path / 'd.db'}")
    try:
        first = Delivery(
            job_id="j1", channel_id="c", upload_limit=10, message_id="m1", created_at=1
        )
        assert await store.deliveries.claim(first)
        assert not await store.deliveries.claim(
            Delivery(job_id="j1", channel_id="x", upload_limit=1)
        )
        await store.deliveries.claim(
            Delivery(job_id="j2", channel_id="c", upload_limit=10, created_at=2)
        )
        assert [d.job_id for d in await store.deliveries.list_undelivered()] == ["j1", "j2"]
        first.final_delivered_at = 5.0
        await store.deliveries.save(first)
        got = await store.deliveries.get("j1")
        assert got == first and got.channel_id == "c" and got.message_id == "m1"
        assert [d.job_id for d in await store.deliveries.list_undelivered()] == ["j2"]
        assert await store.deliveries.get("nope") is None
    finally:
        await store.close()


async def test_reads_do_not_wait_behind_an_open_write(store: SqliteStore) -> None:
    """Reads use their own connection: while a write transaction is open (and holds the
    writer's lock), a read answers at once with the committed rows only; once the write
    commits, the next read sees it."""
    job = full_job("committed001")
    await store.jobs.insert(job)
    changed = dataclasses.replace(job, progress=7)
    holding, release = asyncio.Event(), asyncio.Event()

    async def slow_write(conn: Any) -> None:
        await conn.execute(
            "UPDATE jobs SET data = ? WHERE id = ?",
            (json.dumps(job_to_dict(changed)), job.id),
        )
        holding.set()
        await release.wait()

    writer = asyncio.create_task(store.db.write(slow_write))
    await asyncio.wait_for(holding.wait(), 5)
    during = await asyncio.wait_for(store.jobs.get(job.id), 5)  # does not wait for the write
    assert during is not None and during.progress == 93  # the open write is not visible
    release.set()
    await writer
    after = await store.jobs.get(job.id)
    assert after is not None and after.progress == 7
