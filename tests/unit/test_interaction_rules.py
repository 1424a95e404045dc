"""bot/interactions/rules.py: each rule a click, form or command on a job must pass, on
its own: its inputs, and the sentence the member reads (None: let through). The two rules
that read the server's settings run on a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.discord.policy import Member, Policy
from bot.domain import Job, JobStatus, Operation, OperationKind
from bot.interactions import rules
from bot.providers.base import Capabilities
from bot.store import open_store
from bot.store.sqlite import SqliteStore

GUILD = "100"
NOW = 1_800_000_000.0


def job(**kw: object) -> Job:
    fields: dict[str, object] = {
        "id": "abc123",
        "operation": Operation(OperationKind.IMAGINE, prompt="a lighthouse"),
        "provider": "piapi",
        "status": JobStatus.COMPLETED,
        "requester_id": "owner",
        "guild_id": GUILD,
        "created_at": NOW - 60,
    }
    fields.update(kw)
    return Job(**fields)  # type: ignore[arg-type]


def member(user: str, *, moderator: bool = False) -> Member:
    return Member(
        user_id=user,
        guild_id=GUILD,
        channel_id="c1",
        parent_channel_id=None,
        role_ids=(),
        is_manager=False,
        is_moderator=moderator,
    )


def test_unknown_job_missing_elsewhere_or_of_another_kind() -> None:
    assert rules.unknown_job(None, GUILD) == rules.UNKNOWN_BUTTON
    # Another server's job reads exactly like a missing one: ids reveal nothing.
    assert rules.unknown_job(job(guild_id="999"), GUILD) == rules.UNKNOWN_BUTTON
    assert rules.unknown_job(job(), None) == rules.UNKNOWN_BUTTON  # a DM
    assert rules.unknown_job(job(), GUILD) is None
    assert rules.unknown_job(job(), GUILD, kind=OperationKind.DESCRIBE) == rules.UNKNOWN_BUTTON
    text = "There is no job `abc123` in this server."
    assert rules.unknown_job(None, GUILD, text=text) == text


def test_not_finished_lets_only_a_completed_job_through() -> None:
    assert rules.not_finished(job()) is None
    for status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED):
        assert rules.not_finished(job(status=status)) == rules.NOT_FINISHED


def test_past_window_counts_from_the_job_s_creation() -> None:
    day = 24 * 3600.0
    assert rules.past_window(job(created_at=NOW - day), now=NOW, window=None) is None
    assert rules.past_window(job(created_at=NOW - day), now=NOW, window=day) is None
    late = rules.past_window(job(created_at=NOW - day - 1), now=NOW, window=day)
    assert late is not None and "older than 24 hours" in late and "/imagine" in late


def test_unsupported_names_the_action_the_backend_cannot_do() -> None:
    images = Capabilities(operations=frozenset({OperationKind.IMAGINE, OperationKind.UPSCALE}))
    assert rules.unsupported(images, "pick:2") is None
    refusal = rules.unsupported(images, "zoom_out_2x")
    assert refusal is not None and refusal.startswith("The image service this server uses")
    assert "Zoom Out" in refusal
    assert rules.unsupported(images, "describe_pick:1") is None  # no follow-up kind: not judged


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with await open_store(f"sqlite:///{tmp_path / 'bot.db'}") as s:
        yield s


@pytest.fixture
def policy(store: SqliteStore) -> Policy:
    return Policy(store, FakeClock(NOW), max_prompt_length=6000)


async def test_may_not_click_follows_the_server_s_click_rule(
    policy: Policy, store: SqliteStore
) -> None:
    parent = job()
    assert await rules.may_not_click(policy, member("someone"), parent) is None
    settings = (await store.guilds.get(GUILD)).with_changes(follow_up_clicks="requester")
    await policy.save_settings(settings)
    refusal = await rules.may_not_click(policy, member("someone"), parent)
    assert refusal is not None and "<@owner>" in refusal
    assert await rules.may_not_click(policy, member("owner"), parent) is None
    assert await rules.may_not_click(policy, member("mod", moderator=True), parent) is None


async def test_policy_refusal_checks_the_click_then_the_job(
    policy: Policy, store: SqliteStore
) -> None:
    upscale = Operation(OperationKind.UPSCALE, index=2, parent_job_id="abc123")
    assert await rules.policy_refusal(policy, member("someone"), upscale, job()) is None
    settings = (await store.guilds.get(GUILD)).with_changes(
        follow_up_clicks="requester", banned_words_added=("lighthouse",)
    )
    await policy.save_settings(settings)
    # The click rule speaks first for a follow-up; a new job has no parent to click on.
    clicked = await rules.policy_refusal(policy, member("someone"), upscale, job())
    assert clicked is not None and "buttons" in clicked
    typed = Operation(OperationKind.IMAGINE, prompt="a lighthouse")
    banned = await rules.policy_refusal(policy, member("someone"), typed)
    assert banned is not None and "buttons" not in banned


def test_finished_here_is_unknown_job_then_not_finished_raised_as_a_refusal() -> None:
    from bot.interactions.errors import Refusal

    done = job()
    assert rules.finished_here(done, GUILD) is done
    cases = [
        (None, {}, rules.UNKNOWN_BUTTON),
        (job(guild_id="other"), {}, rules.UNKNOWN_BUTTON),
        (done, {"kind": OperationKind.DESCRIBE}, rules.UNKNOWN_BUTTON),
        (None, {"text": "There is no job `x` in this server."}, "There is no job `x`"),
        (job(status=JobStatus.RUNNING), {}, rules.NOT_FINISHED),
    ]
    for found, options, sentence in cases:
        with pytest.raises(Refusal) as refused:
            rules.finished_here(found, GUILD, **options)  # type: ignore[arg-type]
        assert refused.value.text.startswith(sentence), (found, options, refused.value.text)
