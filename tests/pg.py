"""A throwaway PostgreSQL cluster for the tests, and a fresh database per test.

The session fixture `pg_cluster` finds `initdb` and `pg_ctl` (PATH, then
/usr/lib/postgresql/*/bin), initialises a cluster in a temporary directory and starts it
on a free port of 127.0.0.1 only, with its unix socket inside that directory. As root it
runs them as the `postgres` OS user: initdb and the server refuse to run as root.

Without the binaries the PostgreSQL tests are skipped, saying why; in CI (CI=true) they
never are: the missing binaries fail the run instead. `.ci/run` installs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import itertools
import os
import pwd
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import pytest

SUPERUSER = "postgres"
_db_numbers = itertools.count(1)


class ClusterUnavailable(Exception):
    """PostgreSQL cannot run here; the message says why (and how to fix it)."""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def find_pg_bin() -> Path:
    """The folder holding initdb and pg_ctl: PATH first, then the newest Debian install."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    for initdb in reversed(candidates):
        folder = Path(initdb).parent
        if (folder / "pg_ctl").exists():
            return folder
    raise ClusterUnavailable(
        "PostgreSQL's initdb and pg_ctl were not found on PATH or in "
        "/usr/lib/postgresql/*/bin (install the distribution's postgresql package)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgCluster:
    """A running throwaway cluster; `url(db)` is what DATABASE_URL would be."""

    bin_dir: Path
    root: Path  # the temporary directory: data/, the socket, the log
    port: int
    password: str
    run_as: str | None  # the OS user the server runs as, when we are root
    # More `-c name=value` server settings (bench/pg.py: shared_preload_libraries).
    settings: tuple[str, ...] = ()

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one of the cluster's programs (as the server's user when we are root)."""
        command: Sequence[str] = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        # cwd: the server's user may not be allowed into the checkout (a root-only folder).
        return subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, timeout=60, check=False
        )

    def start(self) -> None:
        options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.root}",
                # Throwaway data: no fsync, so CREATE DATABASE per test stays cheap.
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
                *(f"-c {setting}" for setting in self.settings),
            ]
        )
        done = self.run(
            "pg_ctl", "start", "-w", "-t", "30", "-D", str(self.data_dir),
            "-l", str(self.log_path), "-o", options,
        )  # fmt: skip
        if done.returncode != 0:
            log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {done.stdout}{done.stderr}\n{log[-3000:]}")

    def stop(self) -> None:
        self.run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30")


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise ClusterUnavailable(
            "running as root, and there is no 'postgres' OS user to run the server as "
            "(initdb and postgres refuse root); install the postgresql package"
        ) from None
    return SUPERUSER


def init_cluster() -> PgCluster:
    """initdb a fresh cluster in a new temporary directory (not started yet)."""
    bin_dir = find_pg_bin()
    run_as = _server_user()
    root = Path(tempfile.mkdtemp(prefix="mj-pg-"))
    password = secrets.token_hex(12)
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    if run_as is not None:
        os.chown(pwfile, pwd.getpwnam(run_as).pw_uid, -1)
    cluster = PgCluster(bin_dir, root, _free_port(), password, run_as)
    done = cluster.run(
        "initdb", "-D", str(cluster.data_dir), "-U", SUPERUSER, f"--pwfile={pwfile}",
        "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync",
    )  # fmt: skip
    pwfile.unlink()
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {done.stdout}{done.stderr}")
    return cluster


def start_cluster(settings: Sequence[str] = ()) -> PgCluster:
    """A fresh cluster, initialised and running (with `settings`, `name=value` each, on
    top of the throwaway defaults); `destroy` it when done."""
    cluster = init_cluster()
    cluster.settings = tuple(settings)
    for attempt in range(3):  # the free port may be taken between the look and the start
        try:
            cluster.start()
            return cluster
        except RuntimeError:
            if attempt == 2:
                destroy(cluster)
                raise
            cluster.port = _free_port()
    raise AssertionError("unreachable")


def destroy(cluster: PgCluster) -> None:
    cluster.stop()
    shutil.rmtree(cluster.root, ignore_errors=True)


def skip_or_fail(reason: str) -> NoReturn:
    """Skip, saying why; in CI fail instead: there the PostgreSQL tests must run."""
    if in_ci():
        pytest.fail(f"PostgreSQL tests cannot be skipped in CI: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """The session's cluster; skipped (failed in CI) when PostgreSQL is not installed."""
    try:
        cluster = start_cluster()
    except ClusterUnavailable as exc:
        skip_or_fail(str(exc))
    try:
        yield cluster
    finally:
        destroy(cluster)


async def create_database(cluster: PgCluster) -> str:
    """A new, empty database on `cluster`; returns its URL."""
    import asyncpg

    name = f"t{os.getpid()}_{next(_db_numbers)}"
    conn = await asyncpg.connect(cluster.url())
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 STRATEGY FILE_COPY')
    finally:
        await conn.close()
    return cluster.url(name)


