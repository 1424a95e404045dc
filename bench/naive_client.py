"""The naive reference for the load benchmark: what the providers' sample code does.

One asyncio task per job: post a message in the channel, submit the job, then every
`--poll` seconds fetch the task and edit the message with what it says, whether or not
anything changed. The finished grid is downloaded and uploaded as an attachment, like the
real bot does, so both spend the same work on results. Plain httpx with the bot token; a
429 on a progress edit is ignored (the next poll edits again), while the message post and
the final edit wait `retry_after` and try again, so that the comparison is about polling
and editing, not about giving up.

Started by bench.load in its own process: it prints "ready", waits for a line on stdin,
runs every job, prints one JSON summary line and exits.

    python -m bench.naive_client --discord-api URL --token T --piapi URL --piapi-key K \
        --jobs 2000 --ramp 15 --channels 1,2 [--poll 2] [--deadline 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import httpx

from bench.workload import prompt_for


class NaiveClient:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.discord = httpx.AsyncClient(
            base_url=args.discord_api,
            headers={"Authorization": f"Bot {args.token}"},
            timeout=httpx.Timeout(60.0),
        )
        self.piapi = httpx.AsyncClient(
            base_url=args.piapi, headers={"x-api-key": args.piapi_key}, timeout=60.0
        )
        self.channels = [int(c) for c in args.channels.split(",")]
        self.counts = {"polls": 0, "edits": 0, "edit_429": 0, "errors": 0, "final": 0}

    async def close(self) -> None:
        await self.discord.aclose()
        await self.piapi.aclose()

    async def run(self) -> dict[str, int]:
        start = time.monotonic()
        self.deadline = start + self.args.deadline
        await asyncio.gather(*(self.job(n, start) for n in range(self.args.jobs)))
        return self.counts

    async def job(self, n: int, start: float) -> None:
        await asyncio.sleep(
            max(0.0, start + n * self.args.ramp / self.args.jobs - time.monotonic())
        )
        prompt = prompt_for(n)
        channel = self.channels[n % len(self.channels)]
        try:
            message = await self.discord_call(
                "POST",
                f"/channels/{channel}/messages",
                json={"content": f"**{prompt}** (Waiting to start)"},
                retry=True,
            )
            if message is None:
                return
            message_id = message["id"]
            created = await self.piapi.post(
                "/api/v1/task",
                json={
                    "model": "midjourney",
                    "task_type": "imagine",
                    "input": {"prompt": prompt, "process_mode": "fast"},
                },
            )
            task_id = created.json()["data"]["task_id"]
            path = f"/channels/{channel}/messages/{message_id}"
            while time.monotonic() < self.deadline:
                await asyncio.sleep(self.args.poll)
                try:
                    reply = await self.piapi.get(f"/api/v1/task/{task_id}")
                    task = reply.json()["data"]
                except (httpx.HTTPError, ValueError, KeyError, TypeError):
                    self.counts["errors"] += 1
                    continue
                self.counts["polls"] += 1
                status = task["status"]
                if status in ("completed", "failed"):
                    await self.finish(path, prompt, task)
                    return
                progress = task["output"].get("progress") or 0
                previews = task["output"].get("intermediate_image_urls") or []
                body: dict[str, Any] = {
                    "content": f"**{prompt}** - {progress}% (fast)"
                    if status == "processing"
                    else f"**{prompt}** (Waiting to start)"
                }
                if previews:
                    body["embeds"] = [{"image": {"url": previews[-1]}}]
                await self.discord_call("PATCH", path, json=body, retry=False)
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            self.counts["errors"] += 1

    async def finish(self, path: str, prompt: str, task: dict[str, Any]) -> None:
        url = task["output"].get("image_url")
        if task["status"] != "completed" or not url:
            await self.discord_call(
                "PATCH", path, json={"content": f"**{prompt}** failed", "embeds": []}, retry=True
            )
            return
        image = (await self.piapi.get(url)).content
        payload = {
            "content": f"**{prompt}** (fast)",
            "embeds": [],
            "attachments": [{"id": 0, "filename": "grid.png"}],
        }
        files = {"files[0]": ("grid.png", image, "image/png")}
        if await self.discord_call("PATCH", path, payload_json=payload, files=files, retry=True):
            self.counts["final"] += 1

    async def discord_call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        payload_json: Any = None,
        files: Any = None,
        retry: bool,
    ) -> Any:
        while time.monotonic() < self.deadline:
            if payload_json is not None:
                reply = await self.discord.request(
                    method, path, data={"payload_json": _dumps(payload_json)}, files=files
                )
            else:
                reply = await self.discord.request(method, path, json=json)
            if method == "PATCH":
                self.counts["edits"] += 1
            if reply.status_code == 429:
                self.counts["edit_429"] += 1
                if not retry:
                    return None
                await asyncio.sleep(float(reply.json().get("retry_after", 1.0)))
                continue
            if reply.status_code >= 400:
                self.counts["errors"] += 1
                return None
            return reply.json() if reply.content else {}
        return None


def _dumps(value: Any) -> str:
    return json.dumps(value)


async def _main(args: argparse.Namespace) -> None:
    client = NaiveClient(args)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    try:
        counts = await client.run()
    finally:
        await client.close()
    print(json.dumps(counts), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--discord-api", required=True, help="e.g. http://127.0.0.1:5000/api/v10")
    parser.add_argument("--token", required=True)
    parser.add_argument("--piapi", required=True)
    parser.add_argument("--piapi-key", required=True)
    parser.add_argument("--channels", required=True, help="comma-separated channel ids")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--ramp", type=float, default=15.0, help="seconds to start all jobs")
    parser.add_argument("--poll", type=float, default=2.0)
    parser.add_argument("--deadline", type=float, default=300.0, help="give up after (s)")
    asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
