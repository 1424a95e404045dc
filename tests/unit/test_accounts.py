"""MJ_ACCOUNTS_FILE validation, the per-provider table of answers that set an account
aside (read through each provider's own error mapping), and the pool's routing rules."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bot.accounts import Account, AccountPool, AsideKind, PoolSettings, account_fault
from bot.accounts.config import AccountsFileError, load_accounts_file
from bot.config import ConfigError, ProviderName, load_settings
from bot.domain import Operation, OperationKind, SpeedMode
from bot.providers import legnext, mjproxy, piapi, vtrix
from bot.providers.base import (
    AuthError,
    Capabilities,
    ModeratedError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
)

GOOD = """
[[accounts]]
name = "main"
provider = "legnext"
api_key = "lg-secret-main"
max_concurrent_jobs = 6
weight = 2

[[accounts]]
name = "proxy"
provider = "mjproxy"
base_url = "https://mj.example.com/"
auth = "bearer"
modes = ["relax"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "accounts.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_reads_with_defaults(tmp_path: Path) -> None:
    main, proxy = load_accounts_file(write(tmp_path, GOOD))
    assert (main.name, main.provider, main.max_concurrent_jobs, main.weight) == (
        "main",
        ProviderName.LEGNEXT,
        6,
        2,
    )
    assert main.resolved_base_url == "https://api.legnext.ai/api"
    assert main.secret() == "lg-secret-main"
    assert proxy.api_key is None  # optional for mj-proxy
    assert proxy.resolved_base_url == "https://mj.example.com"
    assert proxy.modes == frozenset({SpeedMode.RELAX})


def test_every_problem_is_one_line_naming_account_and_key_and_no_value(tmp_path: Path) -> None:
    text = """
[[accounts]]
name = "one"
provider = "legnext"
max_concurrent_jobs = "sk-looks-secret-1"
colour = "blue"

[[accounts]]
name = "bad name sk-looks-secret-2"
provider = "piapi"
api_key = "pk-real-secret"

[[accounts]]
name = "three"
provider = "mjproxy"
auth = "bearer"

[[accounts]]
name = "one"
provider = "openai"
api_key = "sk-looks-secret-3"
"""
    with pytest.raises(AccountsFileError) as info:
        load_accounts_file(write(tmp_path, text))
    lines = info.value.lines
    assert lines == [
        "MJ_ACCOUNTS_FILE: account 'one' (#1): max_concurrent_jobs Input should be a valid "
        "integer, unable to parse string as an integer",
        "MJ_ACCOUNTS_FILE: account 'one' (#1): colour is not a known key",
        "MJ_ACCOUNTS_FILE: account #2: name must be 1-32 letters, digits, '-' or '_'",
        "MJ_ACCOUNTS_FILE: account 'three' (#3): base_url is required for provider mjproxy",
        "MJ_ACCOUNTS_FILE: account 'one' (#4): provider Input should be 'piapi', 'vtrix', "
        "'legnext' or 'mjproxy'",
    ]
    joined = str(info.value)
    for secret in ("sk-looks-secret-1", "sk-looks-secret-2", "sk-looks-secret-3", "pk-real"):
        assert secret not in joined


def test_missing_key_duplicate_name_and_bad_toml(tmp_path: Path) -> None:
    text = '[[accounts]]\nname = "a"\nprovider = "vtrix"\n[[accounts]]\nname = "a"\n'
    text += 'provider = "legnext"\napi_key = "x"\n'
    with pytest.raises(AccountsFileError) as info:
        load_accounts_file(write(tmp_path, text))
    assert info.value.lines == [
        "MJ_ACCOUNTS_FILE: account 'a' (#1): api_key is required for provider vtrix",
        "MJ_ACCOUNTS_FILE: account 'a' (#2): name is used by an earlier account",
    ]
    with pytest.raises(AccountsFileError, match="not valid TOML"):
        load_accounts_file(write(tmp_path, 'api_key = "sk-unterminated\n'))
    with pytest.raises(AccountsFileError, match=r"at least one \[\[accounts\]\]"):
        load_accounts_file(write(tmp_path, "# nothing\n"))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("DISCORD_", "PIAPI_", "MJ_", "LEGNEXT_", "VTRIX_", "MJPROXY_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.usefixtures("clean_env")
def test_settings_read_the_file_instead_of_the_single_account_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "tok")
    monkeypatch.setenv("MJ_ACCOUNTS_FILE", str(write(tmp_path, GOOD)))
    settings = load_settings()  # no LEGNEXT_API_KEY needed: the file names its keys
    assert [a.name for a in settings.accounts] == ["main", "proxy"]
    assert "lg-secret-main" in settings.secrets()  # redacted from every log line

    bad = write(tmp_path, '[[accounts]]\nname = "x"\nprovider = "piapi"\n')
    monkeypatch.setenv("MJ_ACCOUNTS_FILE", str(bad))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "account 'x' (#1): api_key is required for provider piapi" in str(info.value)


@pytest.mark.usefixtures("clean_env")
def test_without_the_file_legnext_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "tok")
    with pytest.raises(ConfigError, match="LEGNEXT_API_KEY"):
        load_settings()
    monkeypatch.setenv("LEGNEXT_API_KEY", "lg")
    settings = load_settings()
    assert settings.mj_provider is ProviderName.LEGNEXT and settings.accounts == []


