"""The process's secrets and the one scrubber for text that leaves the bot (DESIGN.md
invariant 5): log records (bot/logging_setup.py) and what members read (the presenter's
messages, refusals and private answers).

`SECRETS` is fed once at start with every configured secret (`Settings.secrets()`: the
Discord token, provider keys, the mj-proxy and webhook secrets) and, while the bot runs,
with each interaction's token for as long as Discord honours it (15 minutes). It is
process-wide on purpose, like the logging configuration it serves: a secret is a secret
for every part of the process, and one list means the log filter and the members' text
can never disagree about what to hide.
"""

from __future__ import annotations

import bisect
import re
import threading
import time
from collections.abc import Callable, Iterable

REDACTED = "<redacted>"
# Shorter values are not secrets worth a search (and would redact ordinary words).
MIN_SECRET_LENGTH = 4
# Discord honours an interaction token for 15 minutes; kept a little longer, in case a
# late reply quotes one.
INTERACTION_TOKEN_TTL_S = 16 * 60.0
# A live token can only hide in a long run of token characters; texts without one (most
# of them: prompts, progress lines) skip the per-token search.
_MIN_TOKEN_LENGTH = 32
_SWEEP_S = 60.0
_LONG_RUN = re.compile(rf"[A-Za-z0-9_\-.]{{{_MIN_TOKEN_LENGTH},}}")


class SecretRegistry:
    """Configured secrets (for the process's life) and expiring ones (interaction tokens).

    `scrub` replaces each with REDACTED; longest first, so a secret that contains another
    is replaced whole. Safe to feed from any thread (logging may run in several).
    """

    def __init__(
        self, secrets: Iterable[str] = (), *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._permanent: set[str] = set()
        self._expiring: dict[str, float] = {}  # token → when it may be forgotten
        self._ordered: tuple[str, ...] = ()  # permanent ones and odd-shaped tokens
        self._tokens: tuple[str, ...] = ()  # tokens that are one long run (see _LONG_RUN)
        self._next_sweep = 0.0
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        """Hide these values everywhere from now on (empty and very short ones are skipped)."""
        fresh = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH} - self._permanent
        if fresh:
            with self._lock:
                self._permanent |= fresh
                self._ordered = _longest_first(self._permanent)

    def add_expiring(self, token: str | None, ttl_s: float = INTERACTION_TOKEN_TTL_S) -> None:
        """Hide `token` for `ttl_s` seconds (an interaction token, while it is usable)."""
        if not token or len(token) < MIN_SECRET_LENGTH:
            return
        now = self._clock()
        with self._lock:
            known = token in self._expiring
            self._expiring[token] = now + ttl_s
            # Expired tokens are dropped in one sweep a minute, not at every add: a busy
            # bot adds thousands, and rebuilding the lists each time was quadratic.
            if now >= self._next_sweep:
                self._next_sweep = now + _SWEEP_S
                self._expiring = {t: u for t, u in self._expiring.items() if u > now}
                self._reorder()
            elif not known:
                self._insert(token)

    def _insert(self, token: str) -> None:
        if _LONG_RUN.fullmatch(token):
            self._tokens = _inserted(self._tokens, token)
        else:
            self._ordered = _inserted(self._ordered, token)

    def _reorder(self) -> None:
        runs = {t for t in self._expiring if _LONG_RUN.fullmatch(t)}
        self._tokens = _longest_first(runs)
        self._ordered = _longest_first(self._permanent | (self._expiring.keys() - runs))

    def __len__(self) -> int:
        return len(self._permanent) + len(self._expiring)

    def scrub(self, text: str) -> str:
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, REDACTED)
        tokens = self._tokens
        if tokens and _LONG_RUN.search(text) is not None:
            for token in tokens:
                if token in text:
                    text = text.replace(token, REDACTED)
        return text

    def scrub_optional(self, text: str | None) -> str | None:
        return self.scrub(text) if text else text


def _longest_first(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(values, key=len, reverse=True))


def _inserted(ordered: tuple[str, ...], value: str) -> tuple[str, ...]:
    """`ordered` (longest first) with `value` in its place."""
    at = bisect.bisect_left([-len(v) for v in ordered], -len(value))
    return (*ordered[:at], value, *ordered[at:])


# The process's registry: fed by setup_logging and the bot, read by every scrubber.
SECRETS = SecretRegistry()


def scrub(text: str) -> str:
    """`text` with every known secret and live interaction token replaced by REDACTED."""
    return SECRETS.scrub(text)
