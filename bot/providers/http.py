"""One shared HTTP client for a provider: timeouts, bounded retries, error mapping.

Retries follow one rule: repeat a request only when repeating it cannot create a
second job. Reads are retried on any transient fault. A create is retried only when
the provider certainly did not act on it (the connection never opened, a 429, or a
5xx answer); if the request left and no answer came back, the outcome is unknown and
`SubmitOutcomeUnknownError` is raised instead, so the engine never submits twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

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
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=dict(headers),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            transport=transport,
        )
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._classify = classify
        self._sleep = sleep
        self.requests_sent = 0

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        creates: bool = False,
    ) -> Any:
        """Send a request and return its decoded JSON body, or raise a ProviderError."""
        last_error: ProviderError | None = None
        for attempt in range(self._attempts):
            if attempt:
                await self._sleep(self._delay(attempt, last_error))
            try:
                self.requests_sent += 1
                response = await self._client.request(method, path, json=json_body)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # Nothing reached the provider: safe to repeat, even for a create.
                last_error = ProviderUnavailableError(provider_text=type(exc).__name__)
                continue
            except httpx.TransportError as exc:
                if creates:
                    raise SubmitOutcomeUnknownError(provider_text=type(exc).__name__) from None
                last_error = ProviderUnavailableError(
                    "The image service did not answer in time.", provider_text=type(exc).__name__
                )
                continue
            try:
                return self._decode(response)
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

    def _delay(self, attempt: int, error: ProviderError | None) -> float:
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            return error.retry_after
        return self._backoff * (2 ** (attempt - 1)) * (1 + random.random() * 0.25)

    def _decode(self, response: httpx.Response) -> Any:
        text = response.text
        try:
            body: Any = json.loads(text) if text else None
        except ValueError:
            body = None
            if response.is_success:
                raise MalformedReplyError(provider_text=_excerpt(text)) from None
        if self._classify is not None:
            error = self._classify(response.status_code, body, text)
            if error is not None:
                raise error
        if response.status_code == 429:
            raise RateLimitedError(
                retry_after=_retry_after(response), provider_text=_excerpt(text), http_status=429
            )
        if response.status_code in (401, 403):
            raise AuthError(provider_text=_excerpt(text), http_status=response.status_code)
        if response.status_code == 404:
            raise NotFoundError(provider_text=_excerpt(text), http_status=404)
        if response.status_code >= 500:
            raise ProviderUnavailableError(
                provider_text=_excerpt(text), http_status=response.status_code
            )
        if not response.is_success:
            raise ProviderError(provider_text=_excerpt(text), http_status=response.status_code)
        return body


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