# --- which answers set an account aside (PROVIDERS.md §10.1) ------------------------------


def _http(classify: Any, status: int, body: Any) -> ProviderError:
    """What the provider's HTTP client raises for this answer (its hook, then the generic
    mapping for 401/403/429/5xx, as ProviderHTTP does)."""
    error = classify(status, body, str(body))
    if error is not None:
        return error  # type: ignore[no-any-return]
    if status in (401, 403):
        return AuthError(http_status=status)
    if status == 429:
        return RateLimitedError(http_status=status)
    return ProviderUnavailableError(http_status=status)


FAILURES = [
    # (provider, answer, verdict)
    ("legnext", _http(legnext.classify_http_error, 401, {"message": "Invalid API key"}), "auth"),
    (
        "legnext",
        _http(legnext.classify_http_error, 402, {"code": 402, "message": "insufficient balance"}),
        "balance",
    ),
    (
        "legnext",
        _http(legnext.classify_http_error, 403, {"code": 403, "message": "account restricted"}),
        "banned",
    ),
    ("vtrix", _http(vtrix.classify_http_error, 401, {"message": "invalid token"}), "auth"),
    (
        "vtrix",
        _http(vtrix.classify_http_error, 403, {"code": 403, "message": "insufficient balance"}),
        "balance",
    ),
    ("vtrix", _http(vtrix.classify_http_error, 403, {"message": "permission denied"}), "auth"),
    ("piapi", _http(piapi.classify_http_error, 401, {"message": "Invalid API key"}), "auth"),
    (
        "piapi",
        _http(piapi.classify_http_error, 400, {"code": 400, "message": "insufficient credits"}),
        "balance",
    ),
    ("mjproxy", _http(mjproxy.classify_http_error, 401, "unauthorized"), "auth"),
    (
        "mjproxy",
        mjproxy.error_for_code(3, "无可用的账号实例", {}),
        "busy",
    ),
    (
        "mjproxy",
        mjproxy.error_for_code(9, "无可用的账号实例", {}),
        "busy",
    ),
]
NOT_THE_ACCOUNT = [
    ("mjproxy", mjproxy.error_for_code(24, "可能包含敏感词", {"bannedWord": "x"})),
    ("mjproxy", mjproxy.error_for_code(4, "prompt 不能为空", {})),
    ("legnext", _http(legnext.classify_http_error, 400, {"message": "Banned prompt detected"})),
    ("piapi", _http(piapi.classify_http_error, 400, {"message": "[Invalid parameter] --ar"})),
    ("legnext", _http(legnext.classify_http_error, 429, {"message": "concurrent limit"})),
    ("legnext", _http(legnext.classify_http_error, 503, {"message": "unavailable"})),
]


