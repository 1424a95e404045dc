"""ProviderHTTP over real loopback sockets: what reaches the server, and how each way a
reply can fail maps to a ProviderError (and whether the request is repeated).

The server is a scripted raw asyncio HTTP/1.1 server, so that it can also misbehave in
ways a real framework will not: close the connection after reading a request, or never
answer. Every request it reads is recorded, so each test can count what arrived.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from bot.providers.base import (
    MalformedReplyError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    SubmitOutcomeUnknownError,
)
from bot.providers.http import ProviderHTTP

KEY = "wire-test-secret"
OK = json.dumps({"code": 200, "data": {"task_id": "t-1", "status": "pending"}}).encode()


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    body: bytes = OK
    headers: dict[str, str] = field(default_factory=dict)


CLOSE = "close"  # read the request, then close the connection without a word
HANG = "hang"  # read the request, never answer
Action = Reply | str


class ScriptedServer:
    """Answers the n-th request with the n-th action; the last action repeats."""

    def __init__(self) -> None:
        self.actions: list[Action] = [Reply()]
        self.seen: list[Seen] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._stopping = asyncio.Event()

    def script(self, *actions: Action) -> None:
        self.actions = list(actions)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def start(self, sock: socket.socket | None = None) -> None:
        if sock is not None:
            self._server = await asyncio.start_server(self._handle, sock=sock)
        else:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def stop(self) -> None:
        self._stopping.set()
        for writer in list(self._writers):
            writer.close()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        await asyncio.sleep(0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, target, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (raw := await reader.readline()) not in (b"\r\n", b""):
                    name, value = raw.decode().split(":", 1)
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.seen.append(Seen(method, target, headers, body))
                action = self.actions.pop(0) if len(self.actions) > 1 else self.actions[0]
                if action == CLOSE:
                    writer.transport.abort()
                    return
                if action == HANG:
                    await self._stopping.wait()
                    return
                assert isinstance(action, Reply)
                head = [f"HTTP/1.1 {action.status} X", f"Content-Length: {len(action.body)}"]
                head += [f"{k}: {v}" for k, v in action.headers.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + action.body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    srv = ScriptedServer()
    await srv.start()
    yield srv
    await srv.stop()


class Sleeps:
    """A recording `sleep`: keeps the delays asked for and does not wait."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make_http(
    base_url: str,
    *,
    timeout: float = 2.0,
    sleep: Sleeps | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ProviderHTTP:
    return ProviderHTTP(
        base_url,
        headers={"x-api-key": KEY, "accept": "application/json"},
        timeout=timeout,
        attempts=3,
        backoff=0.01,
        sleep=sleep or Sleeps(),
        transport=transport,
    )


