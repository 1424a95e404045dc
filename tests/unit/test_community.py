"""A server's settings and the pure rules that use them: layering, storage format,
role limits, channels and roles, speeds, quotas, clicks, and the audit description."""

from __future__ import annotations

import calendar
import json
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.community import (
    DAY_SECONDS,
    GuildSettings,
    Limits,
    Refusal,
    RoleLimits,
    check_mode,
    check_quota,
    describe_change,
    may_click,
    may_generate,
    utc_day_start,
    utc_month_start,
)
from bot.prompt_check import BannedWords

# 2024-05-31 15:30:00 UTC
NOW = float(calendar.timegm((2024, 5, 31, 15, 30, 0)))
MIDNIGHT = float(calendar.timegm((2024, 5, 31, 0, 0, 0)))


# --- time -------------------------------------------------------------------------------


def test_utc_day_and_month_start() -> None:
    assert utc_day_start(NOW) == MIDNIGHT
    assert utc_day_start(MIDNIGHT) == MIDNIGHT
    assert utc_day_start(MIDNIGHT - 0.001) == MIDNIGHT - DAY_SECONDS
    assert utc_month_start(NOW) == calendar.timegm((2024, 5, 1, 0, 0, 0))
    assert utc_month_start(calendar.timegm((2024, 12, 31, 23, 59, 59))) == calendar.timegm(
        (2024, 12, 1, 0, 0, 0)
    )


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_day_start_is_a_utc_midnight_at_or_before(now: float) -> None:
    start = utc_day_start(now)
    assert start <= now < start + DAY_SECONDS
    moment = datetime.fromtimestamp(start, UTC)
    assert (moment.hour, moment.minute, moment.second) == (0, 0, 0)
    month = datetime.fromtimestamp(utc_month_start(now), UTC)
    assert month.day == 1 and month <= datetime.fromtimestamp(now, UTC)


# --- settings and their storage ---------------------------------------------------------


def test_defaults() -> None:
    s = GuildSettings("1")
    assert s.allowed_channel_ids == () and s.allowed_role_ids == ()
    assert s.default_mode == "fast" and s.allowed_modes == ("relax", "fast", "turbo")
    assert s.follow_up_clicks == "anyone"
    assert s.limits == Limits(concurrent_jobs=3, jobs_per_day=100, fast_jobs_per_day=25)
    assert s.role_limits == {} and len(s.role_limits) == 0
    assert s.spoiler_flagged is True and s.moderation_error_budget == 3
    assert GuildSettings.from_data("1", {}) == s


def full_settings() -> GuildSettings:
    return GuildSettings(
        "9",
        allowed_channel_ids=("10", "11"),
        allowed_role_ids=("20",),
        default_mode="relax",
        allowed_modes=("relax",),
        follow_up_clicks="requester",
        limits=Limits(1, None, 0),
        role_limits={"20": Limits(5, 50, None), "21": Limits(None, None, None)},
        spoiler_flagged=False,
        banned_words_added=("dragon", "red panda"),
        banned_words_removed=("blood",),
        moderation_error_budget=7,
    )


def test_json_round_trip_keeps_every_field() -> None:
    s = full_settings()
    data = json.loads(json.dumps(s.to_data()))  # what the store writes and reads
    assert "guild_id" not in data
    assert data["role_limits"]["20"] == {
        "concurrent_jobs": 5,
        "jobs_per_day": 50,
        "fast_jobs_per_day": None,
    }
    back = GuildSettings.from_data("9", data)
    assert back == s
    assert hash(back) == hash(s)  # frozen and hashable, role limits included


