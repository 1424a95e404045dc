"""The policy that gates every job, on a real SQLite store: the order of its checks, the
moderation budget, quotas by speed, role overrides, prompts typed into follow-up forms,
and who may click."""

from __future__ import annotations

import calendar
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.community import Limits
from bot.discord.policy import Member, Policy
from bot.domain import (
    ErrorCode,
    Job,
    JobError,
    JobStatus,
    Operation,
    OperationKind,
    SpeedMode,
    new_job_id,
)
from bot.store import open_store
from bot.store.sqlite import SqliteStore

NOON = float(calendar.timegm((2026, 11, 23, 12, 0, 0)))
GUILD = "100"


def member(user: str = "u1", **kw: object) -> Member:
    fields: dict[str, object] = {
        "user_id": user,
        "guild_id": GUILD,
        "channel_id": "c1",
        "parent_channel_id": None,
        "role_ids": (),
        "is_manager": False,
        "is_moderator": False,
    }
    fields.update(kw)
    return Member(**fields)  # type: ignore[arg-type]


def imagine(prompt: str = "a lighthouse", mode: SpeedMode = SpeedMode.RELAX) -> Operation:
    return Operation(OperationKind.IMAGINE, prompt=prompt, mode=mode)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with await open_store(f"sqlite:///{tmp_path / 'bot.db'}") as s:
        yield s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


@pytest.fixture
def policy(store: SqliteStore, clock: FakeClock) -> Policy:
    return Policy(store, clock, max_prompt_length=6000)


async def add_job(
    store: SqliteStore,
    *,
    user: str = "u1",
    status: JobStatus = JobStatus.COMPLETED,
    mode: SpeedMode = SpeedMode.RELAX,
    error: JobError | None = None,
    at: float = NOON - 60,
) -> Job:
    job = Job(
        id=new_job_id(),
        operation=imagine(mode=mode),
        provider="piapi",
        status=status,
        requester_id=user,
        guild_id=GUILD,
        error=error,
        created_at=at,
        updated_at=at,
    )
    await store.jobs.insert(job)
    return job


async def test_defaults_let_a_member_generate(policy: Policy) -> None:
    assert await policy.check_job(member(), imagine()) is None


async def test_banned_and_malformed_prompts_are_refused_with_the_word(policy: Policy) -> None:
    reason = await policy.check_job(member(), imagine("a g o r e fest"))
    assert reason is not None and "g o r e" in reason
    reason = await policy.check_job(member(), imagine("a kite --v 9"))
    assert reason is not None and "--v" in reason


async def test_an_unchanged_follow_up_prompt_is_not_checked_again(
    policy: Policy, store: SqliteStore
) -> None:
    settings = (await store.guilds.get(GUILD)).with_changes(banned_words_added=("kite",))
    await policy.save_settings(settings)
    parent = await add_job(store)
    parent.operation = imagine("a kite")
    follow = Operation(
        OperationKind.VARIATION, prompt="a kite", parent_job_id=parent.id, mode=SpeedMode.RELAX
    )
    assert await policy.check_job(member(), follow, parent=parent) is None
    remixed = Operation(
        OperationKind.VARIATION, prompt="a red kite", parent_job_id=parent.id, mode=SpeedMode.RELAX
    )
    assert "kite" in (await policy.check_job(member(), remixed, parent=parent) or "")


async def test_moderation_refusals_pause_a_member_for_the_day(
    policy: Policy, store: SqliteStore, clock: FakeClock
) -> None:
    moderated = JobError(ErrorCode.MODERATED, "blocked")
    for _ in range(3):  # the default budget
        await add_job(store, status=JobStatus.FAILED, error=moderated)
    reason = await policy.check_job(member(), imagine())
    assert reason is not None and "moderation" in reason and "<t:" in reason
    assert await policy.check_job(member("u2"), imagine()) is None  # others unaffected
    # Yesterday's refusals do not count today.
    clock.advance(86400)
    assert await policy.check_job(member(), imagine()) is None


