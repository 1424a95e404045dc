"""`store.guilds.edit`: a settings change and its audit row in one locked transaction, on a
real SQLite file and on a real PostgreSQL database.

Two admins changing different settings at the same moment both keep their change (and
their audit row), whether the two edits come from one store or from two processes' stores;
an edit whose block raises, or that changes nothing, writes nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.community import GuildSettings, Limits
from tests.pg import StoreBackend


async def _edit_both(first_store: Any, second_store: Any, second_waits: Any) -> None:
    """First admin turns spoilers off, second sets the default speed to relax. The second
    starts once the first is inside its block, and the first stays there until
    `second_waits()` says the second edit is under way."""
    first_inside = asyncio.Event()

    async def first() -> None:
        async with first_store.guilds.edit("g1", "alice", "spoiler", at=100.0) as edit:
            first_inside.set()
            await second_waits()
            edit.update(spoiler_flagged=False)

    async def second() -> None:
        await first_inside.wait()
        async with second_store.guilds.edit("g1", "bob", "modes", at=200.0) as edit:
            edit.update(default_mode="relax")

    await asyncio.gather(first(), second())


async def _yield_a_while() -> None:
    for _ in range(50):  # every other ready task runs meanwhile (no wall time involved)
        await asyncio.sleep(0)


async def _assert_both_kept(store: Any) -> None:
    settings = await store.guilds.get("g1")
    assert settings.spoiler_flagged is False
    assert settings.default_mode == "relax"
    entries = await store.audit.recent("g1")
    assert sorted((e.actor_id, e.action, e.detail, e.at) for e in entries) == [
        ("alice", "spoiler", "spoiler_flagged: on → off", 100.0),
        ("bob", "modes", "default_mode: fast → relax", 200.0),
    ]


@pytest.mark.parametrize("first_saved", [False, True], ids=["new server", "saved before"])
async def test_two_admins_in_one_process_both_keep_their_change(
    store_backend: StoreBackend, first_saved: bool
) -> None:
    async with await store_backend.open() as store:
        if first_saved:
            await store.guilds.save(GuildSettings("g1", limits=Limits(2, 20, 5)))
        await _edit_both(store, store, _yield_a_while)
        await _assert_both_kept(store)
        assert (await store.guilds.get("g1")).limits == (
            Limits(2, 20, 5) if first_saved else Limits()
        )


async def test_two_processes_editing_at_once_both_keep_their_change(
    store_backend: StoreBackend,
) -> None:
    # Two stores on one database, as two bot processes: only the database's lock keeps
    # the second edit's read from coming before the first edit's write.
    options: dict[str, Any] = (
        {"busy_timeout_ms": 1, "lock_retries": 10_000, "retry_backoff": 0.001}
        if store_backend.is_sqlite
        else {}
    )
    async with (
        await store_backend.open(**options) as one,
        await store_backend.open(**options) as two,
    ):

        async def second_waits() -> None:
            # The second edit is blocked on the database's lock, not merely scheduled.
            # Polled: the database's lock table has no event to wait on.
            while not await _blocked(store_backend, two):  # noqa: ASYNC110
                await asyncio.sleep(0.005)

        await asyncio.wait_for(_edit_both(one, two, second_waits), timeout=60)
        await _assert_both_kept(one)


async def _blocked(backend: StoreBackend, store: Any) -> bool:
    if backend.is_sqlite:
        return bool(store.db.busy_retries > 0)
    # A lock wait shows in pg_stat_activity (this test's database is the only one in use).
    rows = await backend.fetch("SELECT wait_event_type FROM pg_stat_activity")
    return any(r[0] == "Lock" for r in rows)


class _Changed(Exception):
    pass


async def test_an_edit_whose_block_raises_writes_nothing(store_backend: StoreBackend) -> None:
    async with await store_backend.open() as store:
        await store.guilds.save(GuildSettings("g1", default_mode="turbo"))
        with pytest.raises(_Changed):
            async with store.guilds.edit("g1", "alice", "modes", at=1.0) as edit:
                edit.update(default_mode="relax", spoiler_flagged=False)
                raise _Changed
        assert await store.guilds.get("g1") == GuildSettings("g1", default_mode="turbo")
        assert await store.audit.recent("g1") == []
        # The store is usable afterwards: the transaction did not stay open.
        async with store.guilds.edit("g1", "alice", "modes", at=2.0) as edit:
            edit.update(default_mode="fast")
        assert (await store.guilds.get("g1")).default_mode == "fast"
        assert [e.detail for e in await store.audit.recent("g1")] == ["default_mode: turbo → fast"]


async def test_an_edit_that_changes_nothing_writes_no_audit_row(
    store_backend: StoreBackend,
) -> None:
    async with await store_backend.open() as store:
        async with store.guilds.edit("g1", "alice", "clicks", at=1.0) as edit:
            edit.update(follow_up_clicks="anyone")  # already so
        assert edit.change == ""
        assert await store.audit.recent("g1") == []
        assert await store.guilds.get("g1") == GuildSettings("g1")
