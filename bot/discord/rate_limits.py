"""Discord's rate-limit buckets, learned from its answers, and a gate that keeps to them.

Discord does not publish its limits: every answer names its bucket (`X-RateLimit-Bucket`),
what is left of it (`-Remaining`) and when it refills (`-Reset-After`), and different
routes may share one bucket. Bot authors report buckets kept per channel that both the
bot token and interaction tokens draw from, and interaction webhooks shared by a whole
guild (DISCORD_PROTOCOL.md §8.1). So nothing here is hard-coded but the documented global
limit; the rest is learned:

- **Which bucket a route falls into**: from the bucket id its answers carry. A route may
  fall into several (its answers name the most constrained one at the time).
- **What a bucket is kept per**: a bucket id excludes the resource it is counted for. A
  bucket starts out kept per the finest resource its route names (the interaction token,
  or the channel of a bot-token route). When an answer shows more of the bucket used than
  this bot sent to that resource in the window, someone else draws from it: the bucket is
  widened to the finest resource that explains what was used (own resource → channel → guild).
- **How much is left**: never more than the bucket's limit of our writes in any stretch of
  one window (Discord's windows start when it says, which no client sees), and never more
  than the last answer said was left until the reset it named.

`BucketLedger` holds that knowledge; `ratelimit_trace` hooks it into discord.py's aiohttp
session, so that every request discord.py makes (bot-token routes and interaction
webhooks alike: they share the session) is counted, learned from, and held back while
its buckets are empty. The publisher reserves room before it writes (`WriteQueue`, which
decides whose write goes first); any other write waits its turn at the gate.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import logging
import math
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

# Discord's documented global limit for bot-token routes; interaction routes are exempt.
GLOBAL_LIMIT_PER_S = 50
# The limit is per bot, whatever its processes: each of N paces at this much of 1/N of it,
# the rest room for a process that joined or left before the others heard of it.
GLOBAL_SHARE_SAFETY = 0.96
# Sends dispatched up to this long before the window Discord reports are counted in it:
# our clock starts a request slightly before Discord's does.
WINDOW_SLACK_S = 0.25
# The most of a window left for the way to Discord (see _Bucket.margin).
MAX_MARGIN = 0.2
# Interaction tokens live 15 minutes; remember where this many of them were used.
MAX_TOKENS = 20_000
# Every this many writes, the states of quiet resources are dropped.
PRUNE_EVERY = 1000

_API_PATH = re.compile(r"/api/v\d+(/.*)$")
_WEBHOOK = re.compile(r"^/webhooks/(\d+)/([^/]+)(/messages/[^/]+)?$")
_CHANNEL_MESSAGE = re.compile(r"^/channels/(\d+)/messages(/[^/]+)?$")
_SNOWFLAKE = re.compile(r"/\d{15,21}")
_CALLBACK = re.compile(r"^/interactions/")


class Level(enum.IntEnum):
    """The resource a bucket is counted per, finest first."""

    OWN = 0  # the route's own resource: its interaction token, or its channel
    CHANNEL = 1
    GUILD = 2
    BOT = 3


@dataclass(frozen=True)
class Write:
    """One request as far as limits go: its route and the resources it concerns."""

    route: str  # method and path template, e.g. "PATCH /channels/{id}/messages/{id}"
    major: str  # the route's own resource: interaction token, channel id, first id
    channel_id: str | None = None
    guild_id: str | None = None
    bot_token: bool = True  # counts against the global limit

    def resource(self, level: Level) -> str:
        if level >= Level.BOT:
            return "*"
        if level >= Level.GUILD and self.guild_id:
            return f"g{self.guild_id}"
        # A channel route's own resource is its channel: the same key as a token write
        # in that channel once a bucket is known to be kept per channel.
        if self.channel_id and (level >= Level.CHANNEL or self.major == self.channel_id):
            return f"c{self.channel_id}"
        return f"m{self.major}"


Key = tuple[str, str]  # (bucket id, resource)


@dataclass
class _Bucket:
    id: str
    limit: int
    period: float  # the longest Reset-After seen: the window's length
    level: Level
    scope: str = "user"
    # The routes seen to fall into it: their recent sends tell whom it is shared by.
    routes: set[str] = field(default_factory=set)
    next_look: float = 0.0  # widening evidence is looked at at most once a window
    # Of a window, the room left for the way to Discord; doubled by each 429.
    margin: float = 0.02


@dataclass
class _State:
    """One bucket as counted for one resource.

    Discord's windows are fixed, but start when the first request after the last window
    arrives, which a client cannot see: so we never send more than the bucket's limit in
    any stretch of one window (plus a margin for the way there). Any fixed window Discord
    keeps then holds at most the limit, wherever it starts. Answers add what we cannot
    count: a bucket Discord says is empty stays shut until the reset it names.
    """

    sends: deque[float] = field(default_factory=deque)  # ours, by when we sent them
    # What the last answer said was left (others may use the bucket too): `left`, less
    # what we sent after that answer's request, until Discord's reset.
    left: int = 0
    left_after: float = 0.0
    left_until: float = 0.0

    def sent_within(self, span: float, now: float) -> int:
        while self.sends and self.sends[0] <= now - span:
            self.sends.popleft()
        return len(self.sends)


@dataclass
class Ticket:
    """Room reserved for one request; settled by its answer."""

    write: Write
    keys: tuple[Key, ...]
    sent_at: float
    probe: bool = False
    used: bool = False


class BucketLedger:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        global_per_s: int = GLOBAL_LIMIT_PER_S,
        on_rate_limited: Callable[[str], None] | None = None,
    ) -> None:
        self._clock = clock
        self._global_per_s = global_per_s
        self._on_rate_limited = on_rate_limited
        self._route_buckets: dict[str, dict[str, None]] = {}  # route → bucket ids (ordered)
        self._buckets: dict[str, _Bucket] = {}
        self._states: dict[Key, _State] = {}
        self._probing: set[tuple[str, str]] = set()
        self._unbucketed: set[str] = set()  # routes whose answers name no bucket
        self._global_sends: deque[float] = deque()
        # Every write of the last few windows, (sent at, write): the evidence for widening,
        # also for a bucket found only now (its route was in it all along).
        self._recent: deque[tuple[float, Write]] = deque()
        self._longest_period = 1.0
        self._last_sent = 0.0
        self._reserved = 0
        self._global_until = 0.0
        self._tokens: OrderedDict[str, tuple[str | None, str | None]] = OrderedDict()
        self._channel_guild: dict[str, str] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._subscribers: list[Callable[[frozenset[Key]], None]] = []
        self._global_limited: list[Callable[[float], None]] = []
        self.rate_limited = 0
        self.widened = 0

    # --- where writes go ------------------------------------------------------------------

    def register_interaction(
        self, token: str, channel_id: int | None, guild_id: int | None
    ) -> None:
        """Remember which channel and guild an interaction token writes to."""
        channel = str(channel_id) if channel_id else None
        guild = str(guild_id) if guild_id else None
        self._tokens[token] = (channel, guild)
        self._tokens.move_to_end(token)
        while len(self._tokens) > MAX_TOKENS:
            self._tokens.popitem(last=False)
        if channel and guild:
            self._channel_guild[channel] = guild

    def register_channel(self, channel_id: int | str, guild_id: int | str | None) -> None:
        if guild_id:
            self._channel_guild[str(channel_id)] = str(guild_id)

    def classify(self, method: str, url: str) -> Write | None:
        """The Write a request to Discord's API is, or None for one that is not limited
        here (interaction callbacks, anything outside the API)."""
        found = _API_PATH.search(url.split("?", 1)[0])
        if found is None:
            return None
        path = found.group(1)
        if _CALLBACK.match(path):
            return None
        webhook = _WEBHOOK.match(path)
        if webhook is not None:
            return self.webhook_write(method, webhook.group(2), message=bool(webhook.group(3)))
        message = _CHANNEL_MESSAGE.match(path)
        if message is not None:
            return self.channel_write(method, message.group(1), message=bool(message.group(2)))
        first = re.search(r"\d{15,21}", path)
        return Write(f"{method} {_SNOWFLAKE.sub('/{id}', path)}", first.group(0) if first else "")

    def webhook_write(self, method: str, token: str, *, message: bool) -> Write:
        """An interaction-token write: a follow-up, or (`message`) an edit of one."""
        channel, guild = self._tokens.get(token, (None, None))
        tail = "/messages/{id}" if message else ""
        route = f"{method} /webhooks/{{app}}/{{token}}{tail}"
        return Write(route, token, channel, guild, bot_token=False)

    def channel_write(self, method: str, channel_id: str, *, message: bool) -> Write:
        """A bot-token message write in a channel: a post, or (`message`) an edit."""
        route = f"{method} /channels/{{id}}/messages{'/{id}' if message else ''}"
        return Write(route, channel_id, channel_id, self._channel_guild.get(channel_id))

    # --- the global limit, shared by the bot's processes --------------------------------

    @property
    def global_per_s(self) -> int:
        return self._global_per_s

    def set_global_share(self, processes: int) -> int:
        """Pace bot-token requests at this process's share of the bot's global limit when
        `processes` run (alone: all of it); the rate now in force."""
        if processes <= 1:
            rate = GLOBAL_LIMIT_PER_S
        else:
            rate = max(1, math.floor(GLOBAL_LIMIT_PER_S * GLOBAL_SHARE_SAFETY / processes))
        raised = rate > self._global_per_s
        self._global_per_s = rate
        if raised:
            self._notify(frozenset())  # room may have come free for any waiting write
        return rate

    def hold_global(self, retry_after: float) -> None:
        """Another process of the bot met the global limit: send no bot-token request for
        `retry_after` seconds either (the limit is the bot's, not the process's)."""
        if math.isfinite(retry_after) and retry_after > 0:
            self._global_until = max(self._global_until, self._clock() + retry_after)

    def on_global_limited(self, listener: Callable[[float], None]) -> None:
        """Call `listener(retry_after)` on each global 429 this process receives."""
        self._global_limited.append(listener)

    # --- room -----------------------------------------------------------------------------

    def keys(self, write: Write) -> tuple[Key, ...]:
        buckets = self._route_buckets.get(write.route, {})
        return tuple((b, write.resource(self._buckets[b].level)) for b in buckets)

    def _state(self, key: Key) -> _State:
        state = self._states.get(key)
        if state is None:
            # A bucket just found, or just widened: our recent writes to its routes and
            # resource were in it all along.
            bucket = self._buckets[key[0]]
            state = _State(
                deque(
                    at
                    for at, write in self._recent
                    if write.route in bucket.routes and write.resource(bucket.level) == key[1]
                )
            )
            self._states[key] = state
        return state

    @staticmethod
    def _span(bucket: _Bucket) -> float:
        """The stretch in which at most `limit` of our writes may go: a window, plus the
        way to Discord (our clock starts a request before Discord's does)."""
        return bucket.period * (1 + bucket.margin) + WINDOW_SLACK_S / 2

    def _key_wait(self, key: Key, now: float) -> float:
        bucket = self._buckets[key[0]]
        state = self._state(key)
        wait = 0.0
        if now < state.left_until:
            after = sum(1 for at in state.sends if at > state.left_after)
            if state.left - after <= 0:
                wait = state.left_until - now
        span = self._span(bucket)
        if state.sent_within(span, now) >= bucket.limit:
            wait = max(wait, state.sends[-bucket.limit] + span - now)
        return max(wait, 0.0)

    def wait_for(self, write: Write) -> tuple[float | None, tuple[Key, ...]]:
        """(seconds until `write` may be sent: 0 now, None until an answer comes; the keys
        that hold it back)."""
        now = self._clock()
        keys = self.keys(write)
        probing = (write.route, write.major) in self._probing
        if not keys and probing and write.route not in self._unbucketed:
            return None, ()  # the route's first answer will say what its bucket is
        wait = 0.0
        blocking: list[Key] = []
        for key in keys:
            key_wait = self._key_wait(key, now)
            if key_wait > 0:
                wait = max(wait, key_wait)
                blocking.append(key)
        if write.bot_token:
            global_wait = self._global_wait(now)
            if global_wait > 0:
                wait = max(wait, global_wait)
                blocking.append(("global", "*"))
        return wait, tuple(blocking)

    def _global_wait(self, now: float) -> float:
        # As for buckets (see _State): at most the limit in any second and the way there,
        # wherever Discord's second starts.
        span = 1.0 + WINDOW_SLACK_S
        sends = self._global_sends
        while sends and sends[0] <= now - span:
            sends.popleft()
        wait = self._global_until - now
        if len(sends) >= self._global_per_s:
            wait = max(wait, sends[-self._global_per_s] + span - now)
        return max(wait, 0.0)

    def reserve(self, write: Write) -> Ticket:
        """Count `write` as sent now (call only when `wait_for` said 0)."""
        # Strictly increasing: a send's time also says which came after an answer's.
        now = self._last_sent = max(self._clock(), self._last_sent + 1e-6)
        keys = self.keys(write)
        for key in keys:
            self._state(key).sends.append(now)
        probe = not keys
        if probe:
            self._probing.add((write.route, write.major))
        if write.bot_token:
            self._global_sends.append(now)
        self._reserved += 1
        if self._reserved % PRUNE_EVERY == 0:
            self._prune(now)
        self._recent.append((now, write))
        horizon = now - 2 * self._longest_period - WINDOW_SLACK_S
        while self._recent and self._recent[0][0] < horizon:
            self._recent.popleft()
        return Ticket(write, keys, now, probe=probe)

    def _prune(self, now: float) -> None:
        """Forget resources that are quiet: a bot runs for weeks through millions of tokens."""
        for key in [
            key
            for key, state in self._states.items()
            if now >= state.left_until
            and state.sent_within(self._span(self._buckets[key[0]]), now) == 0
        ]:
            del self._states[key]

    async def acquire(self, write: Write) -> Ticket:
        """Wait until `write` may be sent, then reserve it (writes other than the publisher's)."""
        while True:
            wait, _ = self.wait_for(write)
            if wait == 0:
                return self.reserve(write)
            changed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(changed)
            with contextlib.suppress(TimeoutError):
                # No answer pending (wait None) is re-checked every second at the latest.
                await asyncio.wait_for(changed, timeout=wait if wait is not None else 1.0)

    def release(self, ticket: Ticket) -> None:
        """Give back room reserved for a request that was never made."""
        if ticket.used:
            return
        ticket.used = True
        for key in ticket.keys:
            state = self._states.get(key)
            if state is not None and ticket.sent_at in state.sends:
                state.sends.remove(ticket.sent_at)
        with contextlib.suppress(ValueError):
            self._recent.remove((ticket.sent_at, ticket.write))
        if ticket.probe:
            self._probing.discard((ticket.write.route, ticket.write.major))
        self._notify(frozenset(ticket.keys))

    def subscribe(self, listener: Callable[[frozenset[Key]], None]) -> None:
        """Call `listener` with the keys an answer (or a release) touched: room may have
        come free in them. An empty set: a route's first answer, anything may have."""
        self._subscribers.append(listener)

    def _notify(self, keys: frozenset[Key]) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        for listener in self._subscribers:
            listener(keys)

    # --- learning from answers ------------------------------------------------------------

    def settle(self, ticket: Ticket, status: int | None, headers: Any) -> None:
        """Learn from the answer to `ticket` (status None: no answer came)."""
        now = self._clock()
        self._probing.discard((ticket.write.route, ticket.write.major))
        learned: Key | None = None
        try:
            if status is not None:
                learned = self._learn(ticket, status, headers, now)
        finally:
            touched = set(ticket.keys)
            if learned is not None:
                touched.add(learned)
            self._notify(frozenset(touched) if ticket.keys else frozenset())

    def _learn(self, ticket: Ticket, status: int, headers: Any, now: float) -> Key | None:
        """Learn from one answer; the key whose state it updated, if any."""
        if status == 429:
            self.rate_limited += 1
            scope = headers.get("X-RateLimit-Scope") or "unknown"
            if self._on_rate_limited is not None:
                self._on_rate_limited(scope)
            if headers.get("X-RateLimit-Global"):
                retry = _float(headers.get("Retry-After"), 1.0)
                self._global_until = max(self._global_until, now + retry)
                for listener in self._global_limited:
                    listener(retry)
                return None
        bucket_id = headers.get("X-RateLimit-Bucket")
        remaining = _int(headers.get("X-RateLimit-Remaining"))
        limit = _int(headers.get("X-RateLimit-Limit"))
        reset_after = _float(headers.get("X-RateLimit-Reset-After"), math.nan)
        if not bucket_id or remaining is None or not limit or math.isnan(reset_after):
            if not ticket.keys:
                self._unbucketed.add(ticket.write.route)  # no probing it one at a time
            return None
        write = ticket.write
        bucket = self._learn_bucket(bucket_id, write, limit, reset_after, headers)
        if not any(k[0] == bucket_id for k in ticket.keys):
            # The first answer of this route in this bucket: count its request in it.
            self._count_in(self._state((bucket_id, write.resource(bucket.level))), ticket)
        used = limit - remaining + (1 if status == 429 else 0)
        self._widen(bucket, write, used, now, reset_after, refused=status == 429)
        key = (bucket_id, write.resource(bucket.level))
        state = self._state(key)
        if status == 429:
            log.info(
                "Discord refused a write in bucket %s per %s (%s): %d of ours in its last "
                "window, Discord's resets in %.2f s",
                bucket_id,
                bucket.level.name.lower(),
                write.route,
                state.sent_within(self._span(bucket), now),
                reset_after,
            )
            # Our writes reached Discord closer together than we sent them: leave more room.
            bucket.margin = min(bucket.margin * 2, MAX_MARGIN)
        state.left = 0 if status == 429 else remaining
        state.left_after, state.left_until = ticket.sent_at, now + reset_after
        return key

    @staticmethod
    def _count_in(state: _State, ticket: Ticket) -> None:
        if ticket.sent_at not in state.sends:
            at = len(state.sends)
            while at and state.sends[at - 1] > ticket.sent_at:
                at -= 1
            state.sends.insert(at, ticket.sent_at)

    def _learn_bucket(
        self, bucket_id: str, write: Write, limit: int, reset_after: float, headers: Any
    ) -> _Bucket:
        bucket = self._buckets.get(bucket_id)
        if bucket is None:
            bucket = _Bucket(bucket_id, limit, reset_after, Level.OWN)
            self._buckets[bucket_id] = bucket
        bucket.limit = limit
        bucket.period = max(bucket.period, reset_after)
        bucket.scope = headers.get("X-RateLimit-Scope") or bucket.scope
        bucket.routes.add(write.route)
        self._longest_period = max(self._longest_period, bucket.period)
        self._route_buckets.setdefault(write.route, {})[bucket_id] = None
        return bucket

    def _widen(
        self,
        bucket: _Bucket,
        write: Write,
        used: int,
        now: float,
        reset_after: float,
        refused: bool,
    ) -> None:
        """Widen `bucket` when it shows more used than we sent to `write`'s resource.

        Our own count is generous (the last two windows: a request may reach Discord well
        after we started it) and the wider one strict (this window only), so a bucket is
        widened on evidence, never on clock skew. Buckets are kept per a token, a channel
        or a guild, never wider: what no level of ours explains is someone else's use.
        """
        if bucket.level >= Level.GUILD:
            return
        state = self._states.get((bucket.id, write.resource(bucket.level)))
        if state is not None and state.sent_within(self._span(bucket), now) >= used and not refused:
            return  # the usual case: our own writes explain it
        if now < bucket.next_look and not refused:
            return  # looked at the evidence this window already: the scan is not free
        bucket.next_look = now + bucket.period
        sends = [(at, w) for at, w in self._recent if w.route in bucket.routes]
        mine = _count(sends, write, bucket.level, since=now - 2 * bucket.period - WINDOW_SLACK_S)
        # A 429 is evidence only when we could not have emptied the bucket ourselves.
        if mine >= (bucket.limit if refused else used):
            return
        window_start = now + reset_after - bucket.period - WINDOW_SLACK_S
        for level in (Level.CHANNEL, Level.GUILD):
            if level <= bucket.level:
                continue
            if _count(sends, write, level, since=window_start) >= used or (
                refused and level is Level.GUILD
            ):
                log.info(
                    "Discord bucket %s is kept per %s (route %s)",
                    bucket.id,
                    level.name.lower(),
                    write.route,
                )
                bucket.level = level
                self.widened += 1
                return

    # --- what /metrics shows --------------------------------------------------------------

    def describe(self) -> dict[str, str]:
        """Bucket id → the resource it is counted per, for logs and tests."""
        return {b.id: b.level.name.lower() for b in self._buckets.values()}


def _count(
    sends: Iterable[tuple[float, Write]], write: Write, level: Level, *, since: float
) -> int:
    """Our sends since `since` to `write`'s resource at `level`."""
    resource = write.resource(level)
    return sum(1 for at, other in sends if at >= since and other.resource(level) == resource)


def _int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _float(value: Any, default: float) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return default
    return result if math.isfinite(result) else default


# --- the gate in discord.py's HTTP session ----------------------------------------------------

# Room the publisher reserved for the request it is about to make (see WriteQueue).
RESERVED: contextvars.ContextVar[Ticket | None] = contextvars.ContextVar(
    "discord_write_reserved", default=None
)


def ratelimit_trace(ledger: BucketLedger) -> aiohttp.TraceConfig:
    """An aiohttp TraceConfig for discord.py's session (`Client(http_trace=...)`): every
    request to the API is held until its buckets have room, and its answer is learned."""
    trace = aiohttp.TraceConfig()

    async def on_start(
        session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        write = ledger.classify(params.method, str(params.url))
        if write is None:
            ctx.ticket = None
            return
        reserved = RESERVED.get()
        if reserved is not None and not reserved.used and reserved.write.route == write.route:
            reserved.used = True  # a retry of the same call waits its turn like any other
            ctx.ticket = reserved
            return
        ctx.ticket = await ledger.acquire(write)

    async def on_end(
        session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        ticket = getattr(ctx, "ticket", None)
        if ticket is not None:
            ctx.ticket = None
            ledger.settle(ticket, params.response.status, params.response.headers)

    async def on_error(
        session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        ticket = getattr(ctx, "ticket", None)
        if ticket is not None:
            ctx.ticket = None
            ledger.settle(ticket, None, {})

    trace.on_request_start.append(on_start)
    trace.on_request_end.append(on_end)
    trace.on_request_exception.append(on_error)
    return trace