@pytest.mark.parametrize(("provider", "error", "kind"), FAILURES)
def test_account_failures_per_provider(provider: str, error: ProviderError, kind: str) -> None:
    verdict = account_fault(provider, error)
    assert verdict is not None and verdict.kind is AsideKind(kind)


@pytest.mark.parametrize(("provider", "error"), NOT_THE_ACCOUNT)
def test_the_jobs_own_failures_and_single_429s_set_nothing_aside(
    provider: str, error: ProviderError
) -> None:
    assert account_fault(provider, error) is None


class _Stub:
    """Only its name and capabilities are read by routing (no request is made)."""

    def __init__(self, name: str, *kinds: OperationKind) -> None:
        self.name = name
        self.capabilities = Capabilities(operations=frozenset(kinds))

    async def submit(self, *a: Any, **k: Any) -> Any:
        raise AssertionError("routing makes no request")

    fetch = cancel = account = submit

    async def aclose(self) -> None:
        pass


IMAGINE_FAST = Operation(OperationKind.IMAGINE, prompt="x", mode=SpeedMode.FAST)


def _pool(**settings: Any) -> AccountPool:
    return AccountPool(
        [
            Account("fast", _Stub("legnext", OperationKind.IMAGINE), limit=2),  # type: ignore[arg-type]
            Account(
                "relax",
                _Stub("mjproxy", OperationKind.IMAGINE, OperationKind.BLEND),  # type: ignore[arg-type]
                limit=2,
                modes=frozenset({SpeedMode.RELAX}),
            ),
        ],
        settings=PoolSettings(**settings),
    )


def test_routing_honours_the_speeds_an_account_serves() -> None:
    pool = _pool()
    assert pool.choose(IMAGINE_FAST).name == "fast"  # type: ignore[union-attr]
    relax = Operation(OperationKind.IMAGINE, prompt="x", mode=SpeedMode.RELAX)
    pool.acquire("j1", pool.get("fast"))  # type: ignore[arg-type]
    assert pool.choose(relax).name == "relax"  # type: ignore[union-attr]
    pool.acquire("j2", pool.get("fast"))  # type: ignore[arg-type]
    assert pool.choose(IMAGINE_FAST) is None  # the relax-only account does not take fast
    pool.release("j1")
    assert pool.choose(IMAGINE_FAST).name == "fast"  # type: ignore[union-attr]
    assert pool.capabilities.supports(OperationKind.BLEND)  # union of the accounts


def test_a_storm_needs_enough_failures_within_the_window() -> None:
    pool = _pool(storm_errors=3, storm_window_s=10)
    fast = pool.get("fast")
    assert fast is not None
    for t in (0.0, 5.0, 16.0, 20.0):  # never three within 10 s
        assert pool.record_failure(fast, ProviderUnavailableError(), t) is None
    assert pool.record_failure(fast, RateLimitedError(), 24.0) is not None  # 16, 20, 24
    assert fast.aside is not None and fast.aside.kind is AsideKind.STORM
    assert fast.aside.until == 24.0 + pool.settings.cooldown_s


def test_when_every_account_that_could_waits_for_an_admin_new_jobs_are_refused() -> None:
    pool = _pool()
    fast, relax = pool.get("fast"), pool.get("relax")
    assert fast is not None and relax is not None
    pool.record_failure(fast, AuthError(http_status=401), 1.0)
    assert pool.refusal(IMAGINE_FAST) is not None  # only "fast" serves fast imagines
    assert "fast: the service refused its API key" in (pool.refusal(IMAGINE_FAST) or "")
    relax_op = Operation(OperationKind.IMAGINE, prompt="x", mode=SpeedMode.RELAX)
    assert pool.refusal(relax_op) is None
    assert fast.aside is not None and fast.aside.until is None  # no probe: an admin decides
    pool.restore("fast")
    assert pool.refusal(IMAGINE_FAST) is None


def test_moderation_never_sets_an_account_aside() -> None:
    pool = _pool(storm_errors=1)
    fast = pool.get("fast")
    assert fast is not None
    assert pool.record_failure(fast, ModeratedError(), 0.0) is None and fast.aside is None
