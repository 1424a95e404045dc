"""Webhook sending for the fake providers: POST a task's JSON to its callback URL whenever
its state changes, as PiAPI (`webhook_config`), midjourney-proxy (`notifyHook`), Legnext and
Vtrix (`callback`) do.

The fakes compute state lazily from their clock, so the sender looks for changes itself: a
background task checks every tracked task each `tick` seconds of the fake's clock (with a
FakeClock: after each `advance()` that moves past the next tick), and `check()` may be
awaited to look at once. The state a task is created in is not posted (the create reply
carries it); every later change is, in order, one at a time (deterministic).

Knobs, for tests of the receiving side:
- `drop`: a predicate (task_id, payload) -> True to lose that delivery; `drop_all` loses all.
- `duplicate`: post every delivery twice.
- `reorder`: hold each change back and post it after the next one of the same task (so an
  older state arrives after a newer one).
- `concurrency`: posts in flight at once across tasks (default 1: strictly in order, and
  `check()` returns once they are all out; a load benchmark wants more, as real services
  post in parallel: then posts go out in the background, each task's in order, and the
  next look is not held up by them). `tick`: seconds between checks.
Every attempt is recorded in `deliveries`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.clock import Clock


@dataclass
class PushDelivery:
    task_id: str
    url: str
    payload: Any
    at: float
    status: int | None = None  # None: dropped, or the connection failed
    dropped: bool = False
    duplicate: bool = False
    late: bool = False  # posted after a newer state (the reorder knob)


@dataclass
class _Tracked:
    task_id: str
    url: str
    render: Callable[[], Any]  # the task JSON now, or None when it is gone
    wrap: Callable[[Any], Any]  # task JSON -> the posted body
    final: Callable[[Any], bool]
    headers: dict[str, str] = field(default_factory=dict)
    last_key: str | None = None
    held: Any = None  # a change held back by the reorder knob (already wrapped)


DEFAULT_TICK_S = 0.5


class WebhookSender:
    def __init__(self, clock: Clock, *, tick: float = DEFAULT_TICK_S) -> None:
        self.clock = clock
        self.tick = tick
        self.deliveries: list[PushDelivery] = []
        self.drop: Callable[[str, Any], bool] | None = None
        self.drop_all = False
        self.duplicate = False
        self.reorder = False
        self.concurrency = 1
        self._tracked: dict[str, _Tracked] = {}
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()
        self._gate: asyncio.Semaphore | None = None
        self._chains: dict[str, asyncio.Task[None]] = {}  # posts still going out, per task

    # --- lifecycle ---

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="fake-webhook-sender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        chains = list(self._chains.values())
        for chain in chains:
            chain.cancel()
        await asyncio.gather(*chains, return_exceptions=True)
        self._chains.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while True:
            await self.clock.sleep(self.tick)
            with contextlib.suppress(Exception):
                await self.check()

    # --- tracking ---

    def track(
        self,
        task_id: str,
        url: str,
        *,
        render: Callable[[], Any],
        final: Callable[[Any], bool],
        wrap: Callable[[Any], Any] = lambda task: task,
        headers: dict[str, str] | None = None,
    ) -> None:
        tracked = _Tracked(task_id, url, render, wrap, final, dict(headers or {}))
        current = render()
        tracked.last_key = _key(current) if current is not None else None
        self._tracked[task_id] = tracked

    @property
    def tracked(self) -> int:
        return len(self._tracked)

    def sent(self, task_id: str | None = None) -> list[PushDelivery]:
        """Deliveries that reached the receiver (any status), for one task or all."""
        return [
            d
            for d in self.deliveries
            if not d.dropped and (task_id is None or d.task_id == task_id)
        ]

    async def check(self) -> None:
        """Post every change since the last check (in task creation order)."""
        async with self._lock:
            work: list[tuple[_Tracked, list[tuple[Any, bool]]]] = []
            for tracked in list(self._tracked.values()):
                current = tracked.render()
                if current is None:
                    del self._tracked[tracked.task_id]
                    continue
                key = _key(current)
                final = tracked.final(current)
                posts: list[tuple[Any, bool]] = []  # (payload, late), in this order
                if key != tracked.last_key:
                    tracked.last_key = key
                    payload = tracked.wrap(current)
                    if self.reorder and tracked.held is None and not final:
                        tracked.held = payload  # goes out after the next change
                    else:
                        posts.append((payload, False))
                if tracked.held is not None and (posts or final):
                    held, tracked.held = tracked.held, None
                    posts.append((held, True))
                if final:
                    del self._tracked[tracked.task_id]
                if posts:
                    work.append((tracked, posts))
            if self.concurrency <= 1:
                for tracked, posts in work:
                    for payload, late in posts:
                        await self._deliver(tracked, payload, late=late)
                return
            # In parallel, and without holding up the next look: each task's posts follow
            # its earlier ones (a chain per task), at most `concurrency` in flight overall.
            if self._gate is None:
                self._gate = asyncio.Semaphore(self.concurrency)
            for tracked, posts in work:
                after = self._chains.get(tracked.task_id)
                chain = asyncio.create_task(self._post_in_turn(after, tracked, posts))
                self._chains[tracked.task_id] = chain
                chain.add_done_callback(functools.partial(self._chain_done, tracked.task_id))

    def _chain_done(self, task_id: str, chain: asyncio.Task[None]) -> None:
        if self._chains.get(task_id) is chain:
            del self._chains[task_id]

    async def _post_in_turn(
        self,
        after: asyncio.Task[None] | None,
        tracked: _Tracked,
        posts: list[tuple[Any, bool]],
    ) -> None:
        if after is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(after)
        assert self._gate is not None
        async with self._gate:
            for payload, late in posts:
                await self._deliver(tracked, payload, late=late)

    async def _deliver(self, tracked: _Tracked, payload: Any, *, late: bool = False) -> None:
        copies = 2 if self.duplicate else 1
        for n in range(copies):
            record = PushDelivery(
                tracked.task_id, tracked.url, payload, self.clock.time(), late=late
            )
            record.duplicate = n > 0
            self.deliveries.append(record)
            if self.drop_all or (self.drop is not None and self.drop(tracked.task_id, payload)):
                record.dropped = True
                continue
            record.status = await self._post(tracked, payload)

    async def _post(self, tracked: _Tracked, payload: Any) -> int | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        try:
            async with self._session.post(
                tracked.url,
                data=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json", **tracked.headers},
            ) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None


def _key(task: Any) -> str:
    return json.dumps(task, sort_keys=True, default=str)
