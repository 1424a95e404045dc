"""Provider accounts, pooled: routing, per-account limits, failure handling (DESIGN.md
"Accounts between the engine and the providers")."""

from bot.accounts.failures import AsideKind, Verdict, account_fault
from bot.accounts.pool import Account, AccountPool, PoolSettings, SetAside

__all__ = [
    "Account",
    "AccountPool",
    "AsideKind",
    "PoolSettings",
    "SetAside",
    "Verdict",
    "account_fault",
]
