"""AiohttpTransport under httpx.AsyncClient, against real servers on 127.0.0.1.

An aiohttp.web server plays a well-behaved image host; a raw asyncio server sends the
broken replies (no answer, a body cut short, silence). TLS tests make a throwaway
certificate with the openssl command and are skipped where there is none. Nothing here
leaves the machine. tests/integration/test_media_download.py also runs all of its
fetch_image tests over this transport.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import pytest
from aiohttp import web
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.test_utils import TestServer

from bot.aiohttp_transport import AiohttpTransport
from bot.media import FetchPolicy, MediaError, fetch_image
from tests.integration.test_media_download import PNG

HUGE = 50 * 1024 * 1024
CHUNK = 64 * 1024
LIMIT = 1024 * 1024
IMAGE_HOST = "images.example.test"
LOCAL = FetchPolicy(allow_private=True, timeout_s=5)


@dataclass
class Origin:
    url: str = ""
    port: int = 0
    hits: dict[str, int] = field(default_factory=dict)
    headers: list[dict[str, str]] = field(default_factory=list)
    peers: list[object] = field(default_factory=list)
    transports: list[asyncio.BaseTransport] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    hung_up: dict[str, BaseException] = field(default_factory=dict)
    finished: dict[str, asyncio.Event] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def hit(self, name: str, request: web.Request) -> None:
        self.hits[name] = self.hits.get(name, 0) + 1
        self.headers.append(dict(request.headers))
        self.peers.append(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        self.transports.append(request.transport)  # type: ignore[arg-type]


def build_app(origin: Origin) -> web.Application:
    async def png(request: web.Request) -> web.Response:
        origin.hit("png", request)
        response = web.Response(body=PNG, content_type="image/png")
        response.set_cookie("session", "abc")  # must not come back: no cookie jar
        return response

    async def raw(request: web.Request) -> web.Response:
        origin.hit("raw", request)
        origin.bodies.append(request.raw_path.encode())
        return web.Response(body=PNG, content_type="image/png")

    async def redirect(request: web.Request) -> web.Response:
        origin.hit("redirect", request)
        raise web.HTTPFound(request.query.get("to", "/png"))

    async def echo(request: web.Request) -> web.Response:
        origin.hit("echo", request)
        origin.bodies.append(await request.read())
        return web.Response(body=b"ok")

    async def gzipped(request: web.Request) -> web.Response:
        origin.hit("gzip", request)
        body = gzip.compress(b"squeezed " * 1000)
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    async def stream(request: web.Request, name: str, *, declare: bool) -> web.StreamResponse:
        origin.hit(name, request)
        done = origin.finished.setdefault(name, asyncio.Event())
        origin.sent[name] = 0
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        if declare:
            response.content_length = HUGE
        else:
            response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            if declare:
                await asyncio.wait_for(origin.stop.wait(), 5)
            chunk = b"\0" * CHUNK
            while origin.sent[name] < HUGE:
                await response.write(chunk)
                origin.sent[name] += CHUNK
                await asyncio.sleep(0.001)  # 50 MB would take well over a second
        except (ConnectionError, asyncio.CancelledError, TimeoutError) as exc:
            origin.hung_up[name] = exc
        finally:
            done.set()
        return response

    async def huge(request: web.Request) -> web.StreamResponse:
        return await stream(request, "huge", declare=False)

    async def declared_huge(request: web.Request) -> web.StreamResponse:
        return await stream(request, "declared_huge", declare=True)

    app = web.Application()
    app.router.add_get("/png", png)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/raw/{name}", raw)
    app.router.add_post("/echo", echo)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/huge", huge)
    app.router.add_get("/declared-huge", declared_huge)
    return app


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    holder = Origin()
    server = TestServer(build_app(holder), host="127.0.0.1")
    await server.start_server()
    assert server.port is not None
    holder.port = server.port
    holder.url = f"http://127.0.0.1:{server.port}"
    yield holder
    holder.stop.set()
    await server.close()


@pytest.fixture
async def broken() -> AsyncIterator[str]:
    """A raw server: /close hangs up unanswered, /silent never answers, /short sends
    10 of 50 000 declared bytes and hangs up, /stall sends 10 and then nothing."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            request_line = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            path = request_line.split()[1].decode().partition("?")[0]
            if path == "/close":
                writer.close()
            elif path == "/silent":
                await asyncio.sleep(5)
            elif path == "/short":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 50000\r\n\r\n" + b"B" * 10)
                await writer.drain()
                writer.close()
            elif path == "/stall":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 50000\r\n\r\n" + b"B" * 10)
                await writer.drain()
                await asyncio.sleep(5)
        except (ConnectionError, asyncio.CancelledError):
            pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=AiohttpTransport(), trust_env=False) as http:
        yield http


