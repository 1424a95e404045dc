"""Member preferences on a real SQLite file: defaults, round trips, scoping, reopening."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from bot.store import MemberPrefs, open_store


async def test_absent_member_gets_the_defaults(tmp_path: Path) -> None:
    async with await open_store(str(tmp_path / "bot.db")) as store:
        prefs = await store.prefs.get("1", "42")
    assert prefs == MemberPrefs(guild_id="1", user_id="42", remix=False)


async def test_saved_prefs_survive_reopening_and_are_per_guild_and_member(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "bot.db")
    async with await open_store(path) as store:
        await store.prefs.save(MemberPrefs(guild_id="1", user_id="42", remix=True))
        await store.prefs.save(MemberPrefs(guild_id=None, user_id="42", remix=True))
    async with await open_store(path) as store:
        assert (await store.prefs.get("1", "42")).remix is True
        assert (await store.prefs.get(None, "42")).remix is True  # DMs have their own row
        assert (await store.prefs.get("2", "42")).remix is False  # another server
        assert (await store.prefs.get("1", "43")).remix is False  # another member
        # Saving again replaces, it does not add a row.
        await store.prefs.save(MemberPrefs(guild_id="1", user_id="42", remix=False))
        assert (await store.prefs.get("1", "42")).remix is False
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT guild_id, user_id FROM member_prefs ORDER BY 1").fetchall()
    assert rows == [("", "42"), ("1", "42")]


async def test_rows_from_a_newer_bot_read_back_without_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    async with await open_store(str(path)):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO member_prefs (guild_id, user_id, data, updated_at) VALUES (?, ?, ?, 0)",
            ("1", "42", json.dumps({"remix": True, "some_future_pref": "x"})),
        )
    async with await open_store(str(path)) as store:
        assert await store.prefs.get("1", "42") == MemberPrefs("1", "42", remix=True)
