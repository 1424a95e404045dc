"""fetch_image against real HTTP servers on 127.0.0.1: limits, redirects, refusals, timeouts.

No request may leave the machine. The httpx client in every test sits on `LoopbackOnly`,
a transport that lets through requests for 127.0.0.1, re-routes requests for one fake
*public* address (what the fake resolver hands out for test host names) to 127.0.0.1,
and fails the test on anything else. That lets the tests run with the production policy
(allow_private=False) and still prove that refused hops never reached the network.

Every test runs twice: with httpx's own transport underneath and with AiohttpTransport,
the one the bot downloads images with.
"""

from __future__ import annotations

import asyncio
import io
import re
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image

from bot.aiohttp_transport import AiohttpTransport
from bot.media import (
    FetchPolicy,
    MediaError,
    fetch_image,
    inspect_image,
    origin_of,
    resolve_host,
)

# Looks like an ordinary internet address to the policy; LoopbackOnly maps it to 127.0.0.1.
FAKE_PUBLIC_IP = "93.184.215.14"
PUBLIC_NAME = "cdn.example.test"
OTHER_PUBLIC_NAME = "other.test"
INTERNAL_NAME = "intranet.corp.test"

HUGE_BODY = 30 * 1024 * 1024
CHUNK = 64 * 1024
SMALL_LIMIT = 2 * 1024 * 1024


def make_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (12, 34, 56)).save(buf, format="PNG")
    return buf.getvalue()


PNG = make_png()


class LoopbackOnly(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[str] = []  # URL hosts the client actually tried to reach

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.seen.append(host)
        if host == FAKE_PUBLIC_IP:
            request.url = request.url.copy_with(host="127.0.0.1")
        elif host != "127.0.0.1":
            raise AssertionError(f"a request tried to leave loopback: {host}")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class FakeDNS:
    answers: dict[str, list[str]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers[host]


@dataclass
class Origin:
    """The aiohttp server and what it observed."""

    url: str
    port: int
    hits: Counter[str] = field(default_factory=Counter)
    host_headers: list[str] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    finished: dict[str, asyncio.Event] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


def build_app(origin: Origin) -> web.Application:
    async def png(request: web.Request) -> web.Response:
        origin.hits["png"] += 1
        origin.host_headers.append(request.headers.get("Host", ""))
        return web.Response(body=PNG, content_type="image/png")

    async def stream_body(
        request: web.Request, name: str, *, declare: int | None
    ) -> web.StreamResponse:
        origin.hits[name] += 1
        done = origin.finished.setdefault(name, asyncio.Event())
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        if declare is not None:
            response.content_length = declare
        else:
            response.enable_chunked_encoding()
        origin.sent[name] = 0
        try:
            await response.prepare(request)
            if declare is not None:
                await asyncio.wait_for(origin.stop.wait(), 5)
            chunk = b"\0" * CHUNK
            while origin.sent[name] < HUGE_BODY:
                await response.write(chunk)  # lazily: nothing is built up front
                origin.sent[name] += CHUNK
        except (ConnectionError, asyncio.CancelledError, TimeoutError):
            pass  # the client hung up, as it should
        finally:
            done.set()
        return response

    async def huge(request: web.Request) -> web.StreamResponse:
        return await stream_body(request, "huge", declare=None)

    async def declared_huge(request: web.Request) -> web.StreamResponse:
        return await stream_body(request, "declared_huge", declare=HUGE_BODY)

    async def redirect_chain(request: web.Request) -> web.Response:
        left = int(request.match_info["left"])
        origin.hits[f"chain{left}"] += 1
        if left == 0:
            return web.Response(body=PNG, content_type="image/png")
        raise web.HTTPFound(f"/chain/{left - 1}")

    async def redirect_to(request: web.Request) -> web.Response:
        origin.hits["redirect"] += 1
        raise web.HTTPFound(request.query["to"])

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="nope")

    async def slow(request: web.Request) -> web.Response:
        origin.hits["slow"] += 1
        await asyncio.wait_for(origin.stop.wait(), 5)  # far longer than any test's timeout
        return web.Response(body=PNG, content_type="image/png")

    async def drip(request: web.Request) -> web.StreamResponse:
        # Each byte arrives well within any per-read timeout; only a total bound stops it.
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(200):
            if origin.stop.is_set():
                break
            await response.write(b"x")
            await asyncio.sleep(0.05)
        return response

    app = web.Application()
    app.router.add_get("/png", png)
    app.router.add_get("/huge", huge)
    app.router.add_get("/declared-huge", declared_huge)
    app.router.add_get("/chain/{left}", redirect_chain)
    app.router.add_get("/redirect", redirect_to)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/drip", drip)
    return app


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    holder = Origin(url="", port=0)
    server = TestServer(build_app(holder), host="127.0.0.1")
    await server.start_server()
    assert server.port is not None
    holder.port = server.port
    holder.url = f"http://127.0.0.1:{server.port}"
    yield holder
    holder.stop.set()
    await server.close()


@pytest.fixture(params=["httpx", "aiohttp"])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[LoopbackOnly]:
    inner = httpx.AsyncHTTPTransport() if request.param == "httpx" else AiohttpTransport()
    guard = LoopbackOnly(inner)
    yield guard


@pytest.fixture
async def client(transport: LoopbackOnly) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=transport, trust_env=False) as http:
        yield http


