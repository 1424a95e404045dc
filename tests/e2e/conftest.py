"""End to end: the real bot (`python -m bot`, a separate process) against the fake Discord
and the fake PiAPI, both served from the test process on 127.0.0.1.

The fake PiAPI runs on a FakeClock that the test advances, so a job moves through its
life only when the test says so; the bot polls it every fraction of a second.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.clock import FakeClock
from tests.fakes.discord import DEFAULT_GUILD_ID, FakeDiscord
from tests.fakes.discord.models import MessageRecord
from tests.fakes.piapi import FakePiAPI

ROOT = Path(__file__).resolve().parents[2]
BOT_TOKEN = "fake-bot-token-0123456789"
PIAPI_KEY = "pk-e2e-secret-key"


@dataclass
class BotProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class World:
    discord: FakeDiscord
    piapi: FakePiAPI
    clock: FakeClock
    tmp: Path
    env: dict[str, str]
    bots: list[BotProcess] = field(default_factory=list)

    async def start_bot(self, **extra_env: str) -> BotProcess:
        log_path = self.tmp / f"bot-{len(self.bots)}.log"
        ready_before = self.discord.gateway.identifies
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(  # noqa: ASYNC220 - a real process, killed on purpose later
                [sys.executable, "-m", "bot"],
                cwd=self.tmp,
                env={**self.env, **extra_env},
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        bot = BotProcess(proc, log_path)
        self.bots.append(bot)
        try:
            await self.discord.wait_for(
                lambda: (
                    self.discord.gateway.identifies > ready_before
                    and self.discord.find_command("imagine", DEFAULT_GUILD_ID) is not None
                ),
                timeout=30,
                what="the bot to log in and sync its commands",
            )
            await self.discord.wait_ready()
        except TimeoutError:
            raise AssertionError(f"bot did not start:\n{bot.log()}") from None
        return bot

    def kill(self, bot: BotProcess) -> None:
        bot.proc.send_signal(signal.SIGKILL)
        bot.proc.wait(timeout=10)

    def channel_messages(self) -> list[MessageRecord]:
        return [m for m in self.discord.messages.values() if not m.ephemeral and not m.deleted]

    async def wait_message(
        self, predicate: Callable[[MessageRecord], bool], *, limit_s: float = 15, what: str = ""
    ) -> MessageRecord:
        def find() -> MessageRecord | None:
            for message in list(self.discord.messages.values()):
                if predicate(message):
                    return message
            return None

        try:
            return await self.discord.wait_for(find, timeout=limit_s, what=what)
        except TimeoutError:
            logs = "\n".join(b.log()[-4000:] for b in self.bots)
            raise AssertionError(f"timed out waiting for {what}\nbot log:\n{logs}") from None

    async def advance_piapi(self, seconds: float, *, settle: float = 0.0) -> None:
        """Move the provider's time on, then wait (bounded) until the bot has looked at a
        task since, so that no state is skipped on a slow machine; then `settle` more."""
        self.clock.advance(seconds)
        now = self.clock.time()
        loop = asyncio.get_running_loop()
        give_up = loop.time() + 3.0
        while loop.time() < give_up and self.bots and self._has_running_tasks():
            if any(
                r.method == "GET" and r.at >= now and r.status for r in self.piapi.requests[-50:]
            ):
                break
            await asyncio.sleep(0.02)
        if settle:
            await asyncio.sleep(settle)

    def _has_running_tasks(self) -> bool:
        now = self.clock.time()
        return any(
            task.status(now) in ("pending", "processing")
            for task in list(self.piapi.tasks.values())[-20:]
        )


def button_ids(message: MessageRecord) -> dict[str, str]:
    """label or emoji → custom_id of every button on the message."""
    result: dict[str, str] = {}
    for row in message.components:
        for button in row.get("components", []):
            name = button.get("label") or (button.get("emoji") or {}).get("name")
            result[str(name)] = button["custom_id"]
    return result


def buttons_of(message: MessageRecord) -> list[list[Any]]:
    return [
        [b.get("label") or (b.get("emoji") or {}).get("name") for b in row.get("components", [])]
        for row in message.components
    ]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = FakeClock()
    async with (
        FakeDiscord(bot_token=BOT_TOKEN) as discord,
        FakePiAPI(api_key=PIAPI_KEY, clock=clock, image_size=256) as piapi,
    ):
        env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("DISCORD_", "PIAPI_", "MJ_"))
            },
            "PYTHONPATH": str(ROOT),
            "DISCORD_TOKEN": BOT_TOKEN,
            "DISCORD_API_BASE": discord.api_base,
            "DISCORD_GATEWAY_URL": discord.gateway_url,
            "DISCORD_GUILD_IDS": str(DEFAULT_GUILD_ID),
            "DISCORD_GUILD_READY_TIMEOUT": "0.1",
            "DISCORD_EDIT_INTERVAL_S": "0.2",
            "PIAPI_API_KEY": PIAPI_KEY,
            "PIAPI_BASE_URL": piapi.base_url,
            "MJ_POLL_INTERVAL_S": "0.1",
            "MJ_POLL_MAX_INTERVAL_S": "0.3",
            "MEDIA_ALLOW_PRIVATE_HOSTS": "true",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
            "LOG_LEVEL": "INFO",
        }
        w = World(discord=discord, piapi=piapi, clock=clock, tmp=tmp_path, env=env)
        try:
            yield w
        finally:
            for bot in w.bots:
                if bot.proc.poll() is None:
                    bot.proc.send_signal(signal.SIGTERM)
                    try:
                        bot.proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        w.kill(bot)
