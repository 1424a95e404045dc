"""Which provider answers mean "this account cannot serve now" (PROVIDERS.md §10.1).

The providers already turn their wire errors into neutral `ProviderError`s; this module
reads those per provider and says whether the account, not the job, is at fault:

- auth (back only when an admin says so): HTTP 401 everywhere; Vtrix 403 without credit
  words (permission); mj-proxy 401/403 (its secret).
- balance (back when the balance reads positive, or an admin says so): Legnext HTTP 402
  "insufficient balance"; Vtrix 403 "insufficient balance"; PiAPI credit/balance/quota words.
- banned (long cool-down, then probed): Legnext 403 "account restricted" (moderation,
  daily error cap).
- busy (cool-down): mj-proxy code 3/9 "无可用的账号实例" (no available account instance).
- storm (cool-down): 5 answers of 429 / 5xx / garbage within a minute, any provider.

Moderation, invalid input and unknown jobs are the job's fault and never set an account
aside.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.providers.base import (
    AuthError,
    InsufficientCreditError,
    MalformedReplyError,
    NotFoundError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    SubmitOutcomeUnknownError,
)

# midjourney-proxy's "no available account instance" (code 3 or 9): every Midjourney
# account behind that proxy is disabled or busy.
NO_ACCOUNT_TEXTS = ("无可用的账号实例", "no available account")
# Legnext's 403 for a restricted account (moderation, daily error cap): not a bad key.
RESTRICTED_WORDS = ("restrict", "suspend", "ban", "blocked", "moderation", "cap")


class AsideKind(StrEnum):
    AUTH = "auth"  # the key is refused: back only when an admin says so
    BALANCE = "balance"  # out of credit: back when the balance reads positive (or an admin)
    BANNED = "banned"  # restricted or suspended: probed again after a long cool-down
    BUSY = "busy"  # no capacity behind the key: probed again after a short cool-down
    STORM = "storm"  # a run of 5xx / 429: probed again after a short cool-down

    @property
    def waits_for_admin(self) -> bool:
        return self in (AsideKind.AUTH, AsideKind.BALANCE)


REASONS = {
    AsideKind.AUTH: "the service refused its API key",
    AsideKind.BALANCE: "it is out of credit",
    AsideKind.BANNED: "the service restricted or suspended it",
    AsideKind.BUSY: "the service has no capacity for it right now",
    AsideKind.STORM: "the service kept failing or rate limiting it",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: AsideKind
    provider_text: str | None = None


def account_fault(provider: str, exc: ProviderError) -> Verdict | None:
    """The account-level failure `exc` reveals, or None when it is the job's own."""
    text = exc.provider_text or ""
    lowered = text.lower()
    if isinstance(exc, InsufficientCreditError):
        return Verdict(AsideKind.BALANCE, exc.provider_text)
    if isinstance(exc, AuthError):
        if (
            provider == "legnext"
            and exc.http_status == 403
            and any(w in lowered for w in RESTRICTED_WORDS)
        ):
            return Verdict(AsideKind.BANNED, exc.provider_text)
        return Verdict(AsideKind.AUTH, exc.provider_text)
    if provider == "mjproxy" and any(t in lowered for t in NO_ACCOUNT_TEXTS):
        return Verdict(AsideKind.BUSY, exc.provider_text)
    return None


def is_storm_error(exc: ProviderError) -> bool:
    """Counts toward a storm: the service answered, badly (429, 5xx, garbage). An
    unanswered submission does not count: its outcome is unknown, not bad."""
    if isinstance(exc, SubmitOutcomeUnknownError | NotFoundError):
        return False
    return isinstance(exc, RateLimitedError | ProviderUnavailableError | MalformedReplyError)