@pytest.fixture
def dns() -> FakeDNS:
    return FakeDNS(
        {
            PUBLIC_NAME: [FAKE_PUBLIC_IP],
            OTHER_PUBLIC_NAME: [FAKE_PUBLIC_IP],
            INTERNAL_NAME: ["10.1.2.3"],
        }
    )


LOCAL = FetchPolicy(allow_private=True, timeout_s=5)
PUBLIC = FetchPolicy(timeout_s=5)


def public_url(origin: Origin, path: str) -> str:
    return f"http://{PUBLIC_NAME}:{origin.port}{path}"


# ----------------------------------------------------------------------------- happy paths


async def test_fetches_an_image_from_loopback_when_private_is_allowed(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    data = await fetch_image(f"{origin.url}/png", client=client, policy=LOCAL)
    assert data == PNG
    assert inspect_image(data).format == "PNG"


async def test_the_same_loopback_url_is_refused_by_the_default_policy(
    origin: Origin, client: httpx.AsyncClient, transport: LoopbackOnly
) -> None:
    with pytest.raises(MediaError, match="private or local") as excinfo:
        await fetch_image(f"{origin.url}/png", client=client, policy=FetchPolicy())
    assert "127.0.0.1" in excinfo.value.message
    assert transport.seen == [] and origin.hits["png"] == 0


async def test_a_public_name_is_fetched_from_the_address_that_was_checked(
    origin: Origin, client: httpx.AsyncClient, transport: LoopbackOnly, dns: FakeDNS
) -> None:
    data = await fetch_image(public_url(origin, "/png"), client=client, policy=PUBLIC, resolve=dns)
    assert data == PNG
    # The connection went to the resolved address (no second lookup that DNS could
    # answer differently), while the server still saw the real host name.
    assert transport.seen == [FAKE_PUBLIC_IP]
    assert origin.host_headers == [f"{PUBLIC_NAME}:{origin.port}"]


async def test_redirect_chain_within_the_limit_is_followed(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    data = await fetch_image(f"{origin.url}/chain/3", client=client, policy=LOCAL)
    assert data == PNG
    assert [origin.hits[f"chain{i}"] for i in (3, 2, 1, 0)] == [1, 1, 1, 1]


async def test_relative_redirect_is_resolved_against_the_current_url(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    data = await fetch_image(f"{origin.url}/redirect?to=png", client=client, policy=LOCAL)
    assert data == PNG


# ----------------------------------------------------------------------------- size limits


async def test_huge_body_is_cut_off_at_the_limit(origin: Origin, client: httpx.AsyncClient) -> None:
    policy = FetchPolicy(allow_private=True, max_bytes=SMALL_LIMIT, timeout_s=5)
    with pytest.raises(MediaError, match="larger than the 2 MB limit"):
        await fetch_image(f"{origin.url}/huge", client=client, policy=policy)
    await asyncio.wait_for(origin.finished["huge"].wait(), 5)
    # The server noticed the hang-up long before it could push all 30 MB.
    assert origin.sent["huge"] < HUGE_BODY // 3


async def test_declared_length_over_the_limit_is_refused_before_the_body(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    # The server sends headers and then holds the body back until the test ends: reading
    # any of it would hang into the timeout instead of failing on the size.
    policy = FetchPolicy(allow_private=True, max_bytes=SMALL_LIMIT, timeout_s=2)
    with pytest.raises(MediaError, match="larger than the 2 MB limit"):
        await fetch_image(f"{origin.url}/declared-huge", client=client, policy=policy)
    assert origin.sent["declared_huge"] == 0


@pytest.fixture
async def liar() -> AsyncIterator[tuple[str, dict[str, bytes]]]:
    """A raw TCP server sending hand-written responses whose headers do not match the body."""
    responses: dict[str, bytes] = {
        # Claims 1000 bytes, then keeps going with megabytes more.
        "/more": b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"A" * (4 * 1024 * 1024),
        # Claims 50 000 bytes, sends 10 and hangs up.
        "/less": b"HTTP/1.1 200 OK\r\nContent-Length: 50000\r\nConnection: close\r\n\r\n"
        + b"B" * 10,
        # Claims a terabyte; the body never comes.
        "/tera": b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n",
        # Not a length at all.
        "/junk": b"HTTP/1.1 200 OK\r\nContent-Length: -7\r\n\r\nxyz",
    }
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        request_line = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        path = request_line.split()[1].decode()
        try:
            writer.write(responses[path])
            await writer.drain()
            if path == "/less":
                writer.close()
            else:
                await asyncio.sleep(5)  # keep the connection open; the client must not wait
        except (ConnectionError, asyncio.CancelledError):
            pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", responses
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_lying_content_length_cannot_push_more_than_it_declared(
    liar: tuple[str, dict[str, bytes]], client: httpx.AsyncClient, transport: LoopbackOnly
) -> None:
    base, _ = liar
    started = time.monotonic()
    try:
        data = await fetch_image(f"{base}/more", client=client, policy=LOCAL)
    except MediaError as exc:
        # aiohttp parses the surplus arriving with the reply as a next reply, finds no
        # status line and rejects the whole read: stricter, and just as bounded.
        assert isinstance(transport.inner, AiohttpTransport)
        assert "Could not download" in exc.message
    else:
        assert data == b"A" * 1000
    assert time.monotonic() - started < 4


async def test_lying_content_length_short_body_is_an_error(
    liar: tuple[str, dict[str, bytes]], client: httpx.AsyncClient
) -> None:
    base, _ = liar
    with pytest.raises(MediaError, match=re.escape("Could not download the image from 127.0.0.1")):
        await fetch_image(f"{base}/less", client=client, policy=LOCAL)


async def test_absurd_or_invalid_content_length_is_refused_without_waiting(
    liar: tuple[str, dict[str, bytes]], client: httpx.AsyncClient
) -> None:
    base, _ = liar
    started = time.monotonic()
    with pytest.raises(MediaError, match="larger than the 25 MB limit"):
        await fetch_image(f"{base}/tera", client=client, policy=LOCAL)
    with pytest.raises(MediaError, match="Could not download"):
        await fetch_image(f"{base}/junk", client=client, policy=LOCAL)
    assert time.monotonic() - started < 4  # neither waited for the 5 s the server stalls


# ----------------------------------------------------------------------------- redirects


async def test_too_long_redirect_chain_is_refused(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    with pytest.raises(MediaError, match="redirected too many times"):
        await fetch_image(f"{origin.url}/chain/4", client=client, policy=LOCAL)
    # Four requests (the start plus three redirects followed), never the fifth.
    assert [origin.hits[f"chain{i}"] for i in (4, 3, 2, 1, 0)] == [1, 1, 1, 1, 0]

    no_redirects = FetchPolicy(allow_private=True, max_redirects=0, timeout_s=5)
    with pytest.raises(MediaError, match="redirected too many times"):
        await fetch_image(f"{origin.url}/chain/1", client=client, policy=no_redirects)


@pytest.mark.parametrize(
    ("target", "refused_host"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/", "169.254.169.254"),
        ("http://10.0.0.1/", "10.0.0.1"),
        (f"http://{INTERNAL_NAME}/admin", INTERNAL_NAME),
        ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1"),  # httpx normalises it
        ("http://127.0.0.1:{port}/png", "127.0.0.1"),  # the origin itself, but private
    ],
)
async def test_redirect_to_a_private_address_is_refused_before_connecting(
    origin: Origin,
    client: httpx.AsyncClient,
    transport: LoopbackOnly,
    dns: FakeDNS,
    target: str,
    refused_host: str,
) -> None:
    hop = httpx.URL(public_url(origin, "/redirect")).copy_merge_params(
        {"to": target.format(port=origin.port)}
    )
    with pytest.raises(MediaError, match="private or local") as excinfo:
        await fetch_image(str(hop), client=client, policy=PUBLIC, resolve=dns)
    assert refused_host in excinfo.value.message
    # Only the first, public hop was ever sent.
    assert transport.seen == [FAKE_PUBLIC_IP]
    assert origin.hits["redirect"] == 1 and origin.hits["png"] == 0


async def test_redirect_to_another_scheme_is_refused(
    origin: Origin, client: httpx.AsyncClient, transport: LoopbackOnly
) -> None:
    for target in ("file:///etc/passwd", "ftp://127.0.0.1/x.png", "gopher://127.0.0.1:70/"):
        with pytest.raises(MediaError, match="Only http:// and https://"):
            await fetch_image(f"{origin.url}/redirect?to={target}", client=client, policy=LOCAL)
    assert set(transport.seen) == {"127.0.0.1"} and len(transport.seen) == 3


async def test_allowed_hosts_apply_to_every_hop(
    origin: Origin, client: httpx.AsyncClient, transport: LoopbackOnly, dns: FakeDNS
) -> None:
    policy = FetchPolicy(allowed_hosts=frozenset({"example.test"}), timeout_s=5)
    assert await fetch_image(public_url(origin, "/png"), client=client, policy=policy, resolve=dns)

    with pytest.raises(MediaError, match=re.escape("Images from other.test are not accepted here")):
        await fetch_image(
            f"http://{OTHER_PUBLIC_NAME}:{origin.port}/png", client=client, policy=policy
        )
    elsewhere = f"http://{OTHER_PUBLIC_NAME}:{origin.port}/png"
    with pytest.raises(MediaError, match="not accepted here"):
        await fetch_image(
            public_url(origin, f"/redirect?to={elsewhere}"),
            client=client,
            policy=policy,
            resolve=dns,
        )
    assert origin.hits["png"] == 1 and origin.hits["redirect"] == 1
    assert OTHER_PUBLIC_NAME not in dns.asked  # refused before even resolving


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/image.png",
        "gopher://127.0.0.1:70/_GET",
        "data:image/png;base64,iVBORw0KGgo=",
        "javascript:alert(1)",
    ],
)
async def test_other_schemes_are_refused(
    url: str, client: httpx.AsyncClient, transport: LoopbackOnly
) -> None:
    with pytest.raises(MediaError, match="Only http:// and https://"):
        await fetch_image(url, client=client, policy=LOCAL)
    assert transport.seen == []


@pytest.mark.parametrize(
    "url", ["http://", "https:///path", "not a link", "http://user:pw@x.test/"]
)
async def test_malformed_links_are_refused(
    url: str, client: httpx.AsyncClient, transport: LoopbackOnly
) -> None:
    with pytest.raises(MediaError):
        await fetch_image(url, client=client, policy=LOCAL)
    assert transport.seen == []


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.0.0.5"],
        ["172.16.4.4"],
        ["192.168.1.1"],
        ["127.0.0.1"],
        ["169.254.169.254"],
        ["100.64.0.1"],  # carrier-grade NAT
        ["0.0.0.0"],
        ["224.0.0.1"],  # multicast
        ["240.0.0.1"],  # reserved
        ["::1"],
        ["::"],
        ["fe80::1"],
        ["fc00::1"],
        ["ff02::1"],
        ["::ffff:10.0.0.1"],  # IPv4-mapped
        ["64:ff9b::a00:1"],  # NAT64 of 10.0.0.1
        ["2002:a00:1::1"],  # 6to4 of 10.0.0.1
        [FAKE_PUBLIC_IP, "10.0.0.5"],  # one bad answer among good ones
    ],
)
async def test_names_resolving_to_non_public_addresses_are_refused(
    addresses: list[str], client: httpx.AsyncClient, transport: LoopbackOnly
) -> None:
    dns = FakeDNS({"sneaky.test": addresses})
    with pytest.raises(
        MediaError, match=re.escape("sneaky.test is a private or local network address")
    ):
        await fetch_image("https://sneaky.test/cat.png", client=client, policy=PUBLIC, resolve=dns)
    assert transport.seen == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::1]:8080/",
        "http://[::ffff:169.254.169.254]/",
        "http://0.0.0.0/",
    ],
)
async def test_literal_private_addresses_are_refused(
    url: str, client: httpx.AsyncClient, transport: LoopbackOnly
) -> None:
    with pytest.raises(MediaError, match="private or local"):
        await fetch_image(url, client=client, policy=PUBLIC)
    assert transport.seen == []


