"""One small aiohttp server: the webhook receiver (push mode), /metrics and /healthz.

    POST /webhook/<provider>/<token>   a provider's report of a job (PROVIDERS.md §1.5, §2-4)
    GET  /metrics                      Prometheus text format 0.0.4
    GET  /healthz                      200 {"status": "ok", ...} or 503

Webhooks are authenticated by the secret token in the path (mj-proxy, Vtrix and Legnext
send no secret of their own); PiAPI must also echo the secret in `x-webhook-secret`. Both
are compared in constant time. A wrong token answers 404 and a wrong secret 401, before the
body is read; bodies above `max_body` answer 413. A post that authenticates but cannot be
read answers 400 (so does JSON nested deeper than `MAX_JSON_DEPTH`, refused before the
parser recurses); one about a job the bot does not know answers 200 (so that the provider
stops retrying) and is counted. With several processes on PostgreSQL, one about a job
another process runs is answered once it is stored for that owner (or the job taken over
from a dead one: bot/engine/forwarding.py), 503 when it cannot be stored. Neither the
token, the secret nor the body is ever logged.

Slow clients are cut off: headers must be complete within `header_timeout_s` of the
connection (or of the previous answer on a kept-alive one) and a body within
`body_timeout_s` (408). Refusals are logged as one line, then counted and summed up once a
window (a flood of wrong tokens writes two lines a minute, not one per post).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from aiohttp import web

from bot.clock import Clock, SystemClock
from bot.domain import ProviderSnapshot
from bot.engine import Engine
from bot.metrics import Metrics
from bot.providers.base import PushProvider
from bot.store.base import StorageHealth, StoreError

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # 1 MiB: a task object is a few kB
GATEWAY_GRACE_S = 60.0
SECRET_HEADER = "x-webhook-secret"
# A task object nests a handful of levels; the json module recurses once per level.
MAX_JSON_DEPTH = 64
# A provider's sender writes its headers at once; seconds, from the connection (or the
# previous answer) to the end of the headers, and for the whole body.
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 30.0
# A refused post writes one line; the rest of this window's refusals are summed up at its end.
REFUSAL_LOG_WINDOW_S = 60.0
# After an answer sent before the body was read, how long the rest of it may still drain.
LINGER_S = 2.0
# Distinct senders told apart in one window's summary (beyond it: "at least").
MAX_REMOTES_COUNTED = 1024

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# A post about a job this process does not run: stored for its owner, or taken over (issue
# 17, bot/engine/forwarding.py). Gets the parsed body and its snapshot; returns the outcome.
Forward = Callable[[Any, ProviderSnapshot], Awaitable[str]]


class TooDeep(ValueError):
    """JSON nested deeper than the limit."""


def parse_json(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads, refusing (TooDeep) nesting past `max_depth` before the parser recurses.

    The depth is read from the brackets outside strings, without recursion, so no body can
    drive the parser into a RecursionError. Strings are lexed as JSON lexes them, so where
    the two could disagree the parser stops at that point with its own error first.
    """
    text = raw.decode(json.detect_encoding(raw), "surrogatepass")  # as json.loads does
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    if brackets and max(accumulate(map(_DEPTH_STEP.__getitem__, brackets))) > max_depth:
        raise TooDeep(f"nested more than {max_depth} levels deep")
    return json.loads(text)