async def test_fast_jobs_have_their_own_daily_limit_and_roles_can_raise_it(
    policy: Policy, store: SqliteStore
) -> None:
    settings = await store.guilds.get(GUILD)
    await policy.save_settings(
        settings.with_changes(
            limits=Limits(concurrent_jobs=None, jobs_per_day=100, fast_jobs_per_day=2),
            role_limits={"patrons": Limits(None, None, None)},
        )
    )
    for _ in range(2):
        await add_job(store, mode=SpeedMode.FAST)
    reason = await policy.check_job(member(), imagine(mode=SpeedMode.FAST))
    assert reason is not None and "<t:" in reason
    assert await policy.check_job(member(), imagine(mode=SpeedMode.RELAX)) is None
    patron = member(role_ids=("patrons",))
    assert await policy.check_job(patron, imagine(mode=SpeedMode.FAST)) is None


async def test_jobs_at_once_count_every_unfinished_job(policy: Policy, store: SqliteStore) -> None:
    for status in (JobStatus.QUEUED, JobStatus.SUBMITTED, JobStatus.RUNNING):
        await add_job(store, status=status)
    reason = await policy.check_job(member(), imagine())
    assert reason is not None and "3" in reason


async def test_channel_role_and_mode_rules(policy: Policy, store: SqliteStore) -> None:
    settings = (await store.guilds.get(GUILD)).with_changes(
        allowed_channel_ids=("art",), allowed_role_ids=("artists",), allowed_modes=("relax",)
    )
    await policy.save_settings(settings)
    assert "<#art>" in (await policy.check_job(member(), imagine()) or "")
    in_art = member(channel_id="art")
    assert "role" in (await policy.check_job(in_art, imagine()) or "").lower()
    thread_in_art = member(channel_id="t1", parent_channel_id="art", role_ids=("artists",))
    assert await policy.check_job(thread_in_art, imagine()) is None
    assert "fast" in (await policy.check_job(thread_in_art, imagine(mode=SpeedMode.FAST)) or "")


async def test_requester_only_clicks(policy: Policy, store: SqliteStore) -> None:
    parent = await add_job(store, user="owner")
    assert await policy.check_click(member("someone"), parent) is None  # default: anyone
    settings = (await store.guilds.get(GUILD)).with_changes(follow_up_clicks="requester")
    await policy.save_settings(settings)
    assert await policy.check_click(member("someone"), parent) is not None
    assert await policy.check_click(member("owner"), parent) is None
    assert await policy.check_click(member("mod", is_moderator=True), parent) is None


async def test_flagged_prompts_for_spoilers(policy: Policy) -> None:
    assert policy.is_flagged("a moon red as blood")
    assert not policy.is_flagged("a calm blue moon")


async def test_settings_are_cached_but_never_stale_after_a_change(
    policy: Policy, store: SqliteStore, clock: FakeClock
) -> None:
    assert await policy.check_job(member(), imagine()) is None
    refuse_all = (await store.guilds.get(GUILD)).with_changes(allowed_channel_ids=("art",))
    await policy.save_settings(refuse_all)  # /settings: effective at once
    assert await policy.check_job(member(), imagine()) is not None
    # Written by someone else (another process): seen once the cache entry expires.
    await store.guilds.save(refuse_all.with_changes(allowed_channel_ids=()))
    assert await policy.check_job(member(), imagine()) is not None
    clock.advance(31)
    assert await policy.check_job(member(), imagine()) is None


async def test_quota_counts_in_one_read(store: SqliteStore) -> None:
    moderated = JobError(ErrorCode.MODERATED, "blocked")
    await add_job(store, status=JobStatus.RUNNING, at=NOON - 3 * 86400)  # old but active
    await add_job(store, mode=SpeedMode.FAST)
    await add_job(store, status=JobStatus.FAILED, error=moderated)
    await add_job(store, user="u2")
    counts = await store.usage.quota_counts(GUILD, "u1", NOON - 3600)
    assert (counts.active, counts.since, counts.fast_since, counts.moderated_since) == (1, 2, 1, 1)
