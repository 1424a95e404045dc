"""Push mode end to end: the real bot process with its webhook receiver on 127.0.0.1, the
fake Discord, and the fake PiAPI posting each task change to the bot (PiAPI's
`webhook_config`). The job must reach its final grid on webhooks alone: the bot's safety poll
(60 s, real time) never comes due during the test, so the fake sees no task reads.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess

import aiohttp

from tests.e2e.conftest import World, open_world
from tests.e2e.test_imagine import is_final_grid


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def advance(world: World, seconds: float, *, settle: float = 0.3) -> None:
    """Move the fake's time on, let it post what changed, give the bot a moment."""
    world.clock.advance(seconds)
    await world.piapi.webhooks.check()
    await asyncio.sleep(settle)


async def test_imagine_completes_on_webhooks_with_no_polling(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with open_world(tmp_path) as world:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        await world.start_bot(
            WEBHOOK_LISTEN=f"127.0.0.1:{port}",
            WEBHOOK_PUBLIC_URL=base,
            METRICS_LISTEN=f"127.0.0.1:{port}",
        )
        interaction = await world.discord.slash("imagine", {"prompt": "a lighthouse at dusk"})
        await world.discord.wait_for(
            lambda: interaction.responded, timeout=5, what="the acknowledgement"
        )
        await world.discord.wait_for(
            lambda: bool(world.piapi.created("imagine")), timeout=10, what="the submission"
        )
        [create] = world.piapi.created("imagine")
        hook = create.json["config"]["webhook_config"]
        assert hook["endpoint"].startswith(f"{base}/webhook/piapi/")
        assert hook["secret"], "a secret is generated when WEBHOOK_SECRET is empty"

        for _ in range(12):
            await advance(world, 3)
        final = await world.wait_message(
            lambda m: m.id == interaction.original_message_id and is_final_grid(m),
            what="the final grid",
        )
        assert "a lighthouse at dusk" in final.content

        deliveries = world.piapi.webhooks.deliveries
        assert deliveries and all(d.status == 200 for d in deliveries), deliveries
        task_reads = [
            r for r in world.piapi.requests if r.method == "GET" and r.path.startswith("/api/")
        ]
        assert len(task_reads) <= 1, [r.path for r in task_reads]

        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/metrics") as resp:
                assert resp.status == 200
                metrics = await resp.text()
            async with session.get(f"{base}/healthz") as resp:
                assert resp.status == 200
                health = await resp.json()
        accepted = f'mjbot_webhooks_total{{outcome="accepted",provider="piapi"}} {len(deliveries)}'
        assert accepted in metrics, metrics
        assert health["status"] == "ok" and health["engine_running"] is True

        # Neither the generated secret nor the path token shows up in the bot's log.
        log = world.bots[0].log()
        token = hook["endpoint"].rsplit("/", 1)[-1]
        assert hook["secret"] not in log and token not in log

        # A redeploy's SIGTERM closes the bot cleanly, webhook server included.
        bot = world.bots[0]
        bot.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(bot.proc.wait, 8)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0, f"the bot did not exit on SIGTERM:\n{bot.log()[-3000:]}"
