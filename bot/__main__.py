"""Entry point: settings → logging → run.

python -m bot                    run the bot
python -m bot --check            validate the configuration and exit (0 = fine, 2 = not)
python -m bot --check --online   also log in to Discord and read each provider account
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from bot.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from bot.providers.base import AccountInfo

EXIT_CONFIG = 2
ONLINE_TIMEOUT_S = 15.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="validate the configuration and exit")
    parser.add_argument(
        "--online",
        action="store_true",
        help="with --check: log in to Discord and read every provider account",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check:
        from bot.store import redact_database_url  # a PostgreSQL URL may hold a password

        provider, database = settings.mj_provider.value, redact_database_url(settings.database_url)
        print(f"configuration OK: provider {provider}, database {database}")
        if not args.online:
            return 0
        problems = asyncio.run(online_check(settings))
        for problem in problems:
            print(f"problem: {problem}", file=sys.stderr)
        return EXIT_CONFIG if problems else 0

    from bot.app import run  # imported late: --check and config errors stay fast

    return run(settings)


async def online_check(settings: Settings) -> list[str]:
    """Log in to Discord with the token and read every provider account with its key.
    Prints what worked; returns each problem as a sentence with its fix (never a secret)."""
    problems = [p for p in [await _check_discord(settings)] if p]
    problems += await _check_accounts(settings)
    return problems


async def _check_discord(settings: Settings) -> str | None:
    import aiohttp

    assert settings.discord_token is not None
    url = settings.discord_api_base.rstrip("/") + "/users/@me"
    headers = {"Authorization": f"Bot {settings.discord_token.get_secret_value()}"}
    timeout = aiohttp.ClientTimeout(total=ONLINE_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers=headers) as reply,
        ):
            if reply.status == 401:
                return (
                    "Discord refused DISCORD_TOKEN. Fix: Developer Portal → your application"
                    " → Bot → Reset Token, and put the new token in DISCORD_TOKEN."
                )
            if reply.status >= 400:
                return f"Discord answered HTTP {reply.status} to the login check."
            me = await reply.json()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"Discord is unreachable at {url.split('/users')[0]} ({type(exc).__name__})."
    print(f"Discord: logged in as {me.get('username')} (application id {me.get('id')})")
    return None


async def _check_accounts(settings: Settings) -> list[str]:
    from bot.config import key_fix
    from bot.media import FetchPolicy
    from bot.media_fetcher import MediaFetcher
    from bot.providers.base import AuthError, ProviderError
    from bot.providers.factory import build_pool

    # Nothing is downloaded here; the providers are built as the bot builds them.
    fetcher = MediaFetcher(FetchPolicy(allow_private=settings.media_allow_private_hosts))
    pool = build_pool(settings, fetcher)
    problems = []
    try:
        for account in pool.accounts:
            label = f"account {account.name} ({account.kind})"
            try:
                info = await asyncio.wait_for(account.provider.account(), ONLINE_TIMEOUT_S)
            except AuthError:
                fix = key_fix(account.kind, account.name, accounts_file=bool(settings.accounts))
                problems.append(f"{label}: the image service refused its API key. {fix}")
            except (ProviderError, TimeoutError) as exc:
                words = exc.message if isinstance(exc, ProviderError) else "no answer in time"
                problems.append(f"{label}: the account could not be read: {words}")
            else:
                print(f"{label}: {_account_words(info)}")
    finally:
        for account in pool.accounts:
            await account.provider.aclose()
        await fetcher.aclose()
    return problems


def _account_words(info: AccountInfo) -> str:
    if info.credits is None and info.plan is None and not info.raw:
        # Some services have no account endpoint: say so rather than claim the key works.
        return "this service has no account endpoint; the first job will test the key"
    credit = (
        f"; {info.credits:,} {info.credits_unit or 'credits'} left"
        if info.credits is not None
        else ""
    )
    return f"key accepted{credit}"


if __name__ == "__main__":
    sys.exit(main())
