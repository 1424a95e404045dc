"""Discord's rate limits as bot authors observe them, selectable per test and benchmark.

`DISCORD_PROTOCOL.md` §8.1 lists what clients report; Discord itself only promises that
buckets exist, that routes may share one, and that the headers tell. The models:

- `CHANNEL_WRITES` (a): one bucket per channel, shared by bot-token message writes
  (`POST /channels/{id}/messages`, `PATCH`/`DELETE …/messages/{mid}`) and interaction-token
  message writes (`/webhooks/{app}/{token}` follow-ups, `…/messages/@original` and
  `…/messages/{mid}` edits and deletes) of interactions in that channel: 5 per 5 s.
- `GUILD_WEBHOOKS` (b): one bucket per guild shared by every interaction-token write made
  from it (discord-api-docs#6753): 5 per 1 s.
- `PER_TOKEN` (c): one bucket per interaction token: 5 per 2 s (the older observation).
- `GLOBAL` (d): 50 requests per second for all bot-token routes together; interaction
  callbacks and interaction-token routes are exempt, as on Discord.

Every answer on a limited route carries `X-RateLimit-Limit/Remaining/Reset/Reset-After/
Bucket/Scope`, with the real `Remaining` (0 on the last request of a window). Where the
docs are silent, this fake decides:

- Bucket ids are opaque and, as Discord documents, exclude the top-level resource: the
  same id for every channel under (a), for every guild under (b), for every token under
  (c). A client must learn from `Remaining` which resource a bucket is kept per.
- When several buckets apply to one request, the answer's headers describe the one with
  the least remaining (ties: the one that resets last). A 429 names the bucket that
  refused.
- Windows are fixed: they start at the first request after the previous window ended.
- Interaction callbacks (`POST /interactions/{id}/{token}/callback`) count in none of the
  message buckets: Discord says interaction endpoints are exempt.
- The global limit answers no headers on success (Discord sends none either) and a 429
  with `X-RateLimit-Global: true` and `Scope: global` when exceeded.

Invalid requests (401, 403, and 429 other than `Scope: shared`) are counted per IP over a
sliding 10 minutes; past `invalid_limit` every request is refused with Cloudflare's
403 HTML page (no `Via` header) for `ban_s`, as Discord's temporary ban does.
"""

from __future__ import annotations

import enum
import hashlib
import math
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .server import FakeDiscord

JSON = dict[str, object]


class LimitModel(enum.Enum):
    CHANNEL_WRITES = "a"
    GUILD_WEBHOOKS = "b"
    PER_TOKEN = "c"
    GLOBAL = "d"


@dataclass
class BucketSpec:
    model: LimitModel
    limit: int
    per: float
    scope: str = "user"

    @property
    def bucket_id(self) -> str:
        return hashlib.sha1(f"fake-discord-{self.model.name}".encode()).hexdigest()[:16]


DEFAULT_SPECS: dict[LimitModel, BucketSpec] = {
    LimitModel.CHANNEL_WRITES: BucketSpec(LimitModel.CHANNEL_WRITES, 5, 5.0),
    LimitModel.GUILD_WEBHOOKS: BucketSpec(LimitModel.GUILD_WEBHOOKS, 5, 1.0),
    LimitModel.PER_TOKEN: BucketSpec(LimitModel.PER_TOKEN, 5, 2.0),
    LimitModel.GLOBAL: BucketSpec(LimitModel.GLOBAL, 50, 1.0, scope="global"),
}

INVALID_WINDOW_S = 600.0
DEFAULT_INVALID_LIMIT = 10_000
DEFAULT_BAN_S = 3600.0

_CHANNEL_MESSAGE = re.compile(r"^/channels/(\d+)/messages(?:/[^/]+)?$")
_TOKEN_ROUTE = re.compile(r"^/webhooks/(\d+)/([^/]+)(?:/messages/[^/]+)?$")
_CALLBACK = re.compile(r"^/interactions/")
_WRITES = frozenset({"POST", "PATCH", "DELETE"})


@dataclass
class _Window:
    start: float = -math.inf
    count: int = 0


