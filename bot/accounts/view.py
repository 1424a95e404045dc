"""The admins' view of the pool (`/settings accounts`): one line per account, written as
sentences (no exception names, no raw JSON, never a key)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal

from bot.accounts.pool import Account, AccountPool
from bot.store.base import UsageSummary

PROVIDER_TEXT_LIMIT = 80
UNIT_NAMES = {"usd": "USD", "point": "credits"}


def format_amount(amount: Decimal, unit: str) -> str:
    if unit == "usd":
        return f"${amount.quantize(Decimal('0.01'))}"
    return f"{amount.normalize():,f} {UNIT_NAMES.get(unit, unit)}"


def _costs(costs: Mapping[str, Decimal]) -> str:
    return " + ".join(format_amount(a, u) for u, a in sorted(costs.items())) or "no cost reported"


def _balance(account: Account) -> str:
    info = account.balance
    if info is None or info.credits is None:
        return "balance not reported"
    return f"balance {format_amount(info.credits, info.credits_unit or 'point')}"


def _state(account: Account, when: Callable[[float], str]) -> str:
    aside = account.aside
    if aside is None:
        return "**available**"
    text = f"**set aside** {when(aside.since)}: {aside.reason}"
    if aside.provider_text:
        said = " ".join(aside.provider_text.split())[:PROVIDER_TEXT_LIMIT]
        text += f' (the service said "{said}")'
    if aside.until is None:
        text += "; back when an admin puts it back"
    elif aside.kind.waits_for_admin:
        text += f"; balance read again {when(aside.until)}"
    else:
        text += f"; tried again {when(aside.until)}"
    return text


def describe_account(account: Account, today: UsageSummary) -> str:
    return (
        f"**{account.name}** ({account.kind}): {account.in_flight}/{account.limit} in flight; "
        f"today {today.jobs} job(s), {_costs(today.costs)}; {_balance(account)}"
    )


def describe_pool(
    pool: AccountPool,
    today: Mapping[str, UsageSummary],
    *,
    when: Callable[[float], str] = lambda t: f"<t:{int(t)}:R>",
) -> str:
    lines = ["**Provider accounts**"]
    for account in pool.accounts:
        summary = today.get(account.name, UsageSummary())
        lines.append(f"{describe_account(account, summary)} — {_state(account, when)}")
    if any(a.aside is not None for a in pool.accounts):
        lines.append("Put one back with `/settings accounts restore:<name>`.")
    return "\n".join(lines)
