"""Entry point: settings → logging → run.

python -m bot           run the bot
python -m bot --check   validate the configuration and exit (0 = fine, 2 = not)
"""

from __future__ import annotations

import argparse
import sys

from bot.config import ConfigError, load_settings

EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="validate the configuration and exit")
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
        return 0

    from bot.app import run  # imported late: --check and config errors stay fast

    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
