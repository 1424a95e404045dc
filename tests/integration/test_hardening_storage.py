"""The SQLite store under storage faults (issue 13, items 5 and 6), on a real file: a full
database (SQLite's own SQLITE_FULL, through `max_page_count` on the writing connection)
and a database file deleted or replaced under the open store. Every failed write is a
StoreUnavailableError that loses nothing silently, and the store reports it for /healthz."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from bot.community import GuildSettings
from bot.domain import Job, Operation, OperationKind
from bot.store.base import StorageHealth, StoreError, StoreUnavailableError
from bot.store.sqlite import open_store


def job(n: int, prompt: str = "a cat") -> Job:
    return Job(
        id=f"h{n:011d}",
        operation=Operation(OperationKind.IMAGINE, prompt=prompt),
        provider="piapi",
        idempotency_key=f"key-{n}",
        created_at=float(n),
    )


async def test_a_full_database_refuses_the_write_and_recovers(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'bot.db'}")
    try:
        await store.jobs.insert(job(1))
        conn = store.db.connection
        async with conn.execute("PRAGMA page_count") as cur:
            row = await cur.fetchone()
        assert row is not None
        await conn.execute(f"PRAGMA max_page_count = {int(row[0])}")  # no page to grow into
        with pytest.raises(StoreUnavailableError) as raised:
            await store.jobs.insert(job(2, "x" * 200_000))
        assert isinstance(raised.value, StoreError)
        assert "full" in str(raised.value)
        assert isinstance(store.jobs, StorageHealth)
        assert "cannot be written" in (store.jobs.storage_problem() or "")
        assert await store.jobs.get(job(2).id) is None  # nothing half-saved
        await conn.execute("PRAGMA max_page_count = 1073741823")  # room again
        await store.jobs.insert(job(3, "x" * 200_000))
        assert store.jobs.storage_problem() is None
        assert (await store.jobs.get(job(1).id)) is not None
    finally:
        await store.close()


@pytest.mark.parametrize("fault", ["deleted", "replaced"])
async def test_a_deleted_or_replaced_file_refuses_every_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    path = tmp_path / "bot.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        await store.jobs.insert(job(1))
        assert store.jobs.storage_problem() is None
        if fault == "deleted":
            path.unlink()
        else:
            shutil.copyfile(path, tmp_path / "copy.db")
            os.replace(tmp_path / "copy.db", path)
        caplog.set_level(logging.ERROR, logger="bot.store.sqlite")
        for n in range(2, 5):  # jobs, settings, prefs: every write is refused
            with pytest.raises(StoreUnavailableError, match=fault):
                await store.jobs.insert(job(n))
        with pytest.raises(StoreUnavailableError):
            await store.guilds.save(GuildSettings("1", default_mode="relax"))
        assert fault in (store.jobs.storage_problem() or "")
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and fault in errors[0].getMessage(), errors
    finally:
        await store.close()


async def test_an_untouched_file_keeps_working(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        os.utime(path)  # a touch, a backup reading it: same file, no alarm
        for n in range(1, 4):
            await store.jobs.insert(job(n))
        assert store.jobs.storage_problem() is None
    finally:
        await store.close()
