"""End to end: the real bot (`python -m bot`, a separate process) against the fake Discord
and the fake PiAPI, both served from the test process on 127.0.0.1.

The fake PiAPI runs on a FakeClock that the test advances, so a job moves through its
life only when the test says so; the bot polls it every fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
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


@dataclass
class BotProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class World:
    discord: FakeDiscord
    # The fake image service: FakePiAPI, FakeLegnext, FakeVtrix or FakeMJProxy. Every one
    # records `requests` (method, path, at, status) and offers `running_task_count()`.
    fake: Any
    clock: FakeClock
    tmp: Path
    env: dict[str, str]
    bots: list[BotProcess] = field(default_factory=list)

    @property
    def piapi(self) -> FakePiAPI:
        assert isinstance(self.fake, FakePiAPI), "this world runs another backend"
        return self.fake

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
                r.method == "GET" and r.at >= now and r.status for r in self.fake.requests[-50:]
            ):
                break
            await asyncio.sleep(0.02)
        if settle:
            await asyncio.sleep(settle)

    def _has_running_tasks(self) -> bool:
        return bool(self.fake.running_task_count())


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


# Per backend: the fake to run and the settings that point the bot at it.
BACKEND_KEYS = {
    "piapi": "pk-e2e-secret-key",
    "legnext": "lg-e2e-secret-key",
    "vtrix": "vx-e2e-secret-key",
    "mjproxy": "mp-e2e-secret-key",
}
PIAPI_KEY = BACKEND_KEYS["piapi"]


def _backend_fake(backend: str, clock: FakeClock) -> tuple[Any, Callable[[Any], dict[str, str]]]:
    key = BACKEND_KEYS[backend]
    if backend == "piapi":
        return FakePiAPI(api_key=key, clock=clock, image_size=256), lambda f: {
            "PIAPI_API_KEY": key,
            "PIAPI_BASE_URL": f.base_url,
        }
    if backend == "legnext":
        from tests.fakes.legnext import FakeLegnext

        return FakeLegnext(api_key=key, clock=clock, image_size=256), lambda f: {
            "LEGNEXT_API_KEY": key,
            "LEGNEXT_BASE_URL": f.base_url,
        }
    if backend == "vtrix":
        from tests.fakes.legnext import FakeVtrix

        return FakeVtrix(api_key=key, clock=clock, image_size=256), lambda f: {
            "VTRIX_API_KEY": key,
            "VTRIX_BASE_URL": f.base_url,
        }
    if backend == "mjproxy":
        from tests.fakes.mjproxy import FakeMJProxy

        return FakeMJProxy(api_secret=key, clock=clock, image_size=256), lambda f: {
            "MJPROXY_BASE_URL": f.base_url,
            "MJPROXY_API_SECRET": key,
        }
    raise ValueError(backend)


@contextlib.asynccontextmanager
async def open_world(tmp_path: Path, backend: str = "piapi") -> AsyncIterator[World]:
    clock = FakeClock()
    fake, backend_env = _backend_fake(backend, clock)
    async with FakeDiscord(bot_token=BOT_TOKEN) as discord, fake:
        env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("DISCORD_", "PIAPI_", "MJ_", "VTRIX_", "LEGNEXT_", "MJPROXY_"))
            },
            "PYTHONPATH": str(ROOT),
            "DISCORD_TOKEN": BOT_TOKEN,
            "DISCORD_API_BASE": discord.api_base,
            "DISCORD_GATEWAY_URL": discord.gateway_url,
            "DISCORD_GUILD_IDS": str(DEFAULT_GUILD_ID),
            "DISCORD_GUILD_READY_TIMEOUT": "0.1",
            "DISCORD_EDIT_INTERVAL_S": "0.2",
            "MJ_PROVIDER": backend,
            **backend_env(fake),
            "MJ_POLL_INTERVAL_S": "0.1",
            "MJ_POLL_MAX_INTERVAL_S": "0.3",
            "MEDIA_ALLOW_PRIVATE_HOSTS": "true",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
            "LOG_LEVEL": "INFO",
        }
        w = World(discord=discord, fake=fake, clock=clock, tmp=tmp_path, env=env)
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


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with open_world(tmp_path) as w:
        yield w
