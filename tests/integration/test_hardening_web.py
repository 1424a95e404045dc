"""The webhook server against hostile clients (issue 13, items 7-9): real sockets on
127.0.0.1, the real server, engine, PiAPI provider and SQLite store.

Timeouts are set small here (fractions of a second) so that the slow clients are cut off
within a bounded real-time wait; the refusal log's window runs on a FakeClock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.engine import Engine
from bot.metrics import Metrics
from bot.providers.piapi import PiAPIProvider
from bot.store import open_store
from bot.web import WebhookAuth, WebServer
from bot.web.server import MAX_JSON_DEPTH, parse_json
from tests.integration.test_webhooks import API_KEY, PUSH_SETTINGS, SECRET, TOKEN, free_port

HOOK_PATH = f"/webhook/piapi/{TOKEN}"
SLOW_S = 0.25  # the slow client's pause between two writes
# Longest real-time wait for the server to hang up on a slow client.
CUT_OFF_LIMIT_S = 5.0

Serve = Callable[..., AbstractAsyncContextManager[tuple[WebServer, int, Metrics]]]


@pytest.fixture
def serve(tmp_path: Path) -> Serve:
    """serve(**WebServer options) -> (server, port, metrics), all of it stopped at exit."""

    @asynccontextmanager
    async def run(**options: Any) -> AsyncIterator[tuple[WebServer, int, Metrics]]:
        clock = options.pop("clock", FakeClock())
        port = free_port()
        # The provider is never called: nothing here reaches a known job.
        provider = PiAPIProvider(api_key=API_KEY, base_url="http://127.0.0.1:9")
        store = await open_store(f"sqlite:///{tmp_path / 'jobs.db'}")
        metrics = Metrics()
        engine = Engine(provider, store.jobs, clock=clock, settings=PUSH_SETTINGS, metrics=metrics)
        server = WebServer(
            "127.0.0.1",
            port,
            engine=engine,
            metrics=metrics,
            provider=provider,
            auth=WebhookAuth(provider="piapi", token=TOKEN, header_secret=SECRET),
            clock=clock,
            **options,
        )
        await engine.start()
        await server.start()
        try:
            yield server, port, metrics
        finally:
            await server.stop()
            await engine.stop()
            await provider.aclose()
            await store.close()

    return run


def request_head(path: str = HOOK_PATH, length: int = 0) -> list[bytes]:
    return [
        f"POST {path} HTTP/1.1\r\n".encode(),
        b"Host: 127.0.0.1\r\n",
        b"Content-Type: application/json\r\n",
        f"x-webhook-secret: {SECRET}\r\n".encode(),
        f"Content-Length: {length}\r\n".encode(),
        b"\r\n",
    ]


async def raw_post(port: int, body: bytes, path: str = HOOK_PATH) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"".join(request_head(path, len(body))) + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        rest = await asyncio.wait_for(reader.read(65536), 10)
        return int(status_line.split()[1]), rest
    finally:
        writer.close()


async def drip(port: int, pieces: list[bytes]) -> tuple[float, bytes]:
    """Send `pieces` one every SLOW_S until the server hangs up; (seconds taken, reply)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    reply = b""
    try:
        for piece in pieces:
            if reader.at_eof():
                break
            try:
                writer.write(piece)
                await writer.drain()
            except ConnectionError:
                break
            try:
                reply += await asyncio.wait_for(reader.read(65536), SLOW_S)
            except TimeoutError:
                continue
        # Whatever was left: the server must close within the limit, not the client.
        async with asyncio.timeout(CUT_OFF_LIMIT_S):
            while chunk := await reader.read(65536):
                reply += chunk
    except ConnectionError:
        pass
    finally:
        writer.close()
    return time.monotonic() - started, reply


# --- item 7: nesting ---------------------------------------------------------------------------


def test_parse_json_bounds_nesting_without_recursing() -> None:
    assert parse_json(b'{"a": [1, {"b": "[[[[{{{{"}]}') == {"a": [1, {"b": "[[[[{{{{"}]}
    at_limit = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert parse_json(at_limit.encode()) is not None
    for deep in (MAX_JSON_DEPTH + 1, 5_000, 200_000):
        with pytest.raises(ValueError, match="nested"):
            parse_json(("[" * deep + "]" * deep).encode())
    # Brackets inside strings (escaped quotes too) do not count; UTF-16 is read as json does.
    assert parse_json(json.dumps({"s": '\\"' + "[" * 500}).encode()) == {"s": '\\"' + "[" * 500}
    assert parse_json(json.dumps([[1]]).encode("utf-16")) == [[1]]


