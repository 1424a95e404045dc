"""The real bot (`python -m bot`) on PostgreSQL: DATABASE_URL points at a fresh database on
the throwaway cluster (tests/pg.py), against the fake Discord and the fake PiAPI.

The same flows as on SQLite (tests/e2e/test_imagine.py): /imagine to the final grid, and a
kill -9 mid-job then a restart that finishes the same message. What the bot stored is read
back from PostgreSQL itself, and the URL's password is in no log and no message.
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg

from tests.e2e.conftest import BOT_TOKEN, PIAPI_KEY, ROOT, World
from tests.e2e.test_imagine import imagine_to_grid, is_final_grid
from tests.pg import PgCluster


async def stored(url: str, sql: str) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


def nothing_secret_in(world: World, password: str) -> None:
    sent = repr([r.body for r in world.discord.requests]) + "".join(b.log() for b in world.bots)
    for secret in (password, BOT_TOKEN, PIAPI_KEY):
        assert secret not in sent


async def test_imagine_on_postgres_reaches_the_grid_and_is_stored_there(
    world: World, pg_url: str, pg_cluster: PgCluster
) -> None:
    await world.start_bot(DATABASE_URL=pg_url)
    grid = await imagine_to_grid(world, "a lighthouse on postgres")
    assert "a lighthouse on postgres" in grid.content and grid.attachments
    [create] = world.piapi.created("imagine")

    assert await stored(pg_url, "SELECT status, provider_ref FROM jobs") == [
        ("completed", create.task_id)
    ]
    [(message_id, delivered_at)] = await stored(
        pg_url, "SELECT message_id, final_delivered_at FROM deliveries"
    )
    assert message_id == str(grid.id) and delivered_at is not None
    # The SQLite file the world would use by default was never made.
    assert not (world.tmp / "bot.db").exists()
    nothing_secret_in(world, pg_cluster.password)


async def test_killed_bot_on_postgres_restarts_and_finishes_the_same_message(
    world: World, pg_url: str, pg_cluster: PgCluster
) -> None:
    bot = await world.start_bot(DATABASE_URL=pg_url)
    interaction = await world.discord.slash("imagine", {"prompt": "a phoenix on postgres"})
    await world.discord.wait_for(lambda: interaction.responded, timeout=5)
    await world.discord.wait_for(lambda: len(world.piapi.created()) == 1, timeout=10)
    await world.advance_piapi(9, settle=0.5)
    world.kill(bot)
    assert await stored(pg_url, "SELECT status FROM jobs") != [("completed",)]

    for _ in range(10):
        await world.advance_piapi(3)
    await world.start_bot(DATABASE_URL=pg_url)
    final = await world.wait_message(
        lambda m: m.id == interaction.original_message_id and is_final_grid(m),
        limit_s=20,
        what="the final grid on the original message after the restart",
    )
    assert final.attachments
    assert len(world.piapi.created()) == 1  # never submitted twice
    assert len([m for m in world.channel_messages() if is_final_grid(m)]) == 1
    assert await stored(pg_url, "SELECT status FROM jobs") == [("completed",)]
    nothing_secret_in(world, pg_cluster.password)


async def test_check_names_the_database_without_its_password(
    world: World, pg_url: str, pg_cluster: PgCluster
) -> None:
    check = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--check",
        cwd=world.tmp,
        env={**world.env, "PYTHONPATH": str(ROOT), "DATABASE_URL": pg_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(check.communicate(), timeout=60)
    assert check.returncode == 0, err.decode()
    assert f"database postgresql://postgres:***@127.0.0.1:{pg_cluster.port}/" in out.decode()
    assert pg_cluster.password not in (out + err).decode()
