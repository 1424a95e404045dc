"""Run the fake standalone: `python -m tests.fakes.discord --port 8765`.

Prints one `KEY=value` line per URL (then `READY`), so a parent process can parse them, and
serves until interrupted. Drive it through the HTTP control API under /_test/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from .models import DEFAULT_APP_ID, DEFAULT_UPLOAD_LIMIT
from .server import FakeDiscord


async def serve(args: argparse.Namespace) -> None:
    fake = FakeDiscord(
        bot_token=args.token,
        app_id=args.app_id,
        upload_limit=args.upload_limit,
        host=args.host,
    )
    await fake.start(args.port)
    print(f"FAKE_DISCORD_BASE_URL={fake.base_url}")
    print(f"FAKE_DISCORD_API_BASE={fake.api_base}")
    print(f"FAKE_DISCORD_GATEWAY_URL={fake.gateway_url}")
    print(f"FAKE_DISCORD_CONTROL_URL={fake.control_url}")
    print(f"FAKE_DISCORD_TOKEN={fake.bot_token}")
    print(f"FAKE_DISCORD_APP_ID={fake.app_id}")
    print("READY", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fake Discord (REST + gateway).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default="test-token", help="the bot token the fake accepts")
    parser.add_argument("--app-id", type=int, default=DEFAULT_APP_ID)
    parser.add_argument("--upload-limit", type=int, default=DEFAULT_UPLOAD_LIMIT)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
