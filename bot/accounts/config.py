"""MJ_ACCOUNTS_FILE: several provider accounts in one TOML file.

    [[accounts]]
    name = "main"                 # letters, digits, - and _ (it appears in URLs and metrics)
    provider = "legnext"          # piapi | legnext | vtrix | mjproxy
    api_key = "…"                 # mj-proxy: its secret, optional
    base_url = "https://…"        # optional: the provider's default
    max_concurrent_jobs = 6       # optional: MJ_MAX_CONCURRENT_JOBS
    weight = 2                    # optional (1): breaks ties between equally loaded accounts
    modes = ["fast", "relax"]     # optional: the speeds it serves (all)
    auth = "bearer"               # mj-proxy only: "mj-api-secret" (default) or "bearer"

Every problem is reported at once, one line each, naming the account and the key; no line
ever repeats a value from the file (a key may be in it).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from bot.config import MJProxyAuth, ProviderName
from bot.domain import SpeedMode

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# The provider's documented base URL when the file gives none (Settings' defaults).
DEFAULT_BASE_URLS = {
    ProviderName.PIAPI: "https://api.piapi.ai",
    ProviderName.VTRIX: "https://cloud.vtrix.ai",
    ProviderName.LEGNEXT: "https://api.legnext.ai/api",
}


class AccountsFileError(Exception):
    """Everything wrong with the accounts file, one line per problem."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


class AccountConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    provider: ProviderName
    api_key: SecretStr | None = None
    base_url: str | None = None
    max_concurrent_jobs: int | None = Field(default=None, ge=1, le=100_000)
    weight: int = Field(default=1, ge=1, le=1000)
    modes: frozenset[SpeedMode] | None = None
    auth: MJProxyAuth | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError("must be 1-32 letters, digits, '-' or '_'")
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")

    @field_validator("modes")
    @classmethod
    def _modes(cls, value: frozenset[SpeedMode] | None) -> frozenset[SpeedMode] | None:
        if value is not None and not value:
            raise ValueError("must name at least one of relax, fast, turbo")
        return value

    def problems(self) -> list[str]:
        """What the model alone cannot say: keys that depend on the provider."""
        found: list[str] = []
        needs_key = self.provider is not ProviderName.MJPROXY
        if needs_key and (self.api_key is None or not self.api_key.get_secret_value().strip()):
            found.append(f"api_key is required for provider {self.provider.value}")
        if self.provider is ProviderName.MJPROXY and self.base_url is None:
            found.append("base_url is required for provider mjproxy")
        if self.auth is not None and self.provider is not ProviderName.MJPROXY:
            found.append("auth applies to provider mjproxy only")
        return found

    @property
    def resolved_base_url(self) -> str:
        return self.base_url or DEFAULT_BASE_URLS.get(self.provider, "")

    def secret(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key is not None else None


def load_accounts_file(path: Path) -> list[AccountConfig]:
    """The accounts of `path`, or AccountsFileError listing every problem."""
    where = "MJ_ACCOUNTS_FILE"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AccountsFileError([f"{where}: cannot read {path} ({exc.strerror})"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise AccountsFileError([f"{where}: {path} is not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message names the place (line, column), never the text found there.
        raise AccountsFileError([f"{where}: {path} is not valid TOML: {exc}"]) from None
    return parse_accounts(data, where=where)


def parse_accounts(data: dict[str, Any], *, where: str = "MJ_ACCOUNTS_FILE") -> list[AccountConfig]:
    lines = [f"{where}: unknown top-level key {key!r}" for key in data if key != "accounts"]
    entries = data.get("accounts")
    if not isinstance(entries, list) or not entries:
        raise AccountsFileError([*lines, f"{where}: needs at least one [[accounts]] table"])
    accounts: list[AccountConfig] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, 1):
        label = _label(entry, number)
        if not isinstance(entry, dict):
            lines.append(f"{where}: account {label}: must be a table")
            continue
        try:
            account = AccountConfig.model_validate(entry)
        except ValidationError as exc:
            lines += [f"{where}: account {label}: {_error_line(e)}" for e in _errors(exc)]
            continue
        lines += [f"{where}: account {label}: {p}" for p in account.problems()]
        if account.name in seen:
            lines.append(f"{where}: account {label}: name is used by an earlier account")
        seen.add(account.name)
        accounts.append(account)
    if lines:
        raise AccountsFileError(lines)
    return accounts


def _label(entry: Any, number: int) -> str:
    # The name is shown only when it is a valid one: an invalid name could be anything.
    name = entry.get("name") if isinstance(entry, dict) else None
    if isinstance(name, str) and NAME_PATTERN.match(name):
        return f"{name!r} (#{number})"
    return f"#{number}"


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [dict(e) for e in exc.errors(include_input=False, include_url=False)]


def _error_line(error: dict[str, Any]) -> str:
    loc = ".".join(str(part) for part in error.get("loc", ()) if not isinstance(part, int))
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "is not a known key"
    elif error.get("type") == "missing":
        message = "is required"
    return f"{loc or 'entry'} {message}"