async def test_the_system_resolver_is_used_by_default(
    origin: Origin, client: httpx.AsyncClient, transport: LoopbackOnly
) -> None:
    assert any(a in ("127.0.0.1", "::1") for a in await resolve_host("localhost", 80))
    with pytest.raises(MediaError, match="localhost is a private or local network address"):
        await fetch_image(f"http://localhost:{origin.port}/png", client=client, policy=PUBLIC)
    assert transport.seen == []


async def test_unknown_host_gets_a_clear_message(client: httpx.AsyncClient, dns: FakeDNS) -> None:
    with pytest.raises(MediaError, match=re.escape("Could not find the image host nowhere.test")):
        await fetch_image("https://nowhere.test/a.png", client=client, policy=PUBLIC, resolve=dns)


@pytest.mark.parametrize("code", [404, 403, 500])
async def test_non_2xx_is_an_error_that_does_not_echo_the_url(
    code: int, origin: Origin, client: httpx.AsyncClient
) -> None:
    url = f"{origin.url}/status/{code}?token=SECRET-abc123"
    with pytest.raises(MediaError, match=f"answered HTTP {code}") as excinfo:
        await fetch_image(url, client=client, policy=LOCAL)
    assert "SECRET" not in excinfo.value.message and "/status" not in excinfo.value.message


