"""Settings from the environment and `.env` (pydantic-settings).

The variable names are a contract: README, `.env.example`, deployment tools and the
tests rely on them. A missing or malformed value stops the bot at start with one line
that names the variable and never echoes its value.
"""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum
from pathlib import Path
from secrets import token_urlsafe
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from bot.accounts.config import AccountConfig

DISCORD_API_BASE = "https://discord.com/api/v10"
DISCORD_GATEWAY_URL = "wss://gateway.discord.gg/"


class ProviderName(StrEnum):
    PIAPI = "piapi"
    VTRIX = "vtrix"
    LEGNEXT = "legnext"
    MJPROXY = "mjproxy"


class MJProxyAuth(StrEnum):
    HEADER = "mj-api-secret"
    BEARER = "bearer"


class ConfigError(Exception):
    """One readable line about what is wrong with the configuration."""


class MissingSettings(ValueError):
    """Required settings that are absent, by variable name (never a value)."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(_missing_message(names))
        self.names = names


def _missing_message(names: list[str]) -> str:
    noun, them = ("setting is", "it") if len(names) == 1 else ("settings are", "them")
    listed = ", ".join(names)
    return f"required {noun} missing: {listed}. Set {them} in the environment or in .env"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # --- Discord -------------------------------------------------------------------------
    discord_token: SecretStr | None = None
    discord_api_base: str = DISCORD_API_BASE
    discord_gateway_url: str = DISCORD_GATEWAY_URL
    discord_guild_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    # Seconds discord.py waits after the last GUILD_CREATE before on_ready (tests: 0.1).
    discord_guild_ready_timeout: float = Field(default=2.0, ge=0, le=60)
    # Shards (issue 17): the total, and the ones this process connects (all when unset).
    # Jobs may run on any process sharing the database; a command reaches the one holding
    # its guild's shard.
    discord_shard_count: int | None = Field(default=None, ge=1)
    discord_shard_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    # Processes on one PostgreSQL each pace Discord's global limit (50/s per bot) at their
    # share of it (bot/discord/global_share.py). Off: each paces as if it were alone.
    discord_global_share: bool = True

    # --- provider ------------------------------------------------------------------------
    # Legnext by default: PiAPI stopped its Midjourney service in 2025 (GoAPI and other
    # services with PiAPI's schema still work with MJ_PROVIDER=piapi).
    mj_provider: ProviderName = ProviderName.LEGNEXT
    # Several accounts, pooled (TOML [[accounts]], see accounts.example.toml). When set, the
    # single-account settings (MJ_PROVIDER and its key) are not used.
    mj_accounts_file: Path | None = None
    _accounts: list[Any] = PrivateAttr(default_factory=list)
    piapi_api_key: SecretStr | None = None
    piapi_base_url: str = "https://api.piapi.ai"
    # "" = the account's default, "public" = pay-as-you-go pool, "private" = host-your-account
    piapi_service_mode: str = ""
    vtrix_api_key: SecretStr | None = None
    vtrix_base_url: str = "https://cloud.vtrix.ai"
    legnext_api_key: SecretStr | None = None
    legnext_base_url: str = "https://api.legnext.ai/api"
    # A self-hosted midjourney-proxy or an aggregator speaking its protocol.
    mjproxy_base_url: str | None = None
    mjproxy_api_secret: SecretStr | None = None
    # "mj-api-secret" header (self-hosted) or "bearer" (Authorization: Bearer, aggregators)
    mjproxy_auth: MJProxyAuth = MJProxyAuth.HEADER

    # --- engine --------------------------------------------------------------------------
    # Jobs the provider account may run at once; the rest wait, fairly, in the bot.
    mj_max_concurrent_jobs: int = Field(default=3, ge=1, le=100_000)
    # A job whose visible progress has not changed for this long is ended as timed out.
    job_stall_timeout_s: float = Field(default=600.0, gt=0)
    # No job runs longer than this, progress or not.
    job_max_duration_s: float = Field(default=3600.0, gt=0)
    # A submission the service keeps refusing (unreachable, 5xx, 429) is given up after this.
    mj_submit_retry_window_s: float = Field(default=120.0, gt=0, le=3600)
    # The provider refuses follow-ups on jobs older than this (PiAPI: about 3 hours).
    follow_up_window_s: float = Field(default=3 * 3600.0, gt=0)
    provider_timeout_s: float = Field(default=20.0, gt=0)
    # Longest prompt accepted (the provider's own limit applies too, whichever is lower).
    mj_max_prompt_length: int = Field(default=6000, ge=1, le=8192)
    # First poll of a job after submission; the interval then adapts to the provider.
    mj_poll_interval_s: float = Field(default=3.0, gt=0, le=60)
    # Polls of a job that is not changing back off up to this interval.
    mj_poll_max_interval_s: float = Field(default=15.0, gt=0, le=300)

    # --- Discord presentation ------------------------------------------------------------
    # At most one edit per job message per this many seconds (the final state always goes).
    discord_edit_interval_s: float = Field(default=1.5, ge=0, le=60)
    # Fetch result images from private/loopback addresses. Only for local test set-ups:
    # in production it would let a provider reply point the bot at the host's network.
    media_allow_private_hosts: bool = False

    # --- push mode and metrics -----------------------------------------------------------
    # host:port the webhook receiver listens on; empty = push mode off (polling only).
    webhook_listen: str = ""
    # The URL at which the provider reaches that receiver (e.g. https://bot.example.com);
    # required with WEBHOOK_LISTEN. Callbacks go to <this>/webhook/<provider>/<token>.
    webhook_public_url: str | None = None
    # Secret PiAPI echoes in x-webhook-secret, and the key the path tokens derive from.
    # Empty = a random one is made at every start. Never logged.
    webhook_secret: SecretStr | None = None
    # host:port serving /metrics and /healthz; empty = off. May equal WEBHOOK_LISTEN.
    metrics_listen: str = ""
    # In push mode each job is still polled this often, as a safety net for lost webhooks.
    push_safety_poll_s: float = Field(default=60.0, gt=0, le=3600)

    # --- storage and logs ----------------------------------------------------------------
    database_url: str = "sqlite:///data/bot.db"
    log_level: str = "INFO"

    @field_validator("discord_shard_ids", mode="before")
    @classmethod
    def _split_shard_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            if not all(p.isdigit() for p in parts):
                raise ValueError("must be a comma-separated list of shard numbers (0, 1, ...)")
            return [int(p) for p in parts]
        return value

    @model_validator(mode="after")
    def _shards_fit(self) -> Settings:
        if self.discord_shard_ids and self.discord_shard_count is None:
            raise ValueError("DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT (the total)")
        count = self.discord_shard_count
        if count is not None and any(i >= count for i in self.discord_shard_ids):
            raise ValueError(f"DISCORD_SHARD_IDS must be below DISCORD_SHARD_COUNT ({count})")
        return self

    @field_validator("discord_guild_ids", mode="before")
    @classmethod
    def _split_guild_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            for part in parts:
                if not part.isdigit():
                    raise ValueError("must be a comma-separated list of numeric guild ids")
            return [int(p) for p in parts]
        return value

    @field_validator(
        "discord_api_base",
        "discord_gateway_url",
        "piapi_base_url",
        "vtrix_base_url",
        "legnext_base_url",
        "mjproxy_base_url",
        "webhook_public_url",
    )
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError("must be an absolute http(s) or ws(s) URL")
        return value.rstrip("/") if value.startswith("http") else value

    @field_validator("webhook_listen", "metrics_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        value = value.strip()
        if value:
            parse_listen(value)  # raises ValueError with a readable message
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @model_validator(mode="after")
    def _required_present(self) -> Settings:
        missing = self.missing_required()
        # DISCORD_TOKEN alone is load_settings' call (--check-like uses may go without);
        # anything else missing is named together with it, in one message.
        if [name for name in missing if not name.startswith("DISCORD_TOKEN")]:
            raise MissingSettings(missing)
        if self.mj_accounts_file is not None:
            # Imported here: bot.accounts.config reads this module's enums. Its error is
            # one line per problem, each naming the account and the key.
            from bot.accounts.config import AccountsFileError, load_accounts_file

            try:
                self._accounts = load_accounts_file(self.mj_accounts_file)
            except AccountsFileError as exc:
                raise ValueError(str(exc)) from None
        if self.webhook_listen and not _present(self.webhook_secret):
            # Made here, once, so that every part of the bot (and the log filter) sees it.
            self.webhook_secret = SecretStr(token_urlsafe(32))
        return self

    def missing_required(self) -> list[str]:
        """Every required setting that is absent, each with why it is required."""
        missing = [] if _present(self.discord_token) else ["DISCORD_TOKEN"]
        keys = {
            ProviderName.PIAPI: ("PIAPI_API_KEY", self.piapi_api_key),
            ProviderName.VTRIX: ("VTRIX_API_KEY", self.vtrix_api_key),
            ProviderName.LEGNEXT: ("LEGNEXT_API_KEY", self.legnext_api_key),
        }
        provider = self.mj_provider.value
        single = self.mj_accounts_file is None  # the accounts file names its own keys
        if single and self.mj_provider in keys and not _present(keys[self.mj_provider][1]):
            missing.append(f"{keys[self.mj_provider][0]} (with MJ_PROVIDER={provider})")
        if single and self.mj_provider is ProviderName.MJPROXY and not self.mjproxy_base_url:
            # The secret stays optional: a self-hosted proxy may run without one.
            missing.append("MJPROXY_BASE_URL (with MJ_PROVIDER=mjproxy)")
        if self.webhook_listen and not self.webhook_public_url:
            missing.append("WEBHOOK_PUBLIC_URL (with WEBHOOK_LISTEN)")
        if self.webhook_listen and not _present(self.webhook_secret) and self.shared_database:
            # A post may land on any process sharing the database: one made up at start
            # by each would make every other process's callbacks fail their token check.
            missing.append(
                "WEBHOOK_SECRET (with WEBHOOK_LISTEN on PostgreSQL: one for all processes)"
            )
        return missing

    @property
    def shared_database(self) -> bool:
        """A database several processes may share (PostgreSQL), not an embedded file."""
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def push_mode(self) -> bool:
        return bool(self.webhook_listen)

    @property
    def accounts(self) -> list[AccountConfig]:
        """The accounts of MJ_ACCOUNTS_FILE (validated at start); [] without the file."""
        return list(self._accounts)

    def webhook_token(self, provider: str) -> str:
        """The secret path token that authenticates callbacks for `provider`."""
        assert self.webhook_secret is not None, "push mode is off"
        key = self.webhook_secret.get_secret_value().encode()
        digest = hmac.new(key, f"webhook-path:{provider}".encode(), hashlib.sha256)
        return digest.hexdigest()[:40]

    def webhook_url(self, provider: str) -> str | None:
        """Where `provider` posts its callbacks; None when push mode is off."""
        if not self.push_mode or not self.webhook_public_url:
            return None
        return f"{self.webhook_public_url}/webhook/{provider}/{self.webhook_token(provider)}"

    def secrets(self) -> list[str]:
        """Every secret value configured, so that log filters can redact them."""
        values = [
            self.discord_token,
            self.piapi_api_key,
            self.vtrix_api_key,
            self.legnext_api_key,
            self.mjproxy_api_secret,
            self.webhook_secret,
        ]
        values += [account.api_key for account in self._accounts]
        found = [v.get_secret_value() for v in values if _present(v)]  # type: ignore[union-attr]
        if self.push_mode and _present(self.webhook_secret):
            found.append(self.webhook_token(self.mj_provider.value))
            # Each accounts-file provider's callback path token too.
            kinds = sorted({account.provider.value for account in self._accounts})
            found += [self.webhook_token(kind) for kind in kinds]
        return found + _url_passwords(self.database_url)

    def provider_base_urls(self) -> list[str]:
        """The configured provider's base URL(s): its own images are fetched from there
        even at a private address (bot/media.py FetchPolicy.private_origins)."""
        if self._accounts:  # a pool: each account names its own (MJ_PROVIDER is not used)
            return [a.resolved_base_url for a in self._accounts if a.resolved_base_url]
        urls = {
            ProviderName.PIAPI: self.piapi_base_url,
            ProviderName.VTRIX: self.vtrix_base_url,
            ProviderName.LEGNEXT: self.legnext_base_url,
            ProviderName.MJPROXY: self.mjproxy_base_url,
        }
        url = urls.get(self.mj_provider)
        return [url] if url else []


def parse_listen(value: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::1]:8080`) -> (host, port); ValueError when malformed."""
    host, sep, port_text = value.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError("must be host:port, e.g. 0.0.0.0:8080")
    return host, int(port_text)