class RefusalLog:
    """Logs the first refused post of a window, then only a count at the window's end."""

    def __init__(self, clock: Clock, window_s: float = REFUSAL_LOG_WINDOW_S) -> None:
        self._clock = clock
        self._window_s = window_s
        self._counts: Counter[int] = Counter()
        self._remotes: set[str] = set()
        self._summary: asyncio.Task[None] | None = None

    def note(self, status: int, remote: str | None) -> None:
        if self._summary is None:
            log.warning(
                "webhook refused (%d) from %s; further refusals in the next %.0f s are counted",
                status,
                remote,
                self._window_s,
            )
            self._summary = asyncio.ensure_future(self._summarise_later())
            return
        self._counts[status] += 1
        if len(self._remotes) < MAX_REMOTES_COUNTED:  # a flood from many hosts stays small
            self._remotes.add(remote or "?")

    async def _summarise_later(self) -> None:
        await self._clock.sleep(self._window_s)
        self._summary = None
        self.flush()

    def flush(self) -> None:
        """Log what was counted since the window's first line, and start afresh."""
        total = sum(self._counts.values())
        if total:
            by_status = ", ".join(f"{n} × {code}" for code, n in sorted(self._counts.items()))
            remotes = len(self._remotes)
            log.warning(
                "%d more webhook post(s) refused in %.0f s (%s) from %s%d address(es)",
                total,
                self._window_s,
                by_status,
                "at least " if remotes >= MAX_REMOTES_COUNTED else "",
                remotes,
            )
        self._counts.clear()
        self._remotes.clear()

    async def close(self) -> None:
        if self._summary is not None:
            self._summary.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._summary
            self._summary = None
        self.flush()


@dataclass
class WebhookAuth:
    """What a post must carry: the path token, and for PiAPI also the header secret."""

    provider: str
    token: str
    header_secret: str | None = None