@pytest.mark.parametrize("opener", ["[", '{"a":'])
async def test_deeply_nested_json_is_answered_400_not_500(serve: Serve, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    async with serve() as (_server, port, metrics):
        for depth in (MAX_JSON_DEPTH + 1, 2_000, 100_000):
            body = (opener * depth + "1" + closer * depth).encode()
            status, reply = await raw_post(port, body)
            assert status == 400, reply
            assert b"nested too deeply" in reply
        assert metrics.webhooks.value(provider="piapi", outcome="malformed") == 3
        # The server is still serving: a flat non-task body gets its ordinary answer.
        assert (await raw_post(port, b'{"hello": "world"}'))[0] == 400


# --- item 8: slow clients ------------------------------------------------------------------------


async def test_a_client_dripping_headers_is_cut_off(serve: Serve) -> None:
    async with serve(header_timeout_s=0.6, body_timeout_s=0.6) as (_server, port, _metrics):
        # One header line per SLOW_S, far more lines than the timeout allows.
        head = request_head()[:-1]
        pieces = head + [f"X-Slow-{n}: y\r\n".encode() for n in range(60)]
        taken, reply = await drip(port, pieces)
        assert taken < 0.6 + CUT_OFF_LIMIT_S, taken
        assert taken < len(pieces) * SLOW_S / 2, "the server, not the client, ended it"
        assert b"200" not in reply


async def test_many_slow_connections_are_all_closed(serve: Serve) -> None:
    async with serve(header_timeout_s=0.5, body_timeout_s=0.5) as (_server, port, _metrics):
        pieces = request_head()[:2] + [f"X-Slow-{n}: y\r\n".encode() for n in range(60)]
        results = await asyncio.gather(*(drip(port, pieces) for _ in range(30)))
        assert all(taken < 0.5 + CUT_OFF_LIMIT_S for taken, _ in results), results


async def test_a_client_dripping_its_body_gets_408(serve: Serve) -> None:
    async with serve(header_timeout_s=5.0, body_timeout_s=0.6) as (_server, port, metrics):
        body = json.dumps({"data": {"task_id": "x" * 40}}).encode()
        pieces = [b"".join(request_head(length=len(body)))] + [bytes([b]) for b in body]
        taken, reply = await drip(port, pieces)
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert taken < 0.6 + CUT_OFF_LIMIT_S, taken
        assert metrics.webhooks.value(provider="piapi", outcome="timeout") == 1


async def test_an_idle_connection_is_closed(serve: Serve) -> None:
    async with serve(header_timeout_s=0.5) as (_server, port, _metrics):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            async with asyncio.timeout(CUT_OFF_LIMIT_S):
                assert await reader.read() == b""  # closed by the server, nothing sent
        finally:
            writer.close()


async def test_a_prompt_client_is_unaffected_by_the_timeouts(serve: Serve) -> None:
    async with serve(header_timeout_s=0.5, body_timeout_s=0.5) as (_server, port, _metrics):
        notice = json.dumps({"type": "mj_penalty_triggered", "time": 1, "detail": {}}).encode()
        status, reply = await raw_post(port, notice)
        assert status == 200, reply


# --- item 9: the refusal log -----------------------------------------------------------------


async def test_refusals_log_one_line_then_a_count_per_window(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    caplog.set_level(logging.WARNING, logger="bot.web.server")
    async with serve(clock=clock, refusal_log_window_s=60.0) as (_server, port, metrics):
        for n in range(40):
            assert (await raw_post(port, b"{}", path=f"/webhook/piapi/wrong-{n}"))[0] == 404
        assert len(caplog.records) == 1
        assert "refused (404)" in caplog.records[0].getMessage()
        clock.advance(60.0)
        for _ in range(20):  # the summary task wakes on the clock; give it its turn
            await asyncio.sleep(0)
        assert len(caplog.records) == 2
        assert "39 more webhook post(s) refused" in caplog.records[1].getMessage()
        # A new window starts with a new first line.
        assert (await raw_post(port, b"{}", path="/webhook/piapi/wrong-again"))[0] == 404
        assert len(caplog.records) == 3
        assert metrics.webhooks.value(provider="piapi", outcome="forbidden") == 41
    joined = " ".join(r.getMessage() for r in caplog.records)
    assert "wrong-" not in joined and TOKEN not in joined