@dataclass
class Verdict:
    """What the limits say of one request: a 429 (status, body, headers) or the headers of
    a request that goes through (empty when no limited bucket applies)."""

    refusal: tuple[int, JSON, dict[str, str]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    banned: bool = False


class DiscordLimits:
    """The selected models' buckets, their windows and the invalid-request budget."""

    def __init__(
        self,
        fake: FakeDiscord,
        models: Iterable[LimitModel],
        *,
        specs: dict[LimitModel, BucketSpec] | None = None,
        invalid_limit: int = DEFAULT_INVALID_LIMIT,
        ban_s: float = DEFAULT_BAN_S,
    ) -> None:
        self.fake = fake
        chosen = {**DEFAULT_SPECS, **(specs or {})}
        self.specs = [chosen[m] for m in models]
        self.invalid_limit = invalid_limit
        self.ban_s = ban_s
        self._windows: dict[tuple[LimitModel, str], _Window] = {}
        self._invalid: deque[float] = deque()
        self.invalid_peak = 0  # the most invalid requests seen in any 10 minutes
        self.banned_until = -math.inf
        self.refused: dict[LimitModel, int] = {m: 0 for m in LimitModel}

    # --- which buckets a request falls into ------------------------------------------------

    def _resources(self, method: str, path: str) -> list[tuple[BucketSpec, str]]:
        if method not in _WRITES and not any(s.model is LimitModel.GLOBAL for s in self.specs):
            return []
        if _CALLBACK.match(path):
            return []
        token_route = _TOKEN_ROUTE.match(path)
        channel_route = _CHANNEL_MESSAGE.match(path)
        found: list[tuple[BucketSpec, str]] = []
        for spec in self.specs:
            key = self._resource(spec, method, path, token_route, channel_route)
            if key is not None:
                found.append((spec, key))
        return found

    def _resource(
        self,
        spec: BucketSpec,
        method: str,
        path: str,
        token_route: re.Match[str] | None,
        channel_route: re.Match[str] | None,
    ) -> str | None:
        model = spec.model
        if model is LimitModel.GLOBAL:
            return None if token_route else "bot"
        if method not in _WRITES:
            return None
        if token_route is not None:
            record = self.fake.interaction_by_token(token_route.group(2))
            if model is LimitModel.PER_TOKEN:
                return token_route.group(2)
            if record is None:
                return None  # an unknown token is refused by the route itself
            if model is LimitModel.GUILD_WEBHOOKS:
                return f"guild:{record.guild_id}"
            return f"channel:{record.channel_id}"
        if channel_route is not None and model is LimitModel.CHANNEL_WRITES:
            return f"channel:{channel_route.group(1)}"
        return None

    # --- the verdict ---------------------------------------------------------------------

    def check(self, method: str, path: str) -> Verdict:
        now = self.fake.now()
        if now < self.banned_until:
            return Verdict(banned=True)
        applied: list[tuple[BucketSpec, _Window]] = []
        for spec, resource in self._resources(method, path):
            window = self._windows.setdefault((spec.model, resource), _Window())
            if now - window.start >= spec.per:
                window.start, window.count = now, 0
            if window.count >= spec.limit:
                self.refused[spec.model] += 1
                return Verdict(refusal=self._refusal(spec, window, now))
            applied.append((spec, window))
        for _spec, window in applied:
            window.count += 1
        shown = [(s, w) for s, w in applied if s.model is not LimitModel.GLOBAL]
        if not shown:
            return Verdict()
        spec, window = min(
            shown, key=lambda sw: (sw[0].limit - sw[1].count, -(sw[1].start + sw[0].per))
        )
        return Verdict(headers=self._headers(spec, window, now))

    def _headers(self, spec: BucketSpec, window: _Window, now: float) -> dict[str, str]:
        reset_after = max(window.start + spec.per - now, 0.001)
        return {
            "X-RateLimit-Limit": str(spec.limit),
            "X-RateLimit-Remaining": str(max(spec.limit - window.count, 0)),
            "X-RateLimit-Reset": f"{now + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": spec.bucket_id,
            "X-RateLimit-Scope": spec.scope,
        }

    def _refusal(
        self, spec: BucketSpec, window: _Window, now: float
    ) -> tuple[int, JSON, dict[str, str]]:
        reset_after = max(window.start + spec.per - now, 0.001)
        is_global = spec.model is LimitModel.GLOBAL
        body: JSON = {
            "message": "You are being rate limited.",
            "retry_after": round(reset_after, 3),
            "global": is_global,
        }
        headers = {
            **self._headers(spec, window, now),
            "Retry-After": str(max(1, math.ceil(reset_after))),
            "Via": "1.1 google",
        }
        if is_global:
            body["code"] = 0
            headers["X-RateLimit-Global"] = "true"
        return 429, body, headers

    # --- the invalid-request budget ---------------------------------------------------------

    def record_status(self, status: int, headers: dict[str, str]) -> None:
        """Count an answer towards the 10-minute invalid-request budget."""
        if status not in (401, 403, 429) or headers.get("X-RateLimit-Scope") == "shared":
            return
        now = self.fake.now()
        self._invalid.append(now)
        while self._invalid and self._invalid[0] <= now - INVALID_WINDOW_S:
            self._invalid.popleft()
        self.invalid_peak = max(self.invalid_peak, len(self._invalid))
        if len(self._invalid) >= self.invalid_limit:
            self.banned_until = now + self.ban_s


BAN_PAGE = (
    "<!DOCTYPE html><html><head><title>Access denied | discord.com used Cloudflare to "
    "restrict access</title></head><body>Error 1015: You are being rate limited.</body></html>"
)


def parse_models(text: str) -> list[LimitModel]:
    """'a+b+d' or 'abd' → the models, in order; '' → none."""
    letters = [c for c in text.lower() if c.isalpha()]
    return [LimitModel(c) for c in letters]
