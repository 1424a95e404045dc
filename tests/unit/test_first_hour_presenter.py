"""Issue 15 items 1, 2, 7, 10 in the pure presenter: the retrying note, sentences only for
members, the final in the previews' slot, Cancelled without its echo."""

from __future__ import annotations

from bot.discord.presenter import is_sentence, render
from bot.domain import ErrorCode, JobError, JobStatus, OperationKind
from tests.unit.test_presenter import make_job


def test_a_refused_submission_reads_as_retrying_not_as_a_queue() -> None:
    job = make_job(
        status=JobStatus.QUEUED,
        queue_position=1,
        error=JobError(ErrorCode.UNAVAILABLE, "The image service isn't answering; retrying."),
    )
    assert render(job, now=1012.0).content.splitlines() == [
        "**a lighthouse at dusk** - <@111> (Retrying)",
        "⚠️ The image service isn't answering; retrying.",
        "⌛ 10s elapsed",
    ]


def test_members_read_sentences_never_exception_names_or_json() -> None:
    for detail in (
        "ClientConnectorError",
        "httpx.ConnectError",
        '{"code": 401, "data": null, "message": "Invalid API key"}',
        '["a", "b"]',
        "ReadTimeout",
    ):
        assert not is_sentence(detail), detail
        for code in ErrorCode:
            job = make_job(status=JobStatus.FAILED, error=JobError(code, "It failed.", detail))
            assert "\n>" not in render(job, now=1000.0).content, (code, detail)
    assert is_sentence("[Banned prompt detected] lighthouse")
    account = make_job(
        status=JobStatus.FAILED,
        error=JobError(ErrorCode.AUTH, "The service refused the key.", "Invalid API key given"),
    )
    assert "\n>" not in render(account, now=1000.0).content  # the owner's detail, not members'


def test_the_final_takes_the_previews_slot_unless_spoilered() -> None:
    done = render(make_job(status=JobStatus.COMPLETED, result_url="https://cdn/r.png"), now=1e3)
    shown = done.with_attachment("mj_0123456789ab.png")
    assert shown.embed is not None and shown.embed.image_url == "attachment://mj_0123456789ab.png"
    assert done.with_attachment("SPOILER_mj_0123456789ab.png").embed is None
    described = make_job(
        kind=OperationKind.DESCRIBE,
        prompt=None,
        image_urls=("https://img/in.png",),
        status=JobStatus.COMPLETED,
        prompts=["a fox"],
    )
    rendered = render(described, now=1e3)
    assert rendered.with_attachment("x.png").embed == rendered.embed


def test_cancelled_says_it_once() -> None:
    job = make_job(status=JobStatus.CANCELLED, error=JobError(ErrorCode.CANCELLED, "Cancelled."))
    assert render(job, now=1000.0).content.splitlines()[1] == "🚫 Cancelled"
