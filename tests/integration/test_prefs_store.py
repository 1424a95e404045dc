"""Member preferences on a real SQLite file and a real PostgreSQL database: defaults,
round trips, scoping, reopening."""

from __future__ import annotations

import json

from bot.store import MemberPrefs
from tests.pg import StoreBackend


async def test_absent_member_gets_the_defaults(store_backend: StoreBackend) -> None:
    async with await store_backend.open() as store:
        prefs = await store.prefs.get("1", "42")
    assert prefs == MemberPrefs(guild_id="1", user_id="42", remix=False)


async def test_saved_prefs_survive_reopening_and_are_per_guild_and_member(
    store_backend: StoreBackend,
) -> None:
    async with await store_backend.open() as store:
        await store.prefs.save(MemberPrefs(guild_id="1", user_id="42", remix=True))
        await store.prefs.save(MemberPrefs(guild_id=None, user_id="42", remix=True))
    async with await store_backend.open() as store:
        assert (await store.prefs.get("1", "42")).remix is True
        assert (await store.prefs.get(None, "42")).remix is True  # DMs have their own row
        assert (await store.prefs.get("2", "42")).remix is False  # another server
        assert (await store.prefs.get("1", "43")).remix is False  # another member
        # Saving again replaces, it does not add a row.
        await store.prefs.save(MemberPrefs(guild_id="1", user_id="42", remix=False))
        assert (await store.prefs.get("1", "42")).remix is False
    rows = await store_backend.fetch("SELECT guild_id, user_id FROM member_prefs ORDER BY 1")
    assert rows == [("", "42"), ("1", "42")]


async def test_rows_from_a_newer_bot_read_back_without_unknown_keys(
    store_backend: StoreBackend,
) -> None:
    async with await store_backend.open():
        pass
    await store_backend.execute(
        "INSERT INTO member_prefs (guild_id, user_id, data, updated_at) VALUES (?, ?, ?, 0)",
        "1",
        "42",
        json.dumps({"remix": True, "some_future_pref": "x"}),
    )
    async with await store_backend.open() as store:
        assert await store.prefs.get("1", "42") == MemberPrefs("1", "42", remix=True)
