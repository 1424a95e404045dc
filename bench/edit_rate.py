"""How many Discord edits a job costs, and how fast edits hit one message.

Runs the real bot process against the fake Discord and a fake PiAPI on the real clock
whose progress moves every 0.5 s (faster than the bot's edit interval), so coalescing is
what keeps the edit rate down. Prints one line per job and a summary.

    .venv/bin/python -m bench.edit_rate [--jobs 3] [--edit-interval 1.5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from itertools import pairwise
from pathlib import Path

from tests.fakes.discord import DEFAULT_GUILD_ID, FakeDiscord
from tests.fakes.piapi import FakePiAPI, Profile

ROOT = Path(__file__).resolve().parents[1]
EDIT_PATHS = (r"^/webhooks/\d+/[^/]+/messages/@original$", r"^/channels/\d+/messages/\d+$")


async def main(jobs: int, edit_interval: float) -> None:
    async with FakeDiscord(bot_token="bench-token") as discord, FakePiAPI(api_key="k") as piapi:
        piapi.default_profile = Profile(pending_s=1, processing_s=12, progress_step_s=0.5)
        tmp = Path(tempfile.mkdtemp())
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DISCORD_TOKEN": "bench-token",
            "DISCORD_API_BASE": discord.api_base,
            "DISCORD_GATEWAY_URL": discord.gateway_url,
            "DISCORD_GUILD_IDS": str(DEFAULT_GUILD_ID),
            "DISCORD_GUILD_READY_TIMEOUT": "0.1",
            "DISCORD_EDIT_INTERVAL_S": str(edit_interval),
            "PIAPI_API_KEY": "k",
            "PIAPI_BASE_URL": piapi.base_url,
            "MJ_POLL_INTERVAL_S": "0.25",
            "MJ_POLL_MAX_INTERVAL_S": "0.5",
            "MEDIA_ALLOW_PRIVATE_HOSTS": "true",
            "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
            "LOG_LEVEL": "WARNING",
        }
        bot = subprocess.Popen([sys.executable, "-m", "bot"], env=env, cwd=tmp)  # noqa: ASYNC220
        try:
            await discord.wait_for(
                lambda: discord.find_command("imagine", DEFAULT_GUILD_ID), timeout=30
            )
            await discord.wait_ready()
            records = [
                await discord.slash("imagine", {"prompt": f"bench {n}"}) for n in range(jobs)
            ]
            await discord.wait_for(
                lambda: all(
                    (m := discord.messages.get(r.original_message_id or 0)) and m.attachments
                    for r in records
                ),
                timeout=120,
            )
            await asyncio.sleep(1)
            worst_gap = float("inf")
            for record in records:
                mid = record.original_message_id
                times = sorted(
                    r.at
                    for path in EDIT_PATHS
                    for r in discord.requests_matching("PATCH", path)
                    if r.status == 200
                    and (
                        (path.startswith("^/webhooks") and r.path.split("/")[3] == record.token)
                        or r.path.endswith(f"/{mid}")
                    )
                )
                gaps = [b - a for a, b in pairwise(times)]
                worst_gap = min([worst_gap, *gaps])
                states = int(12 / 0.5) + 2  # pending, each 0.5 s progress step, completed
                print(
                    f"job message {mid}: {len(times)} edits for {states} provider states, "
                    f"smallest gap {min(gaps):.2f}s"
                )
            print(
                f"edit interval {edit_interval}s; smallest gap between two edits of one "
                f"message: {worst_gap:.2f}s (max rate {1 / worst_gap:.2f} edits/s); "
                f"Discord 429s sent: {discord.count_429}"
            )
        finally:
            bot.send_signal(signal.SIGTERM)
            bot.wait(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--edit-interval", type=float, default=1.5)
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.edit_interval))