def _url_passwords(url: str) -> list[str]:
    """A database URL's password (PostgreSQL), as written and decoded, for the log filters."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return []
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    written = [userinfo.partition(":")[2]]
    written += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k == "password"]
    return sorted({form for w in written for form in (w, unquote(w)) if form})


def _present(secret: SecretStr | None) -> bool:
    return secret is not None and bool(secret.get_secret_value().strip())


def load_settings(*, require_discord: bool = True, **overrides: object) -> Settings:
    """Read the settings, turning any problem into one ConfigError line."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        missing = _missing_in(exc)
        if missing is None:
            raise ConfigError(_describe(exc)) from None
        if not require_discord:
            missing = [name for name in missing if name != "DISCORD_TOKEN"]
        raise ConfigError(_missing_message(missing)) from None
    if require_discord and not _present(settings.discord_token):
        raise ConfigError(_missing_message(["DISCORD_TOKEN"]))
    return settings


# Where each kind of account's key is set, for messages that say how to fix a refused one.
KEY_SETTINGS = {
    ProviderName.PIAPI.value: "PIAPI_API_KEY",
    ProviderName.VTRIX.value: "VTRIX_API_KEY",
    ProviderName.LEGNEXT.value: "LEGNEXT_API_KEY",
    ProviderName.MJPROXY.value: "MJPROXY_API_SECRET",
}


def key_fix(kind: str, account: str, *, accounts_file: bool) -> str:
    """How to fix a key the service refused, in one sentence (names, never the value)."""
    where = (
        f"the api_key of account {account!r} in MJ_ACCOUNTS_FILE"
        if accounts_file
        else KEY_SETTINGS.get(kind, "the provider's key setting")
    )
    return (
        f"Fix: put a valid key in {where} and restart;"
        " `python -m bot --check --online` tests it without starting the bot."
    )


def _missing_in(exc: ValidationError) -> list[str] | None:
    """The names a MissingSettings carried, when that was the (only) problem."""
    for error in exc.errors(include_input=False, include_url=False):
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, MissingSettings):
            return cause.names
    return None


def _describe(exc: ValidationError) -> str:
    # Built from the field names and pydantic's messages only: the input values (which
    # may be secrets) are deliberately left out. Every problem is named, on one line.
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in error.get("loc", ()) if part != "__root__"]
        message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
        parts.append(f"{loc[0].upper()} {message}" if loc else message)
    return "; ".join(dict.fromkeys(parts))
