"""The log filter's patterns (issue 13, items 9 and 10): interaction tokens by their shape,
whichever interaction they belong to, and line breaks in logged values escaped. The real
bot's DEBUG log is scanned end to end in tests/e2e/test_hardening_logs.py."""

from __future__ import annotations

import logging
import secrets

import pytest

from bot.logging_setup import REDACTED, RedactSecrets

TOKEN = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96)
# A token of another shape: the URL patterns must catch it without the prefix.
OTHER = secrets.token_urlsafe(80)


def filtered(msg: str, *args: object, secrets_: tuple[str, ...] = ()) -> str:
    record = logging.LogRecord("discord.http", logging.DEBUG, __file__, 1, msg, args, None)
    assert RedactSecrets(list(secrets_)).filter(record)
    return record.getMessage()


@pytest.mark.parametrize(
    ("msg", "args"),
    [
        (
            "%s %s with %s has returned %s",
            (
                "PATCH",
                f"http://127.0.0.1:1/api/v10/webhooks/1200/{OTHER}/messages/@original",
                None,
                200,
            ),
        ),
        (
            "%s %s with %s has returned %s",
            ("POST", f"http://127.0.0.1:1/api/v10/interactions/99/{OTHER}/callback", None, 204),
        ),
        (
            "For Shard ID %s: WebSocket Event: %s",
            (0, {"t": "INTERACTION_CREATE", "d": {"id": "9", "token": OTHER}}),
        ),
        ("payload %s", (f'{{"type": 4, "token": "{OTHER}"}}',)),
        ("a bare one: %s", (TOKEN,)),
    ],
)
def test_interaction_tokens_are_scrubbed_by_shape(msg: str, args: tuple[object, ...]) -> None:
    text = filtered(msg, *args)
    assert OTHER not in text and TOKEN not in text, text
    assert OTHER[:16] not in text and TOKEN[16:40] not in text
    assert REDACTED in text


def test_ordinary_text_and_the_ids_around_a_token_are_kept() -> None:
    url = f"https://discord.com/api/v10/webhooks/1200/{OTHER}/messages/55"
    text = filtered("PATCH %s has returned %d", url, 200)
    expected = f"https://discord.com/api/v10/webhooks/1200/{REDACTED}/messages/55"
    assert text == f"PATCH {expected} has returned 200"
    assert filtered("job %s: %s", "abc123", "completed") == "job abc123: completed"


def test_line_breaks_and_controls_in_values_are_escaped_without_any_secret() -> None:
    forged = "mj_penalty\n2026-01-01 00:00:00,000 ERROR   bot.engine: forged\r\x1b[2K\u2028x"
    text = filtered("%s account notice: %.200s", "piapi", forged)
    assert "\n" not in text and "\r" not in text and "\x1b" not in text and "\u2028" not in text
    assert "mj_penalty\\n2026-01-01" in text and "\\x1b[2K" in text and "\\u2028x" in text
    # Escaping twice changes nothing (a record may pass two handlers).
    record = logging.LogRecord("x", logging.INFO, __file__, 1, text, None, None)
    RedactSecrets([]).filter(record)
    assert record.getMessage() == text


def test_configured_secrets_are_still_replaced() -> None:
    assert filtered("key %s", "pk-abcdef-123", secrets_=("pk-abcdef-123",)) == f"key {REDACTED}"