# ----------------------------------------------------------------------------- time limits


async def test_slow_server_is_abandoned_at_the_timeout(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    policy = FetchPolicy(allow_private=True, timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(MediaError, match="took too long"):
        await fetch_image(f"{origin.url}/slow", client=client, policy=policy)
    assert time.monotonic() - started < 3
    assert origin.hits["slow"] == 1


async def test_drip_fed_body_is_bounded_by_the_total_timeout(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    # Per-read timeouts alone would wait the full 10 s of dripping.
    policy = FetchPolicy(allow_private=True, timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(MediaError, match="took too long"):
        await fetch_image(f"{origin.url}/drip", client=client, policy=policy)
    assert time.monotonic() - started < 3


# ------------------------------------------------------------------ the provider's own host


@pytest.fixture
async def elsewhere() -> AsyncIterator[Origin]:
    """A second loopback server: another port, so another origin than the provider's."""
    holder = Origin(url="", port=0)
    server = TestServer(build_app(holder), host="127.0.0.1")
    await server.start_server()
    assert server.port is not None
    holder.port, holder.url = server.port, f"http://127.0.0.1:{server.port}"
    yield holder
    holder.stop.set()
    await server.close()


def provider_policy(origin: Origin) -> FetchPolicy:
    """The production rule (no private addresses) plus the provider's own origin."""
    own = origin_of(origin.url)
    assert own is not None
    return FetchPolicy(timeout_s=5, private_origins=frozenset({own}))


async def test_the_providers_own_private_origin_is_fetched_and_no_other(
    origin: Origin, elsewhere: Origin, client: httpx.AsyncClient, transport: LoopbackOnly
) -> None:
    policy = provider_policy(origin)
    assert await fetch_image(f"{origin.url}/png", client=client, policy=policy) == PNG
    # The same loopback address on another port is another origin: refused, never sent.
    with pytest.raises(MediaError, match="private or local"):
        await fetch_image(f"{elsewhere.url}/png", client=client, policy=policy)
    # Another spelling of the same machine is another host, too.
    with pytest.raises(MediaError, match="private or local"):
        await fetch_image(
            f"http://[::ffff:127.0.0.1]:{origin.port}/png", client=client, policy=policy
        )
    assert origin.hits["png"] == 1 and elsewhere.hits["png"] == 0
    assert transport.seen == ["127.0.0.1"]


async def test_a_redirect_from_the_providers_origin_to_another_keeps_the_rule(
    origin: Origin, elsewhere: Origin, client: httpx.AsyncClient, transport: LoopbackOnly
) -> None:
    policy = provider_policy(origin)
    # Within its own origin a redirect is followed…
    assert await fetch_image(f"{origin.url}/chain/2", client=client, policy=policy) == PNG
    # …but one to another private origin is refused before connecting to it.
    hop = httpx.URL(f"{origin.url}/redirect").copy_merge_params({"to": f"{elsewhere.url}/png"})
    with pytest.raises(MediaError, match="private or local"):
        await fetch_image(str(hop), client=client, policy=policy)
    for target in ("http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/"):
        hop = httpx.URL(f"{origin.url}/redirect").copy_merge_params({"to": target})
        with pytest.raises(MediaError, match="private or local"):
            await fetch_image(str(hop), client=client, policy=policy)
    assert elsewhere.hits["png"] == 0
    assert set(transport.seen) == {"127.0.0.1"}