@dataclass
class FakeDNS:
    answers: dict[str, list[str]]

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        return self.answers[host]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ----------------------------------------------------------------------------- downloads


def test_the_transport_can_be_built_outside_a_running_loop() -> None:
    # The publisher and the /describe cog build their clients before the loop runs.
    transport = AiohttpTransport()
    httpx.AsyncClient(transport=transport)
    assert transport._session is None


async def test_fetch_image_downloads_the_body_byte_exact(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    assert await fetch_image(f"{origin.url}/png", client=client, policy=LOCAL) == PNG
    assert await fetch_image(f"{origin.url}/png", client=client, policy=LOCAL) == PNG
    # Read to the end, the connection went back to the pool and was used again.
    assert len(origin.peers) == 2 and origin.peers[0] == origin.peers[1]


async def test_the_callers_host_header_is_sent_and_nothing_is_added(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    # fetch_image connects to the address it checked and names the host in Host.
    dns = FakeDNS({IMAGE_HOST: ["127.0.0.1"]})
    url = f"http://{IMAGE_HOST}:{origin.port}/png"
    assert await fetch_image(url, client=client, policy=LOCAL, resolve=dns) == PNG
    sent = origin.headers[0]
    assert sent["Host"] == f"{IMAGE_HOST}:{origin.port}"
    assert sent["Accept-Encoding"] == "identity"
    assert sent["User-Agent"].startswith("python-httpx/")  # httpx's, not aiohttp's


async def test_the_url_is_sent_exactly_as_given(origin: Origin, client: httpx.AsyncClient) -> None:
    # Signed CDN links break if an escape is rewritten (%7E to ~, %2F to /).
    path = "/raw/a%2Fb%7e.png?sig=abc%3D%3D&x=%7E&y=a+b&z=%20"
    assert await fetch_image(origin.url + path, client=client, policy=LOCAL) == PNG
    assert origin.bodies == [path.encode()]


async def test_the_transport_keeps_no_cookies(origin: Origin) -> None:
    # (An httpx client has a cookie jar of its own; the transport must not add a second.)
    transport = AiohttpTransport()
    for _ in range(2):
        response = await transport.handle_async_request(httpx.Request("GET", f"{origin.url}/png"))
        assert await response.aread() == PNG
        await response.aclose()
    await transport.aclose()
    assert "session=abc" in response.headers["set-cookie"]
    assert "Cookie" not in origin.headers[1]


async def test_redirects_are_answers_not_followed(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    response = await client.get(f"{origin.url}/redirect?to=/png")
    assert response.status_code == 302
    assert response.headers["location"] == "/png"
    assert origin.hits == {"redirect": 1}
    assert response.extensions["http_version"] == b"HTTP/1.1"


async def test_fetch_image_checks_every_redirect_target_itself(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    assert await fetch_image(f"{origin.url}/redirect?to=/png", client=client, policy=LOCAL) == PNG
    assert origin.hits == {"redirect": 1, "png": 1}

    # The target is another host than the one allowed: refused before it is contacted.
    only_loopback_ip = FetchPolicy(
        allow_private=True, allowed_hosts=frozenset({"127.0.0.1"}), timeout_s=5
    )
    elsewhere = f"http://localhost:{origin.port}/png"
    with pytest.raises(MediaError, match="Images from localhost are not accepted here"):
        await fetch_image(
            f"{origin.url}/redirect?to={elsewhere}", client=client, policy=only_loopback_ip
        )
    assert origin.hits == {"redirect": 2, "png": 1}


async def test_request_bodies_arrive_whole(origin: Origin, client: httpx.AsyncClient) -> None:
    async def parts() -> AsyncIterator[bytes]:
        yield b"streamed "
        yield b"body"

    assert (await client.post(f"{origin.url}/echo", content=b"plain body")).content == b"ok"
    assert (await client.post(f"{origin.url}/echo", content=parts())).content == b"ok"
    assert origin.bodies == [b"plain body", b"streamed body"]
    # httpx would have sent the generator chunked; it goes out with its length.
    assert origin.headers[1]["Content-Length"] == "13"
    assert "Transfer-Encoding" not in origin.headers[1]


async def test_bodies_arrive_undecoded_and_httpx_decodes_them(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    response = await client.get(f"{origin.url}/gzip")
    assert response.content == b"squeezed " * 1000
    # What was counted is what came over the wire.
    assert response.num_bytes_downloaded == len(gzip.compress(b"squeezed " * 1000))


# ----------------------------------------------------------------------------- size limits


async def test_an_endless_body_is_cut_off_and_the_connection_dropped(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    policy = FetchPolicy(allow_private=True, max_bytes=LIMIT, timeout_s=5)
    started = time.monotonic()
    with pytest.raises(MediaError, match="larger than the 1 MB limit"):
        await fetch_image(f"{origin.url}/huge", client=client, policy=policy)
    await asyncio.wait_for(origin.finished["huge"].wait(), 5)
    # The server's writes failed: the client hung up instead of draining 50 MB.
    assert isinstance(origin.hung_up.get("huge"), ConnectionError | asyncio.CancelledError)
    assert origin.sent["huge"] < HUGE // 4
    assert time.monotonic() - started < 3


async def test_closing_a_stream_early_drops_the_connection(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    async with client.stream("GET", f"{origin.url}/huge") as response:
        async for _chunk in response.aiter_raw():
            break
    await asyncio.wait_for(origin.finished["huge"].wait(), 5)
    assert "huge" in origin.hung_up
    # The next request gets a fresh connection and works.
    assert (await client.get(f"{origin.url}/png")).content == PNG
    assert origin.peers[0] != origin.peers[1]


async def test_a_declared_length_over_the_limit_is_refused_before_the_body(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    # The body is held back until the test ends: reading any would run into the timeout.
    policy = FetchPolicy(allow_private=True, max_bytes=LIMIT, timeout_s=2)
    started = time.monotonic()
    with pytest.raises(MediaError, match="larger than the 1 MB limit"):
        await fetch_image(f"{origin.url}/declared-huge", client=client, policy=policy)
    assert time.monotonic() - started < 1.5
    assert origin.sent["declared_huge"] == 0


# ----------------------------------------------------------------------------- failures


async def test_connection_refused_is_a_connect_error(client: httpx.AsyncClient) -> None:
    url = f"http://127.0.0.1:{free_port()}/a.png?token=SECRET"
    with pytest.raises(httpx.ConnectError) as excinfo:
        await client.get(url)
    assert excinfo.value.request.url == httpx.URL(url)
    assert "SECRET" not in str(excinfo.value)


async def test_a_hang_up_without_an_answer_is_an_http_error(
    broken: str, client: httpx.AsyncClient
) -> None:
    with pytest.raises(httpx.RemoteProtocolError) as excinfo:
        await client.get(f"{broken}/close?token=SECRET")
    assert "SECRET" not in str(excinfo.value)
    assert excinfo.value.request.url.path == "/close"


async def test_silence_is_a_read_timeout(broken: str, client: httpx.AsyncClient) -> None:
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        await client.get(f"{broken}/silent", timeout=httpx.Timeout(5, read=0.2))
    assert time.monotonic() - started < 2


async def test_a_body_that_stalls_is_a_read_timeout_while_streaming(
    broken: str, client: httpx.AsyncClient
) -> None:
    async with client.stream("GET", f"{broken}/stall", timeout=httpx.Timeout(5, read=0.2)) as r:
        assert r.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            await r.aread()


async def test_a_body_cut_short_is_an_error_while_streaming(
    broken: str, client: httpx.AsyncClient
) -> None:
    async with client.stream("GET", f"{broken}/short?token=SECRET") as response:
        assert response.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError) as excinfo:
            await response.aread()
    assert "SECRET" not in str(excinfo.value)
    assert excinfo.value.request is response.request

    with pytest.raises(MediaError, match=re.escape("Could not download the image from 127.0.0.1")):
        await fetch_image(f"{broken}/short", client=client, policy=LOCAL)


_KEY = ConnectionKey("images.example.test", 443, True, True, None, None, None, None)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (aiohttp.ConnectionTimeoutError("timed out"), httpx.ConnectTimeout),
        (aiohttp.ClientConnectorError(_KEY, OSError(111, "refused")), httpx.ConnectError),
        (
            aiohttp.ClientConnectorCertificateError(_KEY, ssl.SSLCertVerificationError("bad")),
            httpx.ConnectError,
        ),
        (aiohttp.ClientSSLError(_KEY, ssl.SSLError("handshake")), httpx.ConnectError),
        (
            aiohttp.ServerFingerprintMismatch(b"a", b"b", "images.example.test", 443),
            httpx.ConnectError,
        ),
        (aiohttp.SocketTimeoutError("read"), httpx.ReadTimeout),
        (aiohttp.ServerTimeoutError("read"), httpx.ReadTimeout),
        (TimeoutError(), httpx.ReadTimeout),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError("short"), httpx.RemoteProtocolError),
        (aiohttp.ClientOSError(104, "reset"), httpx.ReadError),
        (aiohttp.ClientConnectionResetError("reset"), httpx.ReadError),
        (aiohttp.ClientConnectionError("closed"), httpx.RemoteProtocolError),
        (aiohttp.InvalidURL("http://x/?token=SECRET"), httpx.InvalidURL),
        (aiohttp.NonHttpUrlClientError("ftp://x/"), httpx.UnsupportedProtocol),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else "",
)
async def test_aiohttp_errors_become_httpx_errors(
    raised: BaseException,
    expected: type[Exception],
    monkeypatch: pytest.MonkeyPatch,
    client: httpx.AsyncClient,
) -> None:
    def request(*args: object, **kwargs: object) -> object:
        raise raised

    monkeypatch.setattr(aiohttp.ClientSession, "request", request)
    with pytest.raises(expected) as excinfo:
        await client.get("http://images.example.test/a.png?token=SECRET")
    assert "SECRET" not in str(excinfo.value)
    assert excinfo.value.__cause__ is None  # aiohttp's own message may hold the URL
    if isinstance(excinfo.value, httpx.HTTPError):
        assert excinfo.value.request.url.host == "images.example.test"


async def test_other_errors_are_not_disguised(
    monkeypatch: pytest.MonkeyPatch, client: httpx.AsyncClient
) -> None:
    def request(*args: object, **kwargs: object) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setattr(aiohttp.ClientSession, "request", request)
    with pytest.raises(RuntimeError, match="a bug"):
        await client.get("http://images.example.test/")


# ----------------------------------------------------------------------------- closing


async def test_aclose_closes_the_session_and_its_connections(origin: Origin) -> None:
    transport = AiohttpTransport()
    client = httpx.AsyncClient(transport=transport)
    assert (await client.get(f"{origin.url}/png")).content == PNG
    session = transport._session
    assert session is not None and not session.closed
    await client.aclose()
    assert session.closed and transport._session is None
    # The server sees the kept-alive connection go.
    for _ in range(100):
        if origin.transports[0].is_closing():
            break
        await asyncio.sleep(0.01)
    assert origin.transports[0].is_closing()


async def test_aclose_before_any_request_is_fine() -> None:
    await AiohttpTransport().aclose()


# ----------------------------------------------------------------------------- TLS


@dataclass
class TLSOrigin:
    port: int
    ca: ssl.SSLContext  # trusts the server's certificate
    server_names: list[str | None]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for IMAGE_HOST and its key, made by the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    made = subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-keyout", str(key), "-out", str(cert),
            "-subj", f"/CN={IMAGE_HOST}", "-addext", f"subjectAltName=DNS:{IMAGE_HOST}",
        ],
        capture_output=True,
        check=False,
    )  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"openssl could not make a certificate: {made.stderr[-200:]!r}")
    return cert, key


@pytest.fixture
async def tls_origin(certificate: tuple[Path, Path]) -> AsyncIterator[TLSOrigin]:
    cert, key = certificate
    server_names: list[str | None] = []
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server_ctx.sni_callback = lambda _sock, name, _ctx: server_names.append(name)  # type: ignore[assignment,func-returns-value]

    async def png(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/png", png)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = runner.addresses[0][1]
    yield TLSOrigin(port, ssl.create_default_context(cafile=str(cert)), server_names)
    await runner.cleanup()


async def test_tls_to_a_pinned_address_checks_the_certificate_against_the_name(
    tls_origin: TLSOrigin,
) -> None:
    dns = FakeDNS({IMAGE_HOST: ["127.0.0.1"]})
    url = f"https://{IMAGE_HOST}:{tls_origin.port}/png"
    async with httpx.AsyncClient(transport=AiohttpTransport(ssl_context=tls_origin.ca)) as client:
        assert await fetch_image(url, client=client, policy=LOCAL, resolve=dns) == PNG
        assert tls_origin.server_names == [IMAGE_HOST]

        # Without the name the certificate (issued for the name) does not match the IP.
        with pytest.raises(httpx.ConnectError):
            await client.get(f"https://127.0.0.1:{tls_origin.port}/png")


async def test_an_untrusted_certificate_is_a_connect_error(tls_origin: TLSOrigin) -> None:
    dns = FakeDNS({IMAGE_HOST: ["127.0.0.1"]})
    url = f"https://{IMAGE_HOST}:{tls_origin.port}/png"
    async with httpx.AsyncClient(transport=AiohttpTransport()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(
                f"https://127.0.0.1:{tls_origin.port}/png",
                extensions={"sni_hostname": IMAGE_HOST},
            )
        with pytest.raises(
            MediaError, match=re.escape(f"Could not download the image from {IMAGE_HOST}")
        ):
            await fetch_image(url, client=client, policy=LOCAL, resolve=dns)
