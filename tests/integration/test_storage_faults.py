"""The SQLite file under faults, beyond tests/integration/test_store.py (one kill of a
writer, lock retries, idempotent migrations): many kills at random moments of one file by
a writer that inserts, saves and finishes jobs; and a database made at every older schema
version, opened twice by the current code."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import sys
from pathlib import Path

import pytest

from bot.domain import Job, JobStatus, Operation, OperationKind
from bot.store import open_store
from bot.store.sqlite import V1_JOB_COLUMNS, _row, load_migrations

REPO_ROOT = Path(__file__).resolve().parents[2]

# Prints a line only after the change is committed; a later change may commit unprinted.
WRITER = """
import asyncio, sys
from bot.domain import Job, JobStatus, Operation, OperationKind
from bot.store import open_store

async def main() -> None:
    store = await open_store(sys.argv[1])
    start = int(sys.argv[2])
    i = start
    while True:
        job = Job(id=f"k{i:09d}", operation=Operation(OperationKind.IMAGINE, prompt="p" * 300),
                  provider="piapi", idempotency_key=f"key-{i}", created_at=float(i))
        await store.jobs.insert(job)
        print("inserted", job.id, 0, flush=True)
        for polls in range(1, 4):
            job.status, job.polls, job.progress = JobStatus.RUNNING, polls, polls * 25
            await store.jobs.save(job)
            print("saved", job.id, polls, flush=True)
        job.status = JobStatus.COMPLETED
        job.polls = 4
        await store.jobs.save(job)
        print("saved", job.id, 4, flush=True)
        i += 1

asyncio.run(main())
"""


async def _run_and_kill(db: Path, start: int, kill_after_s: float) -> dict[str, int]:
    """Start a writer, kill -9 it after `kill_after_s` (real time), return what it committed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        str(db),
        str(start),
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    committed: dict[str, int] = {}

    def note(raw: bytes | str) -> None:
        text = raw.decode() if isinstance(raw, bytes) else raw
        words = text.split()
        if text.endswith("\n") and len(words) == 3:  # a line cut by the kill says nothing
            committed[words[1]] = int(words[2])

    loop = asyncio.get_running_loop()
    # Wait for its first commit (start-up is slow and not what we test), then the delay.
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
    assert line, (await proc.stderr.read()).decode() if proc.stderr else ""
    note(line)
    kill_at = loop.time() + kill_after_s
    while (remaining := kill_at - loop.time()) > 0:
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=remaining)
        except TimeoutError:
            break
        if not line:
            break
        note(line)
    proc.kill()
    await proc.wait()
    # Lines written before the kill but not read yet still describe committed changes.
    for rest in (await proc.stdout.read()).decode().splitlines(keepends=True):
        note(rest)
    return committed


async def test_the_file_survives_kills_at_random_moments(tmp_path: Path) -> None:
    seed = random.SystemRandom().randrange(1 << 32)
    print(f"\nstorage kill seed: {seed}")
    rng = random.Random(seed)
    db = tmp_path / "bot.db"
    all_committed: dict[str, int] = {}
    kills = 8
    for round_ in range(kills):
        committed = await _run_and_kill(db, round_ * 1_000_000, rng.uniform(0.0, 0.4))
        all_committed.update(committed)
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        store = await open_store(str(db))
        try:
            for job_id, polls in all_committed.items():
                stored = await store.jobs.get(job_id)
                assert stored is not None, f"committed job {job_id} lost (seed {seed})"
                assert stored.polls >= polls, (job_id, stored.polls, polls, seed)
                assert (stored.status is JobStatus.COMPLETED) == (stored.polls == 4)
        finally:
            await store.close()
    print(f"{kills} kills, {len(all_committed)} committed jobs all read back intact")


@pytest.mark.parametrize("version", range(len(load_migrations()) + 1))
async def test_a_database_at_each_older_version_opens_twice(tmp_path: Path, version: int) -> None:
    path = str(tmp_path / "bot.db")
    migrations = load_migrations()
    old = [m for m in migrations if m.version <= version]
    job = Job(
        id="old000000001",
        operation=Operation(OperationKind.IMAGINE, prompt="from an older bot"),
        provider="piapi",
        status=JobStatus.RUNNING,
        created_at=1.0,
    )
    async with await open_store(path, migrations=old):
        pass
    if version >= 1:
        with sqlite3.connect(path) as conn:  # written as that older bot did: its columns
            marks = ", ".join("?" for _ in V1_JOB_COLUMNS)
            conn.execute(
                f"INSERT INTO jobs ({', '.join(V1_JOB_COLUMNS)}) VALUES ({marks})",
                _row(job)[: len(V1_JOB_COLUMNS)],
            )
    for _ in range(2):  # the current code, twice: the second opening changes nothing
        async with await open_store(path) as store:
            if version >= 1:
                back = await store.jobs.get(job.id)
                assert back is not None and back.operation.prompt == "from an older bot"
        with sqlite3.connect(path) as conn:
            versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert versions == [m.version for m in migrations]
