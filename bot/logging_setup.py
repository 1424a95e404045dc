"""Logging with secrets scrubbed from every record (DESIGN.md invariant 5)."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

from bot.redaction import REDACTED, SECRETS, SecretRegistry

__all__ = ["REDACTED", "RedactSecrets", "setup_logging"]

# Interaction tokens (each lets its holder edit the bot's replies for 15 minutes) are not
# configured secrets: discord.py writes them at DEBUG in request URLs and gateway events.
# They are found by shape, whichever interaction they belong to.
_TOKEN_CHARS = r"[A-Za-z0-9_\-.]+"
_TOKEN_PATTERNS = (
    # /webhooks/{application_id}/{token}/...  and  /interactions/{id}/{token}/callback
    re.compile(rf"(/(?:webhooks|interactions)/\d+/){_TOKEN_CHARS}"),
    # 'token': '…' in a logged dict, "token": "…" in logged JSON
    re.compile(rf"""(["']token["']\s*:\s*["']){_TOKEN_CHARS}"""),
    # Discord's interaction tokens are base64 of "interaction:…"
    re.compile(rf"()aW50ZXJhY3Rpb24{_TOKEN_CHARS}"),
)
# Line breaks and other controls in a logged value (a provider's text) would let it forge
# log lines of its own; a record's message is written with them escaped (\n, \x1b, \u2028).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def scrub_tokens(text: str) -> str:
    """`text` with every interaction or webhook token in it replaced."""
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(rf"\g<1>{REDACTED}", text)
    return text


def escape_controls(text: str) -> str:
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class RedactSecrets(logging.Filter):
    """Replaces any known secret in a record's final text, arguments included."""

    def __init__(
        self, secrets: Iterable[str] = (), *, registry: SecretRegistry | None = None
    ) -> None:
        super().__init__()
        # The process's one registry (bot/redaction.py), shared with what members read; a
        # filter built from a plain list gets a registry of its own.
        self._registry = registry if registry is not None else SecretRegistry(secrets)

    def scrub(self, text: str) -> str:
        text = self._registry.scrub(text)
        return scrub_tokens(text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = escape_controls(record.getMessage())
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = self.scrub(message)
        record.args = None
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        return True


class NoVoiceWarnings(logging.Filter):
    """discord.client warns at every start that PyNaCl and davey (voice) are missing; the
    bot never joins a voice channel, so those two lines are noise (issue 15 item 11)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("voice will NOT be supported" in message and record.name == "discord.client")


def setup_logging(level: str, secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    SECRETS.add(*secrets)
    handler.addFilter(RedactSecrets(registry=SECRETS))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO; keep that for DEBUG runs only.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    discord_client = logging.getLogger("discord.client")
    if not any(isinstance(f, NoVoiceWarnings) for f in discord_client.filters):
        discord_client.addFilter(NoVoiceWarnings())
