"""What the bot's log must not become (issue 13, items 9 and 10), read from the log of the
real bot process against the fake Discord and the fake PiAPI.

- a flood of wrong-token webhook posts writes a count, not a line per post;
- a provider's text with a line break in it cannot forge a log line;
- a member refused by /settings is not an ERROR with a traceback;
- no interaction token reaches the log, at DEBUG either.
"""

from __future__ import annotations

import asyncio
import re
import socket

import aiohttp
from pydantic import SecretStr

from bot.config import Settings
from tests.e2e.conftest import World, open_world
from tests.e2e.test_commands import private_text
from tests.e2e.test_imagine import imagine_to_grid

WEBHOOK_SECRET = "whsec-e2e-logs-0123456789"
FORGED = "2026-01-01 00:00:00,000 ERROR   bot.engine: FORGED LINE"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _start_push_bot(world: World) -> str:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    await world.start_bot(
        WEBHOOK_LISTEN=f"127.0.0.1:{port}", WEBHOOK_PUBLIC_URL=base, WEBHOOK_SECRET=WEBHOOK_SECRET
    )
    return base


async def _wait_log(world: World, pattern: str, *, limit_s: float = 10.0) -> str:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + limit_s
    while loop.time() < give_up:
        text = world.bots[-1].log()
        if re.search(pattern, text):
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"never logged {pattern!r}:\n{world.bots[-1].log()[-3000:]}")


async def test_a_flood_of_wrong_token_posts_is_counted_not_logged_per_post(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with open_world(tmp_path) as world:
        base = await _start_push_bot(world)
        posts = 300
        async with aiohttp.ClientSession() as session:

            async def forged(n: int) -> int:
                url = f"{base}/webhook/piapi/forged-token-{n}"
                async with session.post(url, json={"data": {}}) as resp:
                    return resp.status

            statuses = []
            for start in range(0, posts, 50):  # 50 at once, as a sender would
                statuses += await asyncio.gather(*(forged(n) for n in range(start, start + 50)))
        assert statuses == [404] * posts
        await _wait_log(world, r"webhook refused \(404\)")
        # SIGTERM flushes the window's count (the window itself lasts a minute).
        world.bots[-1].proc.terminate()
        world.bots[-1].proc.wait(timeout=10)
        log = world.bots[-1].log()
        refused = [line for line in log.splitlines() if "refused" in line]
        assert len(refused) <= 2, refused
        assert f"{posts - 1} more webhook post(s) refused" in log, refused


async def test_a_line_break_in_a_providers_notice_cannot_forge_a_log_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with open_world(tmp_path) as world:
        base = await _start_push_bot(world)
        token = Settings.model_construct(webhook_secret=SecretStr(WEBHOOK_SECRET)).webhook_token(
            "piapi"
        )
        notice = {"type": f"mj_penalty\n{FORGED}\r\x1b[2K", "time": 1, "detail": {}}
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{base}/webhook/piapi/{token}",
                json=notice,
                headers={"x-webhook-secret": WEBHOOK_SECRET},
            ) as resp,
        ):
            assert resp.status == 200, await resp.text()
        log = await _wait_log(world, r"account notice")
        [line] = [line for line in log.splitlines() if "account notice" in line]
        assert "\\n" in line and "FORGED" in line  # the text is there, escaped
        assert not any(line.startswith(FORGED[:20]) for line in log.splitlines())
        assert "\x1b" not in log and "\r" not in log


async def test_a_refused_settings_command_is_no_error_and_no_traceback(world: World) -> None:
    await world.start_bot()
    # A server may let a role use /settings (Integrations → command permissions), so the
    # bot checks Manage Server itself; the fake has no overrides: open the command instead.
    command = world.discord.find_command("settings", world.discord.guilds[0].id)
    assert command is not None
    command["default_member_permissions"] = None
    refused = await world.discord.slash("settings channels add", {"channel": "art"}, user="tester")
    await private_text(world, refused, r"Manage Server")
    log = await _wait_log(world, r"refused")
    assert "Traceback" not in log, log[-3000:]
    assert " ERROR " not in log, log[-3000:]
    # The bot still answers the admin: the refusal handler swallowed nothing else.
    allowed = await world.discord.slash("settings show", user="admin")
    await private_text(world, allowed, r"")


async def test_no_interaction_token_reaches_a_debug_log(world: World) -> None:
    await world.start_bot(LOG_LEVEL="DEBUG")
    await imagine_to_grid(world, "a lighthouse with a token")
    history = await world.discord.slash("job history")
    await private_text(world, history, r"lighthouse")
    log = "\n".join(bot.log() for bot in world.bots)
    tokens = [i.token for i in world.discord.interactions.values()]
    assert len(tokens) >= 2
    # The scan looked at the lines that used to carry them: webhook edits and callbacks.
    assert re.search(r"/webhooks/\d+/<redacted>", log), "no webhook edit logged at DEBUG"
    assert re.search(r"/interactions/\d+/<redacted>/callback", log)
    for token in tokens:
        for piece in {token, token[:24], token[-24:]}:
            assert piece not in log, "an interaction token in the log"
    assert "aW50ZXJhY3Rpb24" not in log
