"""The store against real databases, once on SQLite (a real file) and once on PostgreSQL (a
throwaway cluster, see tests/pg.py): round trips, idempotency, ordering, migrations, locking,
and surviving a killed process. Tests of one backend's own machinery (SQLite's URLs, WAL,
pragmas, statement splitter; PostgreSQL's settings and connection errors) run on that one."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import sqlite3
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
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
    Delivery,
    JobExistsError,
    JobNotFoundError,
    MigrationError,
    SchemaVersionError,
    SqliteStore,
    Store,
    StoreBusyError,
    StoreError,
    is_postgres_url,
    job_from_dict,
    job_to_dict,
    open_store,
    redact_database_url,
    sqlite_path_from_url,
)
from bot.store.base import StorageHealth, StoreUnavailableError
from bot.store.postgres import load_pg_migrations
from bot.store.sqlite import split_sql
from tests.pg import PgCluster, StoreBackend, create_database, destroy, start_cluster

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
            motion="high",
            video_loop=True,
            end_image_url="https://cdn.example/end.png",
            batch_size=2,
            hd=True,
            raw_style=False,
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


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "bot.db"


@pytest.fixture
async def store(store_backend: StoreBackend) -> AsyncIterator[Any]:
    opened = await store_backend.open()
    try:
        yield opened
    finally:
        await opened.close()


# --- round trips ------------------------------------------------------------------------


def test_full_job_fixture_sets_every_field() -> None:
    # Guards the round-trip test: a new Job field must be populated here too.
    job = full_job()
    defaults = Job(id="x", operation=Operation(kind=OperationKind.IMAGINE), provider="p")
    for f in dataclasses.fields(Job):
        assert getattr(job, f.name) != getattr(defaults, f.name), f.name
    for f in dataclasses.fields(Operation):
        assert getattr(job.operation, f.name) != getattr(defaults.operation, f.name), f.name


async def test_full_job_round_trips(store: Store) -> None:
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


async def test_minimal_job_round_trips(store: Store) -> None:
    job = Job(id="min000000001", operation=Operation(kind=OperationKind.DESCRIBE), provider="vtrix")
    await store.jobs.insert(job)
    loaded = await store.jobs.get(job.id)
    assert loaded == job
    assert loaded is not None
    assert loaded.tiles is None and loaded.actions == [] and loaded.provider_data == {}


async def test_indexed_columns_mirror_the_job(store: Store, store_backend: StoreBackend) -> None:
    job = full_job()
    await store.jobs.insert(job)
    [row] = await store_backend.fetch_dicts("SELECT * FROM jobs WHERE id = ?", job.id)
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
    assert (row["mode"], row["error_code"], row["account"]) == ("turbo", "moderated", "second")
    assert json.loads(row["data"]) == job_to_dict(job)


async def test_get_missing_returns_none(store: Store) -> None:
    assert await store.jobs.get("nope") is None
    assert await store.jobs.get_by_idempotency_key("nope") is None
    assert await store.jobs.get_by_provider_ref("piapi", "nope") is None


async def test_save_persists_every_change(store: Store) -> None:
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


async def test_save_of_unknown_job_raises(store: Store) -> None:
    with pytest.raises(JobNotFoundError):
        await store.jobs.save(minimal_job("ghost0000001"))
    assert await store.jobs.get("ghost0000001") is None


async def test_duplicate_id_raises_and_store_stays_usable(store: Store) -> None:
    await store.jobs.insert(minimal_job("dup000000001"))
    with pytest.raises(JobExistsError):
        await store.jobs.insert(minimal_job("dup000000001", created_at=5.0))
    # The failed transaction was rolled back, not left open.
    if isinstance(store, SqliteStore):
        assert not store.db.connection.in_transaction
    await store.jobs.insert(minimal_job("dup000000002"))
    assert [j.id for j in await store.jobs.list_active()] == ["dup000000001", "dup000000002"]


# --- idempotency ------------------------------------------------------------------------


async def test_idempotency_conflict_returns_existing(
    store: Store, store_backend: StoreBackend
) -> None:
    first = minimal_job("first0000001", key="click:1", requester_id="u1", created_at=1.0)
    second = minimal_job("second000001", key="click:1", requester_id="u1", created_at=2.0)
    assert await store.jobs.insert(first) == (first, True)
    existing, created = await store.jobs.insert(second)
    assert not created
    assert existing == first
    assert await store.jobs.get(second.id) is None
    assert await store_backend.row_count() == 1


async def test_jobs_without_key_never_conflict(store: Store, store_backend: StoreBackend) -> None:
    for i in range(3):
        _, created = await store.jobs.insert(minimal_job(f"nokey{i:07d}"))
        assert created
    assert await store_backend.row_count() == 3


async def test_concurrent_inserts_with_one_key_create_one_job(
    store: Store, store_backend: StoreBackend
) -> None:
    jobs = [minimal_job(f"race{i:08d}", key="double-click") for i in range(20)]
    results = await asyncio.gather(*(store.jobs.insert(j) for j in jobs))
    winners = [job for job, created in results if created]
    assert len(winners) == 1
    assert {job.id for job, _ in results} == {winners[0].id}
    assert await store_backend.row_count() == 1


async def test_concurrent_inserts_across_connections(
    store: Store, store_backend: StoreBackend
) -> None:
    # Two stores on one database stand for two processes: the unique index decides.
    other = await store_backend.open()
    try:
        jobs = [minimal_job(f"xconn{i:07d}", key="shared") for i in range(20)]
        results = await asyncio.gather(
            *((store if i % 2 else other).jobs.insert(j) for i, j in enumerate(jobs))
        )
    finally:
        await other.close()
    assert sum(created for _, created in results) == 1
    assert len({job.id for job, _ in results}) == 1
    assert await store_backend.row_count() == 1


# --- queries ----------------------------------------------------------------------------


async def test_list_active_is_oldest_first_and_skips_terminal(store: Store) -> None:
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


async def test_list_for_requester_newest_first_with_paging(store: Store) -> None:
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


async def test_count_for_requester_since(store: Store) -> None:
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


async def test_get_by_provider_ref(store: Store) -> None:
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


async def test_connection_settings(db_path: Path) -> None:
    async with await open_store(f"sqlite:///{db_path}") as store:

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


async def test_postgres_connection_settings(pg_url: str) -> None:
    store = await open_store(pg_url, lock_timeout_ms=1234)
    async with store, store.db.pool.acquire() as conn:
        assert await conn.fetchval("SHOW lock_timeout") == "1234ms"
        assert await conn.fetchval("SHOW application_name") == "mj-discord-bot"
        # Reads see committed rows only (the default, relied upon).
        assert await conn.fetchval("SHOW transaction_isolation") == "read committed"


async def test_postgres_jobs_carry_lease_columns_that_saves_leave_alone(pg_url: str) -> None:
    # Not used yet (leases come with several processes); a save must never reset them.
    async with await open_store(pg_url) as store:
        job = minimal_job("lease0000001")
        await store.jobs.insert(job)
        query = "SELECT owner, lease_expires_at, lease_epoch FROM jobs WHERE id = $1"
        async with store.db.pool.acquire() as conn:
            assert tuple(await conn.fetchrow(query, job.id)) == (None, None, 0)
            await conn.execute(
                "UPDATE jobs SET owner = 'p1', lease_expires_at = now() + interval '30 s',"
                " lease_epoch = 7 WHERE id = $1",
                job.id,
            )
        job.status = JobStatus.RUNNING
        await store.jobs.save(job)
        async with store.db.pool.acquire() as conn:
            owner, expires, epoch = await conn.fetchrow(query, job.id)
        assert (owner, epoch) == ("p1", 7) and expires is not None
        assert (await store.jobs.get(job.id)) == job


async def raw_pg(url: str, sql: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def test_postgres_restart_fails_writes_clearly_and_the_store_recovers(
    pg_cluster: PgCluster,
) -> None:
    # A cluster of its own (the session's is shared): stopped and started under the store.
    own = await asyncio.to_thread(start_cluster)
    try:
        url = await create_database(own)
        async with await open_store(url, pool_size=3) as store:
            await store.jobs.insert(minimal_job("before000001"))
            await asyncio.to_thread(own.stop)
            with pytest.raises(StoreUnavailableError) as down:
                await store.jobs.insert(minimal_job("during000001"))
            assert f"127.0.0.1:{own.port}/" in str(down.value)
            assert own.password not in str(down.value)
            assert isinstance(store.jobs, StorageHealth)  # /healthz reports it
            assert "is unreachable" in (store.jobs.storage_problem() or "")
            await asyncio.to_thread(own.start)
            # The pool dropped the connection that died with the server and opens a new
            # one: the bot carries on without a restart.
            await store.jobs.insert(minimal_job("after0000001"))
            assert store.jobs.storage_problem() is None
            assert [j.id for j in await store.jobs.list_active()] == [
                "before000001",
                "after0000001",
            ]
            # Every pooled connection in use, then a restart: the pool notices the closed
            # connections and opens new ones, so no operation meets a dead one.
            await asyncio.gather(*(store.jobs.get("before000001") for _ in range(6)))
            opened = await raw_pg(
                url,
                "SELECT COUNT(*) FROM pg_stat_activity"
                " WHERE application_name = 'mj-discord-bot' AND datname = current_database()",
            )
            assert opened == [(3,)]
            await asyncio.to_thread(own.stop)
            await asyncio.to_thread(own.start)
            again = await asyncio.gather(*(store.jobs.get("after0000001") for _ in range(6)))
            assert {j.id for j in again if j is not None} == {"after0000001"}
    finally:
        await asyncio.to_thread(destroy, own)


async def test_postgres_connection_killed_mid_write_is_a_store_error(pg_url: str) -> None:
    async with await open_store(pg_url) as store:

        async def slow(conn: Any) -> None:
            await conn.execute("SELECT pg_sleep(30)")

        writing = asyncio.create_task(store.db.write(slow))
        find = "SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'"
        for _ in range(500):  # bounded: until the server runs it
            if await raw_pg(pg_url, find):
                break
            await asyncio.sleep(0.01)
        await raw_pg(pg_url, f"SELECT pg_terminate_backend(pid) FROM ({find}) AS s")
        with pytest.raises(StoreUnavailableError, match="is unreachable"):
            await asyncio.wait_for(writing, 10)
        await store.jobs.insert(minimal_job("after0000001"))  # a new connection serves it
        assert [j.id for j in await store.jobs.list_active()] == ["after0000001"]


async def insert_until_refused_for(store: Any, reason: str) -> StoreUnavailableError:
    """Insert until the store refuses for `reason`; a connection the server closed a moment
    ago may fail one first attempt as unreachable (bounded: a few tries)."""
    for n in range(5):
        try:
            await store.jobs.insert(minimal_job(f"refused{n:05d}"))
        except StoreUnavailableError as exc:
            if reason in str(exc):
                return exc
            assert "is unreachable" in str(exc), exc
        else:
            raise AssertionError("the write was taken")
    raise AssertionError(f"never refused for {reason!r}")


async def test_postgres_read_only_server_refuses_writes_clearly_and_recovers(
    pg_url: str,
) -> None:
    # As after a failover onto a standby: the server answers but takes no writes.
    name = pg_url.rsplit("/", 1)[1]
    admin_url = pg_url.rsplit("/", 1)[0] + "/postgres"
    others = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    async with await open_store(pg_url) as store:
        await store.jobs.insert(minimal_job("before000001"))
        await raw_pg(admin_url, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        await raw_pg(admin_url, others)  # the pool reconnects, read-only now
        refused = await insert_until_refused_for(store, "cannot take writes")
        assert str(refused).startswith("nothing was saved")
        assert "read-only" in (store.jobs.storage_problem() or "")
        assert await store.jobs.get("before000001") is not None  # reads still work...
        assert store.jobs.storage_problem() is None  # ...and show the database answers
        await raw_pg(admin_url, f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        await raw_pg(admin_url, others)
        with contextlib.suppress(StoreUnavailableError):  # a connection closed a moment ago
            await store.jobs.get("before000001")
        await store.jobs.insert(minimal_job("after0000001"))
        ids = [j.id for j in await store.jobs.list_active()]
        assert ids == ["before000001", "after0000001"]
        # A bot started against a read-only server is told so, not left with a traceback.
        await raw_pg(admin_url, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    with pytest.raises(StoreError, match="read-only"):
        await open_store(pg_url)


def test_postgres_urls_choose_postgres_and_hide_their_password() -> None:
    for url in ("postgresql://u:pw@db/x", "postgres://u:pw@db/x", " POSTGRESQL://db/x"):
        assert is_postgres_url(url)
    for url in ("sqlite:///data/bot.db", "data/bot.db", ":memory:", "mysql://u@h/x"):
        assert not is_postgres_url(url)
    assert redact_database_url("postgresql://bot:s3cret@db:5433/mj") == (
        "postgresql://bot:***@db:5433/mj"
    )
    assert redact_database_url("postgres://db/mj?password=s3cret&sslmode=require") == (
        "postgres://db/mj?password=%2A%2A%2A&sslmode=require"
    )
    assert redact_database_url("sqlite:///data/bot.db") == "sqlite:///data/bot.db"


def test_the_database_password_is_a_secret_for_the_log_filters(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bot.config import load_settings

    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("DISCORD_TOKEN", "MJ_PROVIDER", "PIAPI_API_KEY", "MJ_ACCOUNTS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DISCORD_TOKEN", "tok")
    monkeypatch.setenv("MJ_PROVIDER", "piapi")
    monkeypatch.setenv("PIAPI_API_KEY", "key")
    monkeypatch.setenv("DATABASE_URL", "postgresql://bot:p%40ss@db/mj?password=other")
    assert sorted(load_settings().secrets()) == ["key", "other", "p%40ss", "p@ss", "tok"]
    monkeypatch.setenv("DATABASE_URL", "sqlite:///data/bot.db")
    assert sorted(load_settings().secrets()) == ["key", "tok"]


async def test_postgres_open_errors_name_the_server_but_not_the_password(
    pg_cluster: PgCluster,
) -> None:
    wrong = f"postgresql://postgres:not-the-{pg_cluster.password}@127.0.0.1:{pg_cluster.port}/x"
    with pytest.raises(StoreError) as refused:
        await open_store(wrong)
    assert f"127.0.0.1:{pg_cluster.port}/x" in str(refused.value)
    assert "password authentication failed" in str(refused.value)
    assert "not-the-" not in str(refused.value) and pg_cluster.password not in str(refused.value)

    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreError, match=rf"127\.0\.0\.1:{port}/mj") as unreachable:
        await open_store(f"postgresql://bot:hunter2@127.0.0.1:{port}/mj")
    assert "hunter2" not in str(unreachable.value)


async def test_migrations_are_recorded_and_idempotent(store_backend: StoreBackend) -> None:
    files = store_backend.migration_files()
    assert files and files[0].startswith("0001_")
    assert [m.name for m in store_backend.migrations()] == files

    async with await store_backend.open() as store:
        await store.jobs.insert(minimal_job("keep00000001", key="k"))
    select = "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
    first = await store_backend.fetch(select)
    assert [(v, n) for v, n, _ in first] == [(int(f.split("_")[0]), f) for f in files]

    async with await store_backend.open() as store:
        assert await store.jobs.get("keep00000001") is not None
    assert await store_backend.fetch(select) == first  # nothing re-applied or re-recorded


async def test_reopening_keeps_data(store_backend: StoreBackend) -> None:
    job = full_job()
    async with await store_backend.open() as store:
        await store.jobs.insert(job)
        job.status = JobStatus.RUNNING
        await store.jobs.save(job)
    async with await store_backend.open() as store:
        assert await store.jobs.get(job.id) == job
        assert [j.id for j in await store.jobs.list_active()] == [job.id]


async def test_future_schema_version_is_refused(store_backend: StoreBackend) -> None:
    async with await store_backend.open():
        pass
    await store_backend.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, ?, 0)",
        "9999_from_the_future.sql",
    )
    with pytest.raises(SchemaVersionError, match=r"schema version 9999, newer than this code"):
        await store_backend.open()
    # Refusing changed nothing.
    count = await store_backend.row_count("schema_migrations")
    assert count == len(store_backend.migration_files()) + 1


async def test_migrations_apply_in_order_and_roll_back_on_failure(
    store_backend: StoreBackend,
) -> None:
    base = store_backend.migrations()
    top = max(m.version for m in base)  # extra test migrations follow the shipped ones
    extra = [
        store_backend.migration(
            top + 2, f"{top + 2:04d}_b.sql", "ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x;y';"
        ),
        store_backend.migration(
            top + 1,
            f"{top + 1:04d}_a.sql",
            "CREATE TABLE t (a INTEGER);\nINSERT INTO t (a) VALUES (1);",
        ),
    ]
    async with await store_backend.open(migrations=[*base, *extra]):
        assert await store_backend.fetch("SELECT a, b FROM t") == [(1, "x;y")]

    broken = store_backend.migration(
        top + 3, f"{top + 3:04d}_broken.sql", "CREATE TABLE u (a INTEGER);\nTHIS IS NOT SQL;"
    )
    with pytest.raises(MigrationError, match=rf"{top + 3:04d}_broken\.sql"):
        await store_backend.open(migrations=[*base, *extra, broken])
    assert "u" not in await store_backend.tables()  # the half-run migration was rolled back
    versions = [r[0] for r in await store_backend.fetch("SELECT version FROM schema_migrations")]
    assert sorted(versions) == [*range(1, top + 1), top + 1, top + 2]


async def test_duplicate_migration_versions_are_refused(store_backend: StoreBackend) -> None:
    twins = [*store_backend.migrations(), store_backend.migration(1, "0001_twin.sql", "SELECT 1;")]
    with pytest.raises(MigrationError, match="share version 1"):
        await store_backend.open(migrations=twins)


async def test_postgres_processes_starting_together_migrate_once(pg_url: str) -> None:
    # Several bots started at once on one empty database: each migration runs once (the
    # advisory lock). PostgreSQL only: several processes on one SQLite file is no setup we
    # offer (and SQLite's switch to WAL on a new file can then fail as locked).
    stores = await asyncio.gather(*(open_store(pg_url) for _ in range(4)))
    for opened in stores:
        await opened.close()
    versions = await raw_pg(pg_url, "SELECT version FROM schema_migrations ORDER BY version")
    assert [v for (v,) in versions] == [m.version for m in load_pg_migrations()]


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
# Another connection (another process, an admin's shell, a migration) holds the jobs
# table's write lock: SQLite's BEGIN EXCLUSIVE, PostgreSQL's LOCK TABLE … EXCLUSIVE.


def release_after(release: Callable[[], Awaitable[None]], seconds: float) -> asyncio.Task[None]:
    async def later() -> None:
        await asyncio.sleep(seconds)
        await release()

    return asyncio.create_task(later())


async def test_locked_database_is_retried_until_the_write_succeeds(
    store_backend: StoreBackend,
) -> None:
    # A tiny lock wait makes the database give up at once, so our own retry loop is what
    # carries the write through.
    options = store_backend.wait_options(10, lock_retries=20, retry_backoff=0.02)
    async with await store_backend.open(**options) as store:
        async with store_backend.write_lock() as release:
            releasing = release_after(release, 0.4)
            job = minimal_job("locked000001", key="lk")
            started = time.monotonic()
            assert await store.jobs.insert(job) == (job, True)
            assert time.monotonic() - started >= 0.3  # it really had to wait
            await releasing
        assert store.db.busy_retries > 0
        assert await store.jobs.get(job.id) == job
    assert await store_backend.row_count() == 1


async def test_default_lock_wait_covers_a_short_lock(store_backend: StoreBackend) -> None:
    async with await store_backend.open() as store:
        async with store_backend.write_lock() as release:
            releasing = release_after(release, 0.3)
            await store.jobs.insert(minimal_job("wait00000001"))
            await releasing
        assert store.db.busy_retries == 0  # the database's own lock wait sufficed
    assert await store_backend.row_count() == 1


async def test_lock_that_outlasts_the_retries_raises(store_backend: StoreBackend) -> None:
    options = store_backend.wait_options(10, lock_retries=2, retry_backoff=0.01)
    async with await store_backend.open(**options) as store:
        async with store_backend.write_lock():
            with pytest.raises(StoreBusyError, match="locked after 3 attempts"):
                await store.jobs.insert(minimal_job("never0000001"))
            assert store.db.busy_retries == 2
        # Nothing half-written, and the store carries on once the lock is gone.
        assert await store.jobs.get("never0000001") is None
        await store.jobs.insert(minimal_job("after0000001"))
    assert await store_backend.row_count() == 1


async def test_cancelled_write_leaves_no_open_transaction(store_backend: StoreBackend) -> None:
    options = store_backend.wait_options(10, lock_retries=50, retry_backoff=0.02)
    async with await store_backend.open(**options) as store:
        async with store_backend.write_lock():
            task = asyncio.create_task(store.jobs.insert(minimal_job("cancel000001")))
            await asyncio.sleep(0.2)  # long enough to be stuck in the retry loop
            assert store.db.busy_retries > 0 and not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        await store.jobs.insert(minimal_job("next00000001"))
        if isinstance(store, SqliteStore):
            assert not store.db.connection.in_transaction
        else:  # every pooled connection is back, none inside a transaction
            async with store.db.pool.acquire() as conn:
                assert not conn.is_in_transaction()
        assert [j.id for j in await store.jobs.list_active()] == ["next00000001"]


async def test_saves_of_one_job_apply_in_the_order_asked(store: Store) -> None:
    # The engine may save a job from two tasks; the later call's state must be the one kept.
    job = minimal_job("order0000001")
    await store.jobs.insert(job)
    versions = [dataclasses.replace(job, progress=i, polls=i) for i in range(30)]
    await asyncio.gather(*(store.jobs.save(v) for v in versions))
    stored = await store.jobs.get(job.id)
    assert stored is not None and stored.progress == 29


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


async def test_committed_writes_survive_kill_9(store_backend: StoreBackend) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRASH_WRITER,
        store_backend.url,
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

    path = store_backend.sqlite_path
    if path is not None:
        assert (path.parent / (path.name + "-wal")).exists()  # it really was not closed
    async with await store_backend.open() as store:
        for job_id in inserted:
            job = await store.jobs.get(job_id)
            assert job is not None, job_id
            if job_id in saved:
                assert job.status is JobStatus.RUNNING and job.progress == 50
    if path is not None:
        with raw(path) as conn:
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
    motion=st.none() | st.sampled_from(["low", "high"]),
    video_loop=st.none() | st.booleans(),
    end_image_url=opt_texts,
    batch_size=st.none() | st.integers(1, 4),
    hd=st.none() | st.booleans(),
    raw_style=st.none() | st.booleans(),
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
    account=opt_texts,
)


@given(jobs)
@settings(max_examples=300)
def test_job_dict_round_trip_through_json(job: Job) -> None:
    data = job_to_dict(job)
    assert set(data) == {f.name for f in dataclasses.fields(Job)}
    decoded = job_from_dict(json.loads(json.dumps(data, allow_nan=False)))
    assert decoded == job


@given(jobs)
@settings(
    max_examples=40,
    deadline=None,
    # One database for all examples, emptied before each.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_job_database_round_trip(store_backend: StoreBackend, job: Job) -> None:
    async def scenario() -> Job | None:
        async with await store_backend.open() as store:
            await store_backend.execute("DELETE FROM jobs")
            await store.jobs.insert(job)
            return await store.jobs.get(job.id)

    assert asyncio.run(scenario()) == job


async def test_nul_characters_round_trip_and_are_found(store: Store) -> None:
    # PostgreSQL text cannot hold NUL; a provider's id with one must still work.
    job = minimal_job("nul\x00id", key="k\x00", provider_ref="ref\x00x", requester_id="u\x00")
    job.operation = Operation(kind=OperationKind.IMAGINE, prompt="a\x00b")
    await store.jobs.insert(job)
    assert await store.jobs.get("nul\x00id") == job
    assert await store.jobs.get_by_idempotency_key("k\x00") == job
    assert await store.jobs.get_by_provider_ref("piapi", "ref\x00x") == job
    assert [j.id for j in await store.jobs.list_for_requester("u\x00")] == ["nul\x00id"]
    assert await store.jobs.get("nulid") is None


def test_job_from_dict_tolerates_missing_and_unknown_keys() -> None:
    job = job_from_dict(
        {"id": "old000000001", "operation": {"kind": "imagine"}, "provider": "piapi", "new": 1}
    )
    assert job == Job(
        id="old000000001", operation=Operation(kind=OperationKind.IMAGINE), provider="piapi"
    )
    with pytest.raises(ValueError, match="operation"):
        job_from_dict({"id": "x", "provider": "piapi"})


async def test_deliveries_claim_once_and_list_undelivered(store: Store) -> None:
    first = Delivery(job_id="j1", channel_id="c", upload_limit=10, message_id="m1", created_at=1)
    assert await store.deliveries.claim(first)
    assert not await store.deliveries.claim(Delivery(job_id="j1", channel_id="x", upload_limit=1))
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
    await store.jobs.insert(minimal_job("j3", created_at=3))
    await store.jobs.insert(minimal_job("j1", created_at=1))
    assert await store.deliveries.jobs_without_delivery(2.0) == ["j3"]


async def test_reads_do_not_wait_behind_an_open_write(store: Store) -> None:
    """Reads use their own connection: while a write transaction is open (and holds the
    writer's lock), a read answers at once with the committed rows only; once the write
    commits, the next read sees it."""
    job = full_job("committed001")
    await store.jobs.insert(job)
    changed = dataclasses.replace(job, progress=7)
    holding, release = asyncio.Event(), asyncio.Event()

    async def slow_write(conn: Any) -> None:
        params = (json.dumps(job_to_dict(changed)), job.id)
        if isinstance(store, SqliteStore):
            await conn.execute("UPDATE jobs SET data = ? WHERE id = ?", params)
        else:
            await conn.execute("UPDATE jobs SET data = $1 WHERE id = $2", *params)
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
