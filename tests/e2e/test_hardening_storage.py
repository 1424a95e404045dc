"""Storage faults reach the member and /healthz (issue 13, items 5 and 6), end to end: the
real bot process against the fake Discord and PiAPI, on a real SQLite file.

A full disk is the bot process's own file-size limit (RLIMIT_FSIZE, lowered for it alone
with prlimit once it runs): every write that grows a file fails as on a full disk, reads
still work, and lifting the limit is the disk freed again. A deleted or replaced database
file is done to the file itself, as an admin's mistake would."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import BotProcess, World, button_ids
from tests.e2e.test_community import private_text, slash
from tests.e2e.test_imagine import imagine_to_grid

CANT_SAVE = "can't save anything right now"
CHARGED = "nothing was charged"

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="prlimit on another process is Linux-only"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def full_disk(bot: BotProcess) -> Iterator[None]:
    import resource

    pid = bot.proc.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    # 4 KiB: no SQLite page, WAL frame or log line can be appended past it.
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (4096, hard))
    try:
        yield
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))


async def health(port: int) -> tuple[int, dict[str, object]]:
    url = f"http://127.0.0.1:{port}/healthz"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.json()


def creates(world: World) -> int:
    return len(world.piapi.created())


async def test_a_full_disk_is_told_privately_and_leaves_nothing_thinking(world: World) -> None:
    port = free_port()
    bot = await world.start_bot(METRICS_LISTEN=f"127.0.0.1:{port}")
    grid = await imagine_to_grid(world, "a grid before the disk filled")
    with full_disk(bot):
        # A button: the click is acknowledged (the button turns blue), then the member is
        # told privately that nothing was started.
        click = await world.discord.click(grid.id, button_ids(grid)["U1"])
        await world.discord.wait_for(lambda: bool(click.followup_ids), timeout=10)
        [followup] = [world.discord.messages[i] for i in click.followup_ids]
        assert followup.ephemeral and CANT_SAVE in followup.content, followup.content
        refused = await slash(world, "imagine", {"prompt": "a cat on a full disk"})
        assert refused.response_type == 4  # answered at once: no "thinking" reply at all
        text = private_text(refused)
        assert CANT_SAVE in text and CHARGED in text, text
        answer = private_text(
            await slash(world, "settings spoiler", {"state": "off"}, user="admin")
        )
        assert CANT_SAVE in answer and "Saved" not in answer, answer
        remix = private_text(await slash(world, "prefs remix", {"state": "on"}))
        assert CANT_SAVE in remix, remix
        status, body = await health(port)
        assert status == 503 and body["storage_ok"] is False, body
    assert creates(world) == 1  # the grid's: nothing more reached the provider
    assert not [m for m in world.discord.messages.values() if m.loading]
    # The disk has room again: the next command works, and /healthz recovers with it.
    ok = await slash(world, "imagine", {"prompt": "a cat after the disk was freed"})
    assert ok.response_type == 5, ok.response_data
    await world.discord.wait_for(lambda: creates(world) == 2, timeout=10, what="the create")
    status, body = await health(port)
    assert status == 200 and body["storage_ok"] is True, body


@pytest.mark.parametrize("fault", ["deleted", "replaced"])
async def test_a_deleted_or_replaced_database_refuses_writes_and_says_so(
    world: World, tmp_path: Path, fault: str
) -> None:
    port = free_port()
    bot = await world.start_bot(METRICS_LISTEN=f"127.0.0.1:{port}")
    saved = private_text(await slash(world, "settings spoiler", {"state": "off"}, user="admin"))
    assert "Saved" in saved, saved
    db = tmp_path / "bot.db"
    if fault == "deleted":
        db.unlink()
    else:  # a copy put in its place: the same bytes, another file
        shutil.copyfile(db, tmp_path / "copy.db")
        os.replace(tmp_path / "copy.db", db)

    answer = private_text(await slash(world, "settings spoiler", {"state": "on"}, user="admin"))
    assert CANT_SAVE in answer and "Saved" not in answer, answer
    refused = await slash(world, "imagine", {"prompt": "a cat with no database"})
    text = private_text(refused)
    assert CANT_SAVE in text and CHARGED in text, text
    assert creates(world) == 0
    status, body = await health(port)
    assert status == 503 and body["storage_ok"] is False, body
    assert fault in str(body["storage_problem"]), body
    # Logged at ERROR once, not once per refused write.
    errors = [
        line
        for line in bot.log().splitlines()
        if " ERROR " in line and f"database file was {fault}" in line
    ]
    assert len(errors) == 1, errors
