"""One shared HTTP client for a provider: timeouts, bounded retries, error mapping.

Retries follow one rule: repeat a request only when repeating it cannot create a
second job. Reads are retried on any transient fault. A create is retried only when
the provider certainly did not act on it (the connection never opened, a 429, or a
5xx answer); if the request left and no answer came back, the outcome is unknown and
`SubmitOutcomeUnknownError` is raised instead, so the engine never submits twice.

The wire client is aiohttp (already installed with discord.py). Polling thousands of
jobs makes the per-request CPU cost the largest one in poll mode: measured on a 2-core
machine against a local server, an httpx.AsyncClient GET cost ~0.9 ms of CPU (~1.75 ms
at 20 concurrent, in httpcore and anyio), an aiohttp GET ~0.12 ms. An httpx transport
can still be passed (`transport=`); unit tests use that with `httpx.MockTransport` to
answer in memory, and then every request goes through httpx exactly as before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx

from bot.providers.base import (
    AuthError,
    MalformedReplyError,
    NotFoundError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    SubmitOutcomeUnknownError,
)

log = logging.getLogger(__name__)

# Retry-After values up to this are waited out inside the client; longer ones are
# handed to the engine, which reschedules the job instead of holding a request open.
MAX_INLINE_RETRY_AFTER = 2.0

ErrorClassifier = Callable[[int, Any, str], ProviderError | None]

_JSON_HEADERS = {"Content-Type": "application/json"}


class _NotSent(Exception):
    """The request never left: no connection could be opened (safe to repeat)."""


class _NoAnswer(Exception):
    """The request may have left but no complete answer came back."""


@dataclass(slots=True)
class _Reply:
    status: int
    headers: Mapping[str, str]  # case-insensitive (httpx.Headers, CIMultiDictProxy)
    text: str

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300


class ProviderHTTP:
    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        timeout: float = 20.0,
        attempts: int = 3,
        backoff: float = 0.25,
        classify: ErrorClassifier | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client: httpx.AsyncClient | None = None
        if transport is not None:
            self._client = httpx.AsyncClient(
                base_url=base_url,
                headers=dict(headers),
                timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
                transport=transport,
            )
        # aiohttp wants an absolute URL per request; join like httpx does, keeping a
        # path prefix of base_url ("http://host/api" + "/v1/job" → "http://host/api/v1/job").
        self._base = base_url.rstrip("/") + "/"
        self._headers = dict(headers)
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._proxy: str | None = None
        self._closed = False
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._classify = classify
        self._sleep = sleep
        self.requests_sent = 0

    async def aclose(self) -> None:
        self._closed = True
        if self._client is not None:
            await self._client.aclose()
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        creates: bool = False,
    ) -> Any:
        """Send a request and return its decoded JSON body, or raise a ProviderError."""
        # Encoded once, as httpx encodes `json=` (a body that cannot be encoded raises here).
        body = None if json_body is None else _encode_json(json_body)
        last_error: ProviderError | None = None
        for attempt in range(self._attempts):
            if attempt:
                await self._sleep(self._delay(attempt, last_error))
            try:
                self.requests_sent += 1
                reply = await self._send(method, path, json_body, body)
            except _NotSent as exc:
                # Nothing reached the provider: safe to repeat, even for a create.
                last_error = ProviderUnavailableError(provider_text=str(exc))
                continue
            except _NoAnswer as exc:
                if creates:
                    raise SubmitOutcomeUnknownError(provider_text=str(exc)) from None
                last_error = ProviderUnavailableError(
                    "The image service did not answer in time.", provider_text=str(exc)
                )
                continue
            try:
                return self._decode(reply)
            except RateLimitedError as exc:
                last_error = exc
                if exc.retry_after is not None and exc.retry_after > MAX_INLINE_RETRY_AFTER:
                    raise
            except ProviderError as exc:
                if not exc.transient:
                    raise
                if creates and isinstance(exc, MalformedReplyError):
                    # The provider answered 200 but we cannot read the task id: it exists.
                    raise SubmitOutcomeUnknownError(provider_text=exc.provider_text) from None
                last_error = exc
        assert last_error is not None
        raise last_error

    async def _send(self, method: str, path: str, json_body: Any, body: bytes | None) -> _Reply:
        """One attempt. Failures are raised as _NotSent / _NoAnswer carrying only the
        exception's type name (never its message, which may hold a URL)."""
        if self._client is not None:
            try:
                response = await self._client.request(method, path, json=json_body)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                raise _NotSent(type(exc).__name__) from None
            except httpx.TransportError as exc:
                raise _NoAnswer(type(exc).__name__) from None
            return _Reply(response.status_code, response.headers, response.text)

        session = self._session or self._open_session()
        # On a dropped connection aiohttp itself repeats an idempotent request (GET, DELETE)
        # once, as RFC 9112 allows; never a POST. requests_sent counts our attempts.
        try:
            async with session.request(
                method,
                self._base + path.lstrip("/"),
                data=body,
                headers=_JSON_HEADERS if body is not None else None,
                allow_redirects=False,  # as httpx: a 3xx is an answer, not followed
                proxy=self._proxy,
            ) as resp:
                raw = await resp.read()
                return _Reply(resp.status, resp.headers, raw.decode("utf-8", "replace"))
        # Order matters: ClientConnectorError is a ClientOSError, ConnectionTimeoutError
        # (connect or pool wait timed out) a ServerTimeoutError; both mean nothing was sent.
        except (
            aiohttp.ClientConnectorError,
            aiohttp.ConnectionTimeoutError,
            aiohttp.InvalidURL,
        ) as exc:
            raise _NotSent(type(exc).__name__) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # Disconnects, payload errors, read and total timeouts: it may have arrived.
            raise _NoAnswer(type(exc).__name__) from None

    def _open_session(self) -> aiohttp.ClientSession:
        """Created on first use, inside the running loop (providers may be built outside one)."""
        if self._closed:
            raise RuntimeError("ProviderHTTP is closed")
        self._proxy = _env_proxy(self._base)
        self._session = aiohttp.ClientSession(
            # keepalive_timeout: httpx's keep-alive expiry, so idle connections are let go
            # before servers with a short keep-alive close them under a request.
            connector=aiohttp.TCPConnector(limit=32, keepalive_timeout=5.0),
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=self._timeout, connect=min(self._timeout, 10.0)),
            # trust_env=False: with True aiohttp looks up proxies and ~/.netrc in a thread on
            # every request and may add an Authorization header from netrc. The httpx client
            # honoured HTTP(S)_PROXY / NO_PROXY, so the proxy is resolved once, above.
            trust_env=False,
        )
        return self._session

    def _delay(self, attempt: int, error: ProviderError | None) -> float:
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            return error.retry_after
        return self._backoff * (2 ** (attempt - 1)) * (1 + random.random() * 0.25)

    def _decode(self, reply: _Reply) -> Any:
        text = reply.text
        try:
            body: Any = json.loads(text) if text else None
        except ValueError:
            body = None
            if reply.is_success:
                raise MalformedReplyError(provider_text=_excerpt(text)) from None
        if self._classify is not None:
            error = self._classify(reply.status, body, text)
            if error is not None:
                raise error
        if reply.status == 429:
            raise RateLimitedError(
                retry_after=_retry_after(reply), provider_text=_excerpt(text), http_status=429
            )
        if reply.status in (401, 403):
            raise AuthError(provider_text=_excerpt(text), http_status=reply.status)
        if reply.status == 404:
            raise NotFoundError(provider_text=_excerpt(text), http_status=404)
        if reply.status >= 500:
            raise ProviderUnavailableError(provider_text=_excerpt(text), http_status=reply.status)
        if not reply.is_success:
            raise ProviderError(provider_text=_excerpt(text), http_status=reply.status)
        return body


def _encode_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _env_proxy(base_url: str) -> str | None:
    """The HTTP proxy the environment names for base_url (HTTP(S)_PROXY, ALL_PROXY,
    NO_PROXY), as httpx's trust_env honoured. Credentials in it are sent to the proxy."""
    host = urllib.parse.urlsplit(base_url)
    if host.hostname is None or urllib.request.proxy_bypass(host.hostname):
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get(host.scheme) or proxies.get("all")
    if not proxy:
        return None
    if urllib.parse.urlsplit(proxy).scheme not in ("http", "https"):
        log.warning("ignoring the proxy set in the environment: only http(s) proxies work")
        return None
    return proxy


def _retry_after(reply: _Reply) -> float | None:
    value = reply.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