def test_from_data_ignores_unknown_keys_and_defaults_missing_or_bad_ones() -> None:
    s = GuildSettings.from_data(
        "1",
        {
            "default_mode": "relax",
            "future_setting": {"x": 1},
            "allowed_channel_ids": "not a list",
            "moderation_error_budget": "three",
            "spoiler_flagged": "yes",
            "limits": {"jobs_per_day": 5, "future_limit": 1, "concurrent_jobs": -2},
            "role_limits": {"7": {"jobs_per_day": None}, "8": "junk"},
            "follow_up_clicks": "nobody",
        },
    )
    assert s.default_mode == "relax"
    assert s.allowed_channel_ids == ()
    assert s.moderation_error_budget == 3 and s.spoiler_flagged is True
    assert s.limits == Limits(concurrent_jobs=3, jobs_per_day=5, fast_jobs_per_day=25)
    assert dict(s.role_limits) == {"7": Limits(jobs_per_day=None)}
    assert s.follow_up_clicks == "anyone"
    assert GuildSettings.from_data("1", {"default_mode": "ultra"}).default_mode == "fast"


def test_limits_data_round_trip_and_tolerance() -> None:
    limits = Limits(None, 0, 7)
    assert Limits.from_data(limits.to_data()) == limits
    assert Limits.from_data({}) == Limits()
    assert Limits.from_data({"jobs_per_day": True, "x": 1}) == Limits()


def test_with_changes_normalises_lists_and_dicts() -> None:
    s = GuildSettings("1")
    changed = s.with_changes(
        allowed_channel_ids=["5", "6", "5"],
        role_limits={"3": Limits(1, 2, 3)},
        banned_words_added=["kite", " ", "kite"],
    )
    assert changed.allowed_channel_ids == ("5", "6")
    assert isinstance(changed.role_limits, RoleLimits)
    assert changed.role_limits["3"] == Limits(1, 2, 3)
    assert changed.banned_words_added == ("kite",)
    assert s.allowed_channel_ids == ()  # the original is untouched
    with pytest.raises(TypeError):
        s.with_changes(no_such_setting=1)
    # The role limits mapping is read-only; a copy is edited and passed back.
    with pytest.raises(TypeError):
        changed.role_limits["4"] = Limits()  # type: ignore[index]
    edited = dict(changed.role_limits)
    edited.pop("3")
    assert changed.with_changes(role_limits=edited).role_limits == {}


def test_limits_for_roles() -> None:
    s = GuildSettings(
        "1",
        limits=Limits(3, 100, 25),
        role_limits={
            "vip": Limits(10, 500, 100),
            "patron": Limits(2, None, 200),
            "newcomer": Limits(1, 5, 0),
        },
    )
    assert s.limits_for([]) == Limits(3, 100, 25)
    assert s.limits_for(["unrelated"]) == Limits(3, 100, 25)
    assert s.limits_for(["vip"]) == Limits(10, 500, 100)
    # The most generous per field; None (no limit) beats any number.
    assert s.limits_for(["vip", "patron"]) == Limits(10, None, 200)
    assert s.limits_for(["patron", "vip", "unrelated"]) == Limits(10, None, 200)
    # An override replaces the server's limits, so it may also hold a role to less.
    assert s.limits_for(["newcomer"]) == Limits(1, 5, 0)


def test_banned_words_follow_the_settings() -> None:
    s = GuildSettings("1", banned_words_added=("kite",), banned_words_removed=("blood",))
    matcher = s.banned_words()
    assert isinstance(matcher, BannedWords)
    assert matcher.find("a kite") == "kite"
    assert matcher.find("blood moon") is None
    assert matcher.find("nude") == "nude"
    assert s.banned_words() is matcher  # compiled once per list


# --- where and who ----------------------------------------------------------------------


def test_may_generate_everywhere_by_default() -> None:
    assert (
        may_generate(
            GuildSettings("1"),
            channel_id="5",
            parent_channel_id=None,
            role_ids=[],
            is_manager=False,
        )
        is None
    )


