"""Discord's rate limits as the load benchmark installs them on the fake Discord.

The fake's own `RateLimitRule` is one fixed window shared by every matching request. Real
Discord keeps a window per *major parameter* (for interaction-token routes: the webhook id
and token), so `KeyedRateLimitRule` keeps one window per key, the key being the first group
of the rule's regex. It is a subclass that only changes where the window lives, so the
fake's limiter code drives it unchanged.

What the benchmark installs (first matching rule wins, as in the fake):

- interaction-token routes (`/webhooks/{app}/{token}/...`): 5 requests per 2 s per token
  (the webhook bucket clients observe; Discord does not publish the exact figure);
- every bot-token route: the global 50 requests per second per bot. Interaction
  callbacks and interaction-token routes are exempt from the global limit, as on Discord.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from tests.fakes.discord import FakeDiscord, RateLimitRule

TOKEN_ROUTE = r"^/webhooks/\d+/([^/]+)"
BOT_TOKEN_ROUTES = r"^/(?!interactions/|webhooks/)"
GLOBAL_LIMIT_PER_S = 50
TOKEN_LIMIT = 5
TOKEN_WINDOW_S = 2.0
LIMITS_TEXT = (
    f"interaction-token routes {TOKEN_LIMIT} per {TOKEN_WINDOW_S:g} s per token",
    f"bot-token routes {GLOBAL_LIMIT_PER_S}/s global (interaction routes exempt)",
)


class KeyedRateLimitRule(RateLimitRule):
    """A fixed-window limit kept separately for every value of the regex's first group."""

    def __init__(self, **kwargs: Any) -> None:
        self._windows: dict[str, list[float]] = {}
        self._key = ""
        super().__init__(**kwargs)

    def matches(self, method: str, path: str) -> bool:
        if self.method not in ("*", method):
            return False
        found = self.pattern.search(path)
        if found is None:
            return False
        # The limiter reads and writes the window right after this call, without awaiting.
        self._key = found.group(1) if found.groups() else found.group(0)
        return True

    def _window(self) -> list[float]:
        return self._windows.setdefault(self._key, [0.0, 0.0])

    @property  # type: ignore[override]
    def window_start(self) -> float:
        return self._window()[0]

    @window_start.setter
    def window_start(self, value: float) -> None:
        self._window()[0] = value

    @property  # type: ignore[override]
    def count(self) -> int:
        return int(self._window()[1])

    @count.setter
    def count(self, value: int) -> None:
        self._window()[1] = value


def install_discord_limits(discord: FakeDiscord) -> None:
    """Put the benchmark's rate limits (LIMITS_TEXT) on `discord`."""
    per_token = KeyedRateLimitRule(
        method="*",
        pattern=re.compile(TOKEN_ROUTE),
        limit=TOKEN_LIMIT,
        per=TOKEN_WINDOW_S,
        honest=False,
        scope="user",
        is_global=False,
        bucket=secrets.token_hex(8),
    )
    discord.rate_limits.append(per_token)
    discord.set_rate_limit("*", BOT_TOKEN_ROUTES, limit=GLOBAL_LIMIT_PER_S, per=1.0, is_global=True)