async def drop_database(cluster: PgCluster, url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(cluster.url())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh database for one test, dropped after it. Synchronous (its own short event
    loop), so that any test, fixture or parametrisation can ask for it."""
    url = asyncio.run(create_database(pg_cluster))
    try:
        yield url
    finally:
        asyncio.run(drop_database(pg_cluster, url))


# --- one store test suite for both backends ---------------------------------------------

BACKENDS = ("sqlite", "postgresql")


def _dollar_params(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1, $2, …` (the tests' SQL has no `?` in quotes)."""
    numbers = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(numbers)}", sql)


@dataclass
class StoreBackend:
    """One database for one test, on either backend, with raw access beside the store.

    Raw SQL is written with `?` placeholders, as for SQLite, and translated for PostgreSQL.
    """

    name: str  # "sqlite" or "postgresql"
    url: str
    sqlite_path: Path | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.name == "sqlite"

    async def open(self, **options: Any) -> Any:
        from bot.store import open_store

        return await open_store(self.url, **options)

    def wait_options(self, lock_wait_ms: int, **options: Any) -> dict[str, Any]:
        """Opening options: how long one statement waits for a lock, in the backend's words."""
        key = "busy_timeout_ms" if self.is_sqlite else "lock_timeout_ms"
        return {key: lock_wait_ms, **options}

    async def fetch(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.sqlite_path is not None:
            with contextlib.closing(sqlite3.connect(self.sqlite_path)) as conn:
                return [tuple(r) for r in conn.execute(sql, params).fetchall()]
        conn = await _pg_connect(self.url)
        try:
            return [tuple(r) for r in await conn.fetch(_dollar_params(sql), *params)]
        finally:
            await conn.close()

    async def fetch_dicts(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        if self.sqlite_path is not None:
            with contextlib.closing(sqlite3.connect(self.sqlite_path)) as conn:
                conn.row_factory = sqlite3.Row
                return [dict(r) for r in conn.execute(sql, params).fetchall()]
        conn = await _pg_connect(self.url)
        try:
            return [dict(r) for r in await conn.fetch(_dollar_params(sql), *params)]
        finally:
            await conn.close()

    async def execute(self, sql: str, *params: Any) -> None:
        if self.sqlite_path is not None:
            with contextlib.closing(sqlite3.connect(self.sqlite_path, isolation_level=None)) as c:
                c.execute(sql, params)
            return
        conn = await _pg_connect(self.url)
        try:
            await conn.execute(_dollar_params(sql), *params)
        finally:
            await conn.close()

    async def row_count(self, table: str = "jobs") -> int:
        return int((await self.fetch(f"SELECT COUNT(*) FROM {table}"))[0][0])

    async def tables(self) -> set[str]:
        if self.is_sqlite:
            rows = await self.fetch("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            rows = await self.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        return {str(r[0]) for r in rows}

    def migrations(self) -> list[Any]:
        if self.is_sqlite:
            from bot.store import load_migrations

            return list(load_migrations())
        from bot.store.postgres import load_pg_migrations

        return list(load_pg_migrations())

    def migration(self, version: int, name: str, sql: str) -> Any:
        if self.is_sqlite:
            from bot.store import Migration

            return Migration(version, name, sql)
        from bot.store.postgres import PgMigration

        return PgMigration(version, name, sql)

    def migration_files(self) -> list[str]:
        folder = "migrations" if self.is_sqlite else "migrations_pg"
        entries = resources.files("bot.store").joinpath(folder).iterdir()
        return sorted(e.name for e in entries if e.name.endswith(".sql"))

    @contextlib.asynccontextmanager
    async def write_lock(self) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """Hold the jobs table's write lock from another connection (as another process
        would); yields `release`, which the test calls (or the exit does)."""
        if self.sqlite_path is not None:
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            lite = sqlite3.connect(self.sqlite_path, isolation_level=None, check_same_thread=False)
            lite.execute("BEGIN EXCLUSIVE")

            async def release_lite() -> None:
                if lite.in_transaction:
                    lite.commit()

            try:
                yield release_lite
            finally:
                await release_lite()
                lite.close()
            return
        conn = await _pg_connect(self.url)
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("LOCK TABLE jobs IN EXCLUSIVE MODE")  # reads go on, writes wait
        released = False

        async def release_pg() -> None:
            nonlocal released
            if not released:
                released = True
                await transaction.commit()

        try:
            yield release_pg
        finally:
            await release_pg()
            await conn.close()


async def _pg_connect(url: str) -> Any:
    import asyncpg

    return await asyncpg.connect(url)


@pytest.fixture(params=BACKENDS)
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreBackend]:
    """Each store test once on SQLite (a real file) and once on PostgreSQL (a fresh
    database on the session's throwaway cluster)."""
    if request.param == "sqlite":
        path = tmp_path / "store" / "bot.db"
        yield StoreBackend("sqlite", f"sqlite:///{path}", sqlite_path=path)
        return
    url = request.getfixturevalue("pg_url")
    yield StoreBackend("postgresql", url)
