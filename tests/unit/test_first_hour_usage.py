"""Issue 15 item 9: the chart's y axis labels every quarter (it had two labels, 0 and the
peak), and a credit's worth in dollars where the service says it."""

from __future__ import annotations

from decimal import Decimal

from bot.providers.base import AccountInfo
from bot.usage_chart import axis_ticks
from cogs.usage import format_costs, money, usd_per_credit


def test_the_axis_is_labelled_at_every_quarter() -> None:
    assert axis_ticks(Decimal(2_550_000), "point") == [
        "0",
        "637,500",
        "1,275,000",
        "1,912,500",
        "2,550,000",
    ]
    assert axis_ticks(Decimal(8), "jobs") == ["0", "2", "4", "6", "8"]
    assert axis_ticks(Decimal(10), "jobs") == ["0", "2.5", "5", "7.5", "10"]
    assert axis_ticks(Decimal("2"), "usd") == ["$0.00", "$0.50", "$1.00", "$1.50", "$2.00"]


def test_money_beside_credits_only_where_the_worth_is_known() -> None:
    piapi = AccountInfo(
        credits=Decimal(997_450_000), credits_unit="point", raw={"equivalent_in_usd": 66.4967}
    )
    rate = usd_per_credit(piapi)
    assert rate is not None
    assert format_costs({"point": Decimal(2_550_000)}, rate) == "2,550,000 credits (≈ $0.17)"
    assert money(Decimal(997_450_000), rate) == " (≈ $66.50)"
    # No worth said (Legnext, mj-proxy) or nonsense: credits alone, never a guess.
    for info in (
        AccountInfo(credits=Decimal(100), credits_unit="point"),
        AccountInfo(credits=Decimal(0), raw={"equivalent_in_usd": 1}),
        AccountInfo(credits=Decimal(100), raw={"equivalent_in_usd": "n/a"}),
        None,
    ):
        assert usd_per_credit(info) is None
    assert format_costs({"point": Decimal(20)}) == "20 credits"
    assert format_costs({"usd": Decimal("0.045")}, rate) == "$0.04"