def free_port() -> int:
    """A loopback port with nothing listening on it (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- what reaches the server ---------------------------------------------------------------


@pytest.mark.parametrize("client", ["aiohttp", "httpx"])
@pytest.mark.parametrize("prefix", ["/api", "/api/"])
async def test_requests_reach_the_server_with_headers_body_and_prefix(
    server: ScriptedServer, client: str, prefix: str
) -> None:
    transport = httpx.AsyncHTTPTransport() if client == "httpx" else None
    http = make_http(server.url + prefix, transport=transport)
    body = {"prompt": "a lighthouse at dusk ✨", "n": 1}
    try:
        got = await http.request("GET", "/v1/task/abc")
        created = await http.request("POST", "/v1/task", json_body=body, creates=True)
    finally:
        await http.aclose()

    assert got == created == json.loads(OK)
    get, post = server.seen
    assert (get.method, get.target) == ("GET", "/api/v1/task/abc")
    assert (post.method, post.target) == ("POST", "/api/v1/task")
    for seen in (get, post):
        assert seen.headers["x-api-key"] == KEY
        assert seen.headers["accept"] == "application/json"
    assert get.body == b""
    assert post.headers["content-type"] == "application/json"
    assert json.loads(post.body.decode("utf-8")) == body
    assert http.requests_sent == 2


async def test_a_redirect_is_an_answer_not_followed(server: ScriptedServer) -> None:
    server.script(Reply(302, b"", {"Location": "/elsewhere"}))
    http = make_http(server.url)
    try:
        with pytest.raises(ProviderError) as caught:
            await http.request("GET", "/v1/task/abc")
    finally:
        await http.aclose()
    assert caught.value.http_status == 302
    assert [s.target for s in server.seen] == ["/v1/task/abc"]


# --- the connection never opens -------------------------------------------------------------


async def test_refused_connection_retries_a_create_then_is_unavailable() -> None:
    sleeps = Sleeps()
    http = make_http(f"http://127.0.0.1:{free_port()}", sleep=sleeps)
    try:
        with pytest.raises(ProviderUnavailableError) as caught:
            await http.request("POST", "/v1/task", json_body={"p": 1}, creates=True)
    finally:
        await http.aclose()
    assert http.requests_sent == 3
    assert len(sleeps.delays) == 2  # backed off between the three attempts
    assert caught.value.provider_text is not None
    assert "127.0.0.1" not in caught.value.provider_text


# --- the request leaves, no answer comes back -----------------------------------------------


async def test_connection_closed_without_answer_on_a_create_is_not_repeated(
    server: ScriptedServer,
) -> None:
    server.script(CLOSE, Reply())
    http = make_http(server.url)
    try:
        with pytest.raises(SubmitOutcomeUnknownError) as caught:
            await http.request("POST", "/v1/task", json_body={"p": 1}, creates=True)
    finally:
        await http.aclose()
    assert [s.method for s in server.seen] == ["POST"]
    assert http.requests_sent == 1
    assert caught.value.provider_text is not None
    assert "127.0.0.1" not in caught.value.provider_text and KEY not in caught.value.provider_text


async def test_connection_closed_without_answer_on_a_read_is_repeated(
    server: ScriptedServer,
) -> None:
    server.script(CLOSE, Reply())
    http = make_http(server.url)
    try:
        assert await http.request("GET", "/v1/task/abc") == json.loads(OK)
    finally:
        await http.aclose()
    assert [s.target for s in server.seen] == ["/v1/task/abc", "/v1/task/abc"]


async def test_no_answer_within_timeout_on_a_create_is_unknown(server: ScriptedServer) -> None:
    server.script(HANG)
    http = make_http(server.url, timeout=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(SubmitOutcomeUnknownError):
            await http.request("POST", "/v1/task", json_body={"p": 1}, creates=True)
    finally:
        await http.aclose()
    assert time.monotonic() - started < 1.0
    assert len(server.seen) == 1


async def test_no_answer_within_timeout_on_a_read_is_retried(
    server: ScriptedServer,
) -> None:
    server.script(HANG, Reply())
    http = make_http(server.url, timeout=0.3)
    try:
        assert await http.request("GET", "/v1/task/abc") == json.loads(OK)
    finally:
        await http.aclose()
    assert len(server.seen) == 2


# --- answers that cannot be used ------------------------------------------------------------


async def test_unreadable_200_on_a_read_is_retried_then_malformed(server: ScriptedServer) -> None:
    server.script(Reply(200, b"<html>gateway says hi</html>"))
    http = make_http(server.url)
    try:
        with pytest.raises(MalformedReplyError) as caught:
            await http.request("GET", "/v1/task/abc")
    finally:
        await http.aclose()
    assert len(server.seen) == 3  # MalformedReplyError is transient: every attempt used
    assert caught.value.provider_text == "<html>gateway says hi</html>"


async def test_unreadable_200_on_a_create_is_unknown_and_not_repeated(
    server: ScriptedServer,
) -> None:
    server.script(Reply(200, b"\xff\xfe not json"))
    http = make_http(server.url)
    try:
        with pytest.raises(SubmitOutcomeUnknownError) as caught:
            await http.request("POST", "/v1/task", json_body={"p": 1}, creates=True)
    finally:
        await http.aclose()
    assert len(server.seen) == 1
    assert caught.value.provider_text is not None and "not json" in caught.value.provider_text


async def test_short_retry_after_is_waited_out(server: ScriptedServer) -> None:
    server.script(Reply(429, b'{"message":"slow down"}', {"Retry-After": "0.05"}), Reply())
    sleeps = Sleeps()
    http = make_http(server.url, sleep=sleeps)
    try:
        got = await http.request("POST", "/v1/task", json_body={"p": 1}, creates=True)
    finally:
        await http.aclose()
    assert got == json.loads(OK)
    assert len(server.seen) == 2
    assert sleeps.delays == [0.05]


async def test_long_retry_after_is_handed_to_the_caller(server: ScriptedServer) -> None:
    server.script(Reply(429, b'{"message":"slow down"}', {"Retry-After": "30"}), Reply())
    sleeps = Sleeps()
    http = make_http(server.url, sleep=sleeps)
    try:
        with pytest.raises(RateLimitedError) as caught:
            await http.request("GET", "/v1/task/abc")
    finally:
        await http.aclose()
    assert caught.value.retry_after == 30.0
    assert caught.value.http_status == 429
    assert len(server.seen) == 1
    assert sleeps.delays == []


async def test_5xx_on_a_create_is_repeated(server: ScriptedServer) -> None:
    server.script(Reply(500, b"oops"), Reply())
    http = make_http(server.url)
    try:
        got = await http.request("POST", "/v1/task", json_body={"p": 1}, creates=True)
    finally:
        await http.aclose()
    assert got == json.loads(OK)
    assert [s.method for s in server.seen] == ["POST", "POST"]
    assert server.seen[0].body == server.seen[1].body


# --- lifecycle ------------------------------------------------------------------------------


async def test_aclose_closes_the_session(server: ScriptedServer) -> None:
    http = make_http(server.url)
    await http.request("GET", "/v1/task/abc")
    session = http._session
    assert session is not None and not session.closed
    await http.aclose()
    assert session.closed
    with pytest.raises(RuntimeError):
        await http.request("GET", "/v1/task/abc")


def test_built_outside_a_loop_opens_its_session_inside_the_loop_that_uses_it() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    http = ProviderHTTP(f"http://127.0.0.1:{sock.getsockname()[1]}", headers={})
    assert http._session is None  # nothing loop-bound was made here

    async def use() -> object:
        srv = ScriptedServer()
        await srv.start(sock)
        try:
            return await http.request("GET", "/x")
        finally:
            await http.aclose()
            await srv.stop()

    assert asyncio.run(use()) == json.loads(OK)