def test_channels_apply_to_everyone_and_threads_follow_their_channel() -> None:
    s = GuildSettings("1", allowed_channel_ids=("10", "11", "12"))
    ok = {"parent_channel_id": None, "role_ids": [], "is_manager": False}
    assert may_generate(s, channel_id="10", **ok) is None  # type: ignore[arg-type]
    assert (
        may_generate(s, channel_id="thread", parent_channel_id="11", role_ids=[], is_manager=False)
        is None
    )
    for manager in (False, True):
        refusal = may_generate(
            s, channel_id="99", parent_channel_id=None, role_ids=[], is_manager=manager
        )
        assert refusal is not None and refusal.code == "channel"
        assert "<#10>, <#11> or <#12>" in refusal.message
    refusal = may_generate(
        s, channel_id=None, parent_channel_id=None, role_ids=[], is_manager=False
    )
    assert refusal is not None and refusal.code == "channel"


def test_roles_restrict_members_but_not_managers() -> None:
    s = GuildSettings("1", allowed_role_ids=("20", "21"))
    refusal = may_generate(
        s, channel_id="5", parent_channel_id=None, role_ids=["9"], is_manager=False
    )
    assert refusal == Refusal(
        "role", "On this server, only members with the role <@&20> or <@&21> can make images."
    )
    assert (
        may_generate(
            s, channel_id="5", parent_channel_id=None, role_ids=["9", "21"], is_manager=False
        )
        is None
    )
    assert (
        may_generate(s, channel_id="5", parent_channel_id=None, role_ids=[], is_manager=True)
        is None
    )


def test_channel_is_checked_before_role() -> None:
    s = GuildSettings("1", allowed_channel_ids=("10",), allowed_role_ids=("20",))
    refusal = may_generate(s, channel_id="5", parent_channel_id=None, role_ids=[], is_manager=False)
    assert refusal is not None and refusal.code == "channel"


def test_check_mode() -> None:
    s = GuildSettings("1", allowed_modes=("relax", "fast"))
    assert check_mode(s, "relax") is None and check_mode(s, "fast") is None
    refusal = check_mode(s, "turbo")
    assert refusal is not None and refusal.code == "mode"
    assert "**turbo**" in refusal.message and "**relax** and **fast**" in refusal.message


# --- quotas -----------------------------------------------------------------------------


def quota(limits: Limits, **kw: object) -> Refusal | None:
    args: dict[str, object] = {
        "active_jobs": 0,
        "jobs_today": 0,
        "fast_jobs_today": 0,
        "mode": "fast",
        "now": NOW,
        "day_start": MIDNIGHT,
    }
    args.update(kw)
    return check_quota(limits, **args)  # type: ignore[arg-type]


def test_quota_within_limits() -> None:
    assert quota(Limits(3, 100, 25), active_jobs=2, jobs_today=99, fast_jobs_today=24) is None
    assert quota(Limits(None, None, None), active_jobs=10**6, jobs_today=10**6) is None


def test_daily_limit_says_when_it_resets() -> None:
    refusal = quota(Limits(3, 5, 25), jobs_today=5)
    assert refusal is not None and refusal.code == "daily"
    next_midnight = MIDNIGHT + DAY_SECONDS
    assert refusal.resets_at == next_midnight
    assert f"<t:{int(next_midnight)}:R>" in refusal.message
    assert "5" in refusal.message and "day" in refusal.message


def test_fast_limit_only_for_fast_and_turbo() -> None:
    limits = Limits(3, 100, 2)
    for mode in ("fast", "turbo"):
        refusal = quota(limits, fast_jobs_today=2, mode=mode)
        assert refusal is not None and refusal.code == "fast_daily"
        assert re.search(r"<t:\d+:R>", refusal.message)
    assert quota(limits, fast_jobs_today=2, mode="relax") is None
    assert quota(Limits(3, 100, 0), mode="relax") is None
    refusal = quota(Limits(3, 100, 0), mode="fast")
    assert refusal is not None and refusal.code == "fast_daily"


def test_concurrent_limit_has_no_reset_time() -> None:
    refusal = quota(Limits(3, 100, 25), active_jobs=3)
    assert refusal is not None and refusal.code == "concurrent"
    assert refusal.resets_at is None and "3 at once" in refusal.message


def test_daily_limits_are_reported_before_the_concurrent_one() -> None:
    refusal = quota(Limits(1, 1, 25), active_jobs=1, jobs_today=1)
    assert refusal is not None and refusal.code == "daily"


