"""Settings: names, defaults, and one clear line (never a secret) for each mistake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, ProviderName, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("DISCORD_", "PIAPI_", "MJ_", "DATABASE_", "JOB_", "LOG_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_and_guild_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "tok")
    monkeypatch.setenv("LEGNEXT_API_KEY", "key")
    monkeypatch.setenv("DISCORD_GUILD_IDS", "123, 456")
    s = load_settings()
    assert s.mj_provider is ProviderName.LEGNEXT  # PiAPI stopped its Midjourney service
    assert s.piapi_base_url == "https://api.piapi.ai"
    assert s.discord_api_base == "https://discord.com/api/v10"
    assert s.discord_guild_ids == [123, 456]
    assert s.database_url.startswith("sqlite:///")
    assert sorted(s.secrets()) == ["key", "tok"]


def test_missing_token_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIAPI_API_KEY", "key")
    with pytest.raises(ConfigError, match="DISCORD_TOKEN"):
        load_settings()


def test_malformed_value_names_the_variable_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "tok")
    monkeypatch.setenv("PIAPI_API_KEY", "key")
    monkeypatch.setenv("DISCORD_GUILD_IDS", "12,secret-looking-value")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "DISCORD_GUILD_IDS" in str(info.value)
    assert "secret-looking-value" not in str(info.value)


def test_provider_key_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "tok")
    with pytest.raises(ConfigError, match="LEGNEXT_API_KEY"):
        load_settings()


def _run_bot(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "PIAPI_", "MJ_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**base, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_run_without_token_exits_2_with_one_line(tmp_path: Path) -> None:
    result = _run_bot({"PIAPI_API_KEY": "pk-very-secret"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "DISCORD_TOKEN" in lines[0]
    assert "pk-very-secret" not in result.stderr + result.stdout


def test_check_validates_and_exits(tmp_path: Path) -> None:
    ok = _run_bot({"DISCORD_TOKEN": "t", "LEGNEXT_API_KEY": "k"}, "--check")
    assert ok.returncode == 0, ok.stderr
    assert "configuration OK" in ok.stdout
    bad = _run_bot(
        {"DISCORD_TOKEN": "t", "PIAPI_API_KEY": "k", "MJ_MAX_CONCURRENT_JOBS": "many"}, "--check"
    )
    assert bad.returncode == 2
    assert "MJ_MAX_CONCURRENT_JOBS" in bad.stderr


def test_log_filter_redacts_secrets_in_messages_arguments_and_tracebacks() -> None:
    import logging

    from bot.logging_setup import REDACTED, RedactSecrets

    redact = RedactSecrets(["tok-123456", "pk-abcdef"])
    try:
        raise RuntimeError("failed with key pk-abcdef")
    except RuntimeError:
        import sys

        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "token %s in %s", ("tok-123456", "url"), sys.exc_info()
        )
    assert redact.filter(record)
    text = record.getMessage() + (record.exc_text or "")
    assert "tok-123456" not in text and "pk-abcdef" not in text
    assert text.count(REDACTED) >= 2  # the message and the exception (and its source line)


def test_every_missing_required_setting_is_named_in_one_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MJ_PROVIDER", "mjproxy")
    monkeypatch.setenv("WEBHOOK_LISTEN", "127.0.0.1:8080")
    monkeypatch.delenv("WEBHOOK_PUBLIC_URL", raising=False)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    for name in ("DISCORD_TOKEN", "MJPROXY_BASE_URL", "WEBHOOK_PUBLIC_URL"):
        assert name in message, message
    # Without the Discord requirement, only the others are named.
    with pytest.raises(ConfigError) as info:
        load_settings(require_discord=False)
    assert "DISCORD_TOKEN" not in str(info.value)
    assert "MJPROXY_BASE_URL" in str(info.value)


def test_every_malformed_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "tok")
    monkeypatch.setenv("PIAPI_API_KEY", "key")
    monkeypatch.setenv("MJ_MAX_CONCURRENT_JOBS", "many-secret-looking")
    monkeypatch.setenv("LOG_LEVEL", "loud")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "MJ_MAX_CONCURRENT_JOBS" in message and "LOG_LEVEL" in message
    assert "many-secret-looking" not in message and "loud" not in message
    assert "\n" not in message


def test_run_without_token_or_key_names_both_and_exits_2() -> None:
    result = _run_bot({"MJ_PROVIDER": "piapi", "WEBHOOK_SECRET": "whsec-very-secret"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "DISCORD_TOKEN" in lines[0] and "PIAPI_API_KEY" in lines[0], lines[0]
    assert "whsec-very-secret" not in result.stderr + result.stdout


def test_provider_base_urls_name_the_configured_providers_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "tok")
    monkeypatch.setenv("MJ_PROVIDER", "mjproxy")
    monkeypatch.setenv("MJPROXY_BASE_URL", "http://10.0.0.5:8080/")
    assert load_settings().provider_base_urls() == ["http://10.0.0.5:8080"]
    monkeypatch.setenv("MJ_PROVIDER", "piapi")
    monkeypatch.setenv("PIAPI_API_KEY", "key")
    assert load_settings().provider_base_urls() == ["https://api.piapi.ai"]


def test_a_pools_accounts_name_their_own_base_urls(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        '[[accounts]]\nname = "home"\nprovider = "mjproxy"\nbase_url = "http://10.0.0.5:8080/"\n'
        '[[accounts]]\nname = "cloud"\nprovider = "legnext"\napi_key = "lg-k"\n',
        encoding="utf-8",
    )
    settings = load_settings(
        require_discord=False, mj_accounts_file=accounts, mj_provider="piapi", piapi_api_key="k"
    )
    assert settings.provider_base_urls() == ["http://10.0.0.5:8080", "https://api.legnext.ai/api"]


def test_push_mode_on_postgresql_needs_one_webhook_secret_for_every_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A callback may land on any process sharing the database: a secret made up at start
    by each would fail every other process's token check, so it must be given."""
    monkeypatch.setenv("DISCORD_TOKEN", "tok")
    monkeypatch.setenv("MJ_PROVIDER", "piapi")
    monkeypatch.setenv("PIAPI_API_KEY", "key")
    monkeypatch.setenv("WEBHOOK_LISTEN", "127.0.0.1:8080")
    monkeypatch.setenv("WEBHOOK_PUBLIC_URL", "https://bot.example")
    monkeypatch.setenv("DATABASE_URL", "postgresql://bot:pw@db/bot")
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "WEBHOOK_SECRET" in str(info.value)
    monkeypatch.setenv("WEBHOOK_SECRET", "shared-by-all-processes")
    assert load_settings().push_mode
    # One process on its embedded SQLite file may still have one made at start.
    monkeypatch.delenv("WEBHOOK_SECRET")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///data/bot.db")
    assert load_settings().webhook_secret is not None
