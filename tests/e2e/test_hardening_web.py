"""The real bot's webhook receiver against a hostile body (issue 13, item 7): JSON nested
far past Python's recursion limit is a 400, not a 500 with a RecursionError traceback, and
the receiver goes on serving. (Slow clients: tests/integration/test_hardening_web.py, where
the timeouts can be made small.)"""

from __future__ import annotations

from pathlib import Path

import aiohttp
from pydantic import SecretStr

from bot.config import Settings
from tests.e2e.conftest import open_world
from tests.e2e.test_hardening_logs import WEBHOOK_SECRET, _start_push_bot


async def test_deeply_nested_webhook_json_is_a_400_and_no_traceback(tmp_path: Path) -> None:
    async with open_world(tmp_path) as world:
        base = await _start_push_bot(world)
        token = Settings.model_construct(webhook_secret=SecretStr(WEBHOOK_SECRET)).webhook_token(
            "piapi"
        )
        url = f"{base}/webhook/piapi/{token}"
        headers = {"x-webhook-secret": WEBHOOK_SECRET, "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as session:
            for body in ("[" * 100_000 + "]" * 100_000, '{"data":' * 5_000 + "1" + "}" * 5_000):
                async with session.post(url, data=body.encode(), headers=headers) as resp:
                    assert resp.status == 400, await resp.text()
                    assert "nested too deeply" in await resp.text()
            notice = {"type": "mj_penalty_triggered", "time": 1, "detail": {}}
            async with session.post(url, json=notice, headers=headers) as resp:
                assert resp.status == 200  # still serving
        log = world.bots[-1].log()
        assert "RecursionError" not in log and "Traceback" not in log, log[-3000:]
        assert world.bots[-1].proc.poll() is None