def test_reset_is_the_next_utc_midnight_even_with_a_stale_day_start() -> None:
    refusal = quota(Limits(3, 0, 25), day_start=MIDNIGHT - 5 * DAY_SECONDS)
    assert refusal is not None and refusal.resets_at == MIDNIGHT + DAY_SECONDS


@given(
    st.integers(0, 50),
    st.integers(0, 50),
    st.integers(0, 50),
    st.sampled_from(["relax", "fast", "turbo"]),
    st.one_of(st.none(), st.integers(0, 50)),
    st.one_of(st.none(), st.integers(0, 50)),
    st.one_of(st.none(), st.integers(0, 50)),
)
def test_quota_refuses_exactly_when_a_limit_is_reached(
    active: int,
    today: int,
    fast_today: int,
    mode: str,
    concurrent: int | None,
    per_day: int | None,
    fast_per_day: int | None,
) -> None:
    limits = Limits(concurrent, per_day, fast_per_day)
    refusal = quota(
        limits, active_jobs=active, jobs_today=today, fast_jobs_today=fast_today, mode=mode
    )
    over = (
        (concurrent is not None and active >= concurrent)
        or (per_day is not None and today >= per_day)
        or (mode != "relax" and fast_per_day is not None and fast_today >= fast_per_day)
    )
    assert (refusal is not None) == over
    if refusal is not None and refusal.code != "concurrent":
        assert refusal.resets_at == MIDNIGHT + DAY_SECONDS


# --- clicks -----------------------------------------------------------------------------


def test_anyone_may_click_by_default() -> None:
    assert (
        may_click(GuildSettings("1"), clicker_id="2", requester_id="3", is_moderator=False) is None
    )


def test_requester_only_clicks() -> None:
    s = GuildSettings("1", follow_up_clicks="requester")
    assert may_click(s, clicker_id="3", requester_id="3", is_moderator=False) is None
    assert may_click(s, clicker_id="2", requester_id="3", is_moderator=True) is None
    refusal = may_click(s, clicker_id="2", requester_id="3", is_moderator=False)
    assert refusal is not None and refusal.code == "clicks"
    assert "<@3>" in refusal.message and "asked for" in refusal.message
    unknown = may_click(s, clicker_id="2", requester_id=None, is_moderator=False)
    assert unknown is not None and "asked for" in unknown.message


# --- the audit description --------------------------------------------------------------


def test_describe_change() -> None:
    before = GuildSettings("1")
    assert describe_change(before, before) == ""
    assert describe_change(before, before.with_changes(default_mode="relax")) == (
        "default_mode: fast → relax"
    )
    after = before.with_changes(
        allowed_channel_ids=("10",),
        spoiler_flagged=False,
        limits=Limits(3, None, 25),
        role_limits={"7": Limits(1, 2, 3)},
    )
    text = describe_change(before, after)
    assert text.split("; ") == [
        "allowed_channel_ids: added <#10>",
        "limits.jobs_per_day: 100 → no limit",
        "role_limits <@&7>: added (concurrent_jobs 1, jobs_per_day 2, fast_jobs_per_day 3)",
        "spoiler_flagged: on → off",
    ]
    later = after.with_changes(
        allowed_channel_ids=("11",), role_limits={"7": Limits(1, 5, 3)}, allowed_role_ids=("4",)
    )
    assert describe_change(after, later).split("; ") == [
        "allowed_channel_ids: added <#11>, removed <#10>",
        "allowed_role_ids: added <@&4>",
        "role_limits <@&7>.jobs_per_day: 2 → 5",
    ]
    assert describe_change(later, later.with_changes(role_limits={})) == (
        "role_limits <@&7>: removed"
    )


def test_reordering_a_list_is_no_change() -> None:
    s = GuildSettings("1", allowed_channel_ids=("1", "2"))
    assert describe_change(s, s.with_changes(allowed_channel_ids=("2", "1"))) == ""
