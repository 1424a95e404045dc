"""One scrubber for everything that leaves the bot (issue 13, item 1): the secret registry
in bot/redaction.py feeds the log filter and the presenter alike, so a provider that
quotes the bot's key in its error does not put it in the channel."""

from __future__ import annotations

import logging

from bot import redaction
from bot.discord.presenter import render, with_original_link
from bot.domain import ErrorCode, JobError, JobStatus, OperationKind
from bot.logging_setup import RedactSecrets
from bot.redaction import REDACTED, SecretRegistry
from tests.unit.test_presenter import make_job

KEY = "sk_live_0123456789abcdef"  # markdown would escape its underscores
TOKEN = "aW50ZXJhY3Rpb24" + "Q" * 120


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_registry_replaces_longest_first_and_skips_short_values() -> None:
    registry = SecretRegistry(["abcd", "abcdefgh", "", "xyz"])
    assert registry.scrub("key abcdefgh and abcd, xyz") == f"key {REDACTED} and {REDACTED}, xyz"
    assert len(registry) == 2


def test_interaction_tokens_are_hidden_while_they_live() -> None:
    ticks = Ticks()
    registry = SecretRegistry(clock=ticks)
    registry.add_expiring(TOKEN, ttl_s=900)
    odd = "tok/with spaces and: colons"  # not one run of token characters: always checked
    registry.add_expiring(odd, ttl_s=900)
    assert (
        registry.scrub(f"url /webhooks/1/{TOKEN}/messages")
        == f"url /webhooks/1/{REDACTED}/messages"
    )
    assert registry.scrub(f"x{odd}y") == f"x{REDACTED}y"
    ticks.now = 901
    registry.add_expiring("aW50ZXJhY3Rpb24" + "R" * 120)  # adding prunes the expired
    assert TOKEN in registry.scrub(TOKEN)
    assert len(registry) == 1


def test_log_filter_and_presenter_share_the_process_registry() -> None:
    redaction.SECRETS.add(KEY)
    # A secret known to the process is hidden from a log record…
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "provider said %s", (KEY,), None)
    RedactSecrets(registry=redaction.SECRETS).filter(record)
    assert KEY not in record.getMessage() and REDACTED in record.getMessage()
    # …and from a rendered message, by the same list, without being passed in.
    job = make_job(
        status=JobStatus.FAILED,
        error=JobError(ErrorCode.INVALID_REQUEST, f"Rejected: key {KEY}", f"bad key {KEY}"),
    )
    content = render(job, now=1010.0).content
    assert KEY not in content and KEY.replace("_", "\\_") not in content
    assert f"bad key {REDACTED}" in content.replace("\\", ""), content


def test_render_scrubs_before_clipping_so_no_piece_is_left() -> None:
    scrubber = SecretRegistry([KEY])
    long_text = "x" * 285 + " " + KEY + " tail"  # the key straddles the 300-char cut
    job = make_job(
        status=JobStatus.FAILED,
        error=JobError(ErrorCode.GENERATION_FAILED, "The image could not be made.", long_text),
    )
    content = render(job, now=1010.0, scrub=scrubber.scrub).content
    assert KEY[:10] not in content.replace("\\", ""), content
    # Without the hook the same text quotes the start of the key: the test can fail.
    unscrubbed = render(job, now=1010.0, scrub=lambda t: t).content
    assert KEY[:10] in unscrubbed.replace("\\", "")


def test_render_scrubs_prompt_seed_and_described_prompts() -> None:
    scrubber = SecretRegistry([KEY])
    job = make_job(prompt=f"a cat {KEY}", status=JobStatus.COMPLETED, seed=KEY)
    rendered = render(job, now=1010.0, scrub=scrubber.scrub)
    assert KEY not in rendered.content.replace("\\", "")
    described = make_job(
        kind=OperationKind.DESCRIBE,
        prompt=None,
        image_urls=("https://cdn.example/a.png",),
        status=JobStatus.COMPLETED,
        prompts=[f"a prompt quoting {KEY}", "another"],
    )
    embed = render(described, now=1010.0, scrub=scrubber.scrub).embed
    assert embed is not None and embed.description is not None
    assert KEY not in embed.description and "another" in embed.description


def test_render_leaves_a_clean_job_untouched() -> None:
    job = make_job(status=JobStatus.FAILED, error=JobError(ErrorCode.MODERATED, "Blocked.", "no"))
    seen: list[str] = []

    def spy(text: str) -> str:
        seen.append(text)
        return text

    assert render(job, now=1010.0, scrub=spy) == render(job, now=1010.0, scrub=lambda t: t)
    assert "Blocked." in seen and "no" in seen and job.operation.prompt in seen


def test_a_link_carrying_a_secret_is_not_shown() -> None:
    redaction.SECRETS.add(KEY)
    rendered = render(make_job(status=JobStatus.COMPLETED), now=1010.0)
    assert with_original_link(rendered, f"https://cdn.example/a.png?key={KEY}") == rendered
    linked = with_original_link(rendered, "https://cdn.example/a.png")
    assert "https://cdn.example/a.png" in linked.content


def test_provider_errors_are_scrubbed_where_they_enter_the_bot() -> None:
    """Refusals at submit time quote `ProviderError.message` privately (cogs, follow-ups):
    the key a gateway quotes never reaches them, nor the stored job."""
    from bot.providers.base import ProviderError

    redaction.SECRETS.add(KEY)
    error = ProviderError(f"bad key {KEY}", provider_text=f'{{"key": "{KEY}"}}')
    assert KEY not in error.message and REDACTED in error.message
    assert error.provider_text is not None and KEY not in error.provider_text
    assert ProviderError().message == ProviderError.default_message