class GatewayWatch:
    """Whether the Discord gateway is connected, and since when it has been down."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.connected = False
        self.down_since: float | None = clock.time()

    def up(self) -> None:
        self.connected = True
        self.down_since = None

    def down(self) -> None:
        if self.connected or self.down_since is None:
            self.down_since = self._clock.time()
        self.connected = False

    def down_for(self) -> float:
        if self.connected or self.down_since is None:
            return 0.0
        return max(0.0, self._clock.time() - self.down_since)


class WebServer:
    """Serves whichever of the three parts it is given, on one host:port."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        engine: Engine,
        metrics: Metrics | None = None,
        provider: PushProvider | None = None,
        auth: WebhookAuth | None = None,
        gateway: GatewayWatch | None = None,
        serve_metrics: bool = False,
        max_body: int = MAX_BODY,
        clock: Clock | None = None,
        header_timeout_s: float = HEADER_TIMEOUT_S,
        body_timeout_s: float = BODY_TIMEOUT_S,
        refusal_log_window_s: float = REFUSAL_LOG_WINDOW_S,
        shards: list[int] | None = None,
        forward: Forward | None = None,
    ) -> None:
        if (provider is None) != (auth is None):
            raise ValueError("the webhook receiver needs both a provider and its auth")
        self.host, self.port = host, port
        self._engine = engine
        self._metrics = metrics
        self._provider = provider
        self._auth = auth
        self._gateway = gateway
        self._shards = shards  # None: unsharded
        self._forward = forward
        self._max_body = max_body
        self._header_timeout_s = header_timeout_s
        self._body_timeout_s = body_timeout_s
        self._refusals = RefusalLog(clock or SystemClock(), refusal_log_window_s)
        self.app = web.Application(client_max_size=max_body)
        if provider is not None:
            self.app.router.add_post("/webhook/{provider}/{token}", self._webhook)
        if serve_metrics:
            self.app.router.add_get("/metrics", self._metrics_page)
            self.app.router.add_get("/healthz", self._healthz)
        self._runner: web.AppRunner | None = None

    @property
    def bound_port(self) -> int:
        """The port actually listened on (useful with port 0)."""
        if self._runner is None:
            raise RuntimeError("not started")
        for site in self._runner.sites:
            server = getattr(site, "_server", None)
            sockets = getattr(server, "sockets", None) or []
            for sock in sockets:
                return int(sock.getsockname()[1])
        return self.port

    async def start(self) -> None:
        # No access log: it would write the webhook path, and with it the secret token.
        # aiohttp's keep-alive timer also runs from the connection's start until a request's
        # headers are complete, so it is the header timeout (aiohttp has no other).
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            shutdown_timeout=1.0,
            keepalive_timeout=self._header_timeout_s,
            lingering_time=min(LINGER_S, self._body_timeout_s),
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("web server listening on %s:%d", self.host, self.bound_port)

    async def stop(self) -> None:
        await self._refusals.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- webhooks -------------------------------------------------------------------------

    def _count(self, outcome: str) -> None:
        if self._metrics is not None and self._auth is not None:
            self._metrics.webhooks.inc(provider=self._auth.provider, outcome=outcome)

    def _authorised(self, request: web.Request) -> int | None:
        """None when the post may go on, else the status to refuse it with."""
        auth = self._auth
        assert auth is not None
        provider = request.match_info["provider"]
        token = request.match_info["token"]
        # Both compared even when the first differs: the answer's timing tells nothing.
        provider_ok = hmac.compare_digest(provider.encode(), auth.provider.encode())
        token_ok = hmac.compare_digest(token.encode(), auth.token.encode())
        if not (provider_ok and token_ok):
            return 404
        if auth.header_secret is not None:
            sent = request.headers.get(SECRET_HEADER, "")
            if not hmac.compare_digest(sent.encode(), auth.header_secret.encode()):
                return 401
        return None

    async def _webhook(self, request: web.Request) -> web.Response:
        refusal = self._authorised(request)
        if refusal is not None:
            self._count("forbidden")
            self._refusals.note(refusal, request.remote)
            return _json(refusal, {"error": "not found" if refusal == 404 else "unauthorised"})
        if request.content_length is not None and request.content_length > self._max_body:
            self._count("too_large")
            return _json(413, {"error": "body too large"})
        try:
            async with asyncio.timeout(self._body_timeout_s):
                raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self._count("too_large")
            return _json(413, {"error": "body too large"})
        except TimeoutError:
            self._count("timeout")
            response = _json(408, {"error": "body not sent in time"})
            response.force_close()
            return response
        try:
            body: Any = parse_json(raw)
        except TooDeep:
            self._count("malformed")
            return _json(400, {"error": "body is nested too deeply"})
        except (ValueError, UnicodeDecodeError):
            self._count("malformed")
            return _json(400, {"error": "body is not JSON"})
        provider = self._provider
        assert provider is not None
        try:
            snapshot = provider.parse_push(body)
            if snapshot is not None:
                operation = self._engine.operation_for_ref(snapshot.ref)
                if operation is not None:
                    snapshot = provider.parse_push(body, operation=operation)
        except Exception:
            log.warning("webhook body from %s could not be read", provider.name, exc_info=True)
            snapshot = None
            self._count("malformed")
            return _json(400, {"error": "not a task"})
        if snapshot is None:
            notice = body.get("type") if isinstance(body, dict) else None
            if isinstance(notice, str):
                # PiAPI account notices (mj_penalty_triggered, mj_bot_banned, ...) matter.
                log.warning("%s account notice: %.80s", provider.name, notice)
                self._count("ignored")
                return _json(200, {"ok": True, "ignored": "notice"})
            self._count("malformed")
            return _json(400, {"error": "not a task"})
        return await self._ingest(body, snapshot, provider.name)

    async def _ingest(self, body: Any, snapshot: ProviderSnapshot, name: str) -> web.Response:
        outcome: str = await self._engine.ingest_outcome(snapshot)
        if outcome == "unknown_job" and self._forward is not None:
            try:  # another process's job: answered once stored for it, or taken over
                outcome = await self._forward(body, snapshot)
            except StoreError as exc:
                log.warning("webhook for another process's job not stored (%s)", exc)
                self._count("unavailable")
                return _json(503, {"error": "not stored; try again"})
        self._count(outcome)
        if outcome == "unknown_job":
            log.info("webhook for an unknown %s job ignored", name)
        return _json(200, {"ok": True, "outcome": outcome})

    # --- metrics and health ---------------------------------------------------------------

    async def _metrics_page(self, request: web.Request) -> web.Response:
        if self._metrics is None:
            return web.Response(status=404, text="metrics are off\n")
        return web.Response(
            body=self._metrics.render().encode("utf-8"),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    async def _healthz(self, request: web.Request) -> web.Response:
        engine_running = self._engine.running
        gateway_connected = self._gateway.connected if self._gateway is not None else True
        gateway_down_s = self._gateway.down_for() if self._gateway is not None else 0.0
        # A database that cannot take writes (file deleted or replaced, disk full) loses
        # every job and setting from then on: unhealthy, whatever else still works.
        jobs = self._engine.jobs
        storage_problem = jobs.storage_problem() if isinstance(jobs, StorageHealth) else None
        healthy = engine_running and gateway_down_s <= GATEWAY_GRACE_S and storage_problem is None
        return _json(
            200 if healthy else 503,
            {
                "status": "ok" if healthy else "unhealthy",
                "gateway_connected": gateway_connected,
                "gateway_down_s": round(gateway_down_s, 1),
                "engine_running": engine_running,
                "storage_ok": storage_problem is None,
                "storage_problem": storage_problem,
                "jobs_active": self._engine.active_count,
                "queue_length": self._engine.queue_length,
                "shards": self._shards,
                # Active jobs are all held here (a lost lease drops its job at once); leases
                # also cover ended jobs whose final is still due. null without leases.
                "jobs_held": self._engine.active_count,
                "leases_held": _leases_held(self._engine),
            },
        )


def _json(status: int, payload: dict[str, Any]) -> web.Response:
    return web.json_response(payload, status=status)


def _leases_held(engine: Engine) -> int | None:
    keeper = engine.keeper
    return None if keeper is None else len(keeper.leases.held())


def shards_run(shard_ids: list[int], shard_count: int | None) -> list[int] | None:
    """The shard ids this process runs: DISCORD_SHARD_IDS, else all of
    DISCORD_SHARD_COUNT, else None (unsharded)."""
    if shard_ids:
        return sorted(shard_ids)
    return list(range(shard_count)) if shard_count is not None else None


def register_engine_gauges(metrics: Metrics, engine: Engine) -> None:
    """Read jobs-by-state, the queue length and the lease figures from the engine at scrape
    time (the lease keeper counts takeovers and losses where they happen)."""
    metrics.jobs.source = lambda: {
        (("state", state),): float(count) for state, count in engine.state_counts().items()
    }
    metrics.queue_length.source = lambda: float(engine.queue_length)
    metrics.leases_held.source = lambda: float(_leases_held(engine) or 0)
    metrics.lease_takeovers.source = lambda: float(engine.keeper.takeovers if engine.keeper else 0)
    metrics.leases_lost.source = lambda: float(engine.keeper.lost if engine.keeper else 0)


def servers_for(
    *,
    webhook_listen: str,
    metrics_listen: str,
    engine: Engine,
    metrics: Metrics,
    provider: Any,
    auth: WebhookAuth | None,
    gateway: GatewayWatch | None,
    parse_listen: Callable[[str], tuple[str, int]],
    shard_ids: list[int] | None = None,
    shard_count: int | None = None,
    forward: Forward | None = None,
) -> list[WebServer]:
    """One server when both listen on the same address, else one per address."""
    servers: list[WebServer] = []
    shards = shards_run(shard_ids or [], shard_count)
    push = bool(webhook_listen) and auth is not None
    if push and not isinstance(provider, PushProvider):
        raise ValueError(f"{getattr(provider, 'name', 'this provider')} cannot read webhooks")
    if push:
        host, port = parse_listen(webhook_listen)
        servers.append(
            WebServer(
                host,
                port,
                engine=engine,
                metrics=metrics,
                provider=provider,
                auth=auth,
                gateway=gateway,
                serve_metrics=bool(metrics_listen) and metrics_listen == webhook_listen,
                shards=shards,
                forward=forward,
            )
        )
    if metrics_listen and not (push and metrics_listen == webhook_listen):
        host, port = parse_listen(metrics_listen)
        servers.append(
            WebServer(
                host,
                port,
                engine=engine,
                metrics=metrics,
                gateway=gateway,
                serve_metrics=True,
                shards=shards,
            )
        )
    return servers
