"""Build the provider the settings name (MJ_PROVIDER)."""

from __future__ import annotations

import httpx

from bot import media
from bot.config import ProviderName, Settings
from bot.providers.base import InvalidRequestError, Provider


class ProviderNotAvailableError(Exception):
    pass


def build_provider(settings: Settings) -> Provider:
    # Imported per branch: a deployment loads only the backend it uses.
    name = settings.mj_provider
    timeout = settings.provider_timeout_s
    # Push mode: each backend is told where to post its changes (None = polling only).
    push_url = settings.webhook_url(name.value)
    if name is ProviderName.PIAPI:
        from bot.providers.piapi import PiAPIProvider

        assert settings.piapi_api_key is not None  # enforced by Settings
        return PiAPIProvider(
            api_key=settings.piapi_api_key.get_secret_value(),
            base_url=settings.piapi_base_url,
            service_mode=settings.piapi_service_mode,
            timeout=timeout,
            follow_up_window=settings.follow_up_window_s,
            webhook_endpoint=push_url,
            webhook_secret=(
                settings.webhook_secret.get_secret_value()
                if push_url and settings.webhook_secret is not None
                else None
            ),
        )
    if name is ProviderName.VTRIX:
        from bot.providers.vtrix import VtrixProvider

        assert settings.vtrix_api_key is not None
        return VtrixProvider(
            api_key=settings.vtrix_api_key.get_secret_value(),
            base_url=settings.vtrix_base_url,
            timeout=timeout,
            callback=push_url,
        )
    if name is ProviderName.LEGNEXT:
        from bot.providers.legnext import LegnextProvider

        assert settings.legnext_api_key is not None
        return LegnextProvider(
            api_key=settings.legnext_api_key.get_secret_value(),
            base_url=settings.legnext_base_url,
            timeout=timeout,
            callback=push_url,
        )
    if name is ProviderName.MJPROXY:
        from bot.providers.mjproxy import MJProxyProvider

        assert settings.mjproxy_base_url is not None
        secret = settings.mjproxy_api_secret
        return MJProxyProvider(
            base_url=settings.mjproxy_base_url,
            api_secret=secret.get_secret_value() if secret is not None else None,
            auth_style=settings.mjproxy_auth.value,
            timeout=timeout,
            load_image=image_loader(settings),
            notify_hook=push_url,
        )
    raise ProviderNotAvailableError(f"MJ_PROVIDER={name.value} is not built")


def image_loader(settings: Settings) -> media.ImageLoader:
    """Downloads for providers that want image bytes rather than links (mj-proxy's blend):
    the same SSRF-safe fetch, size and time limits as every other image the bot reads."""
    policy = media.FetchPolicy(allow_private=settings.media_allow_private_hosts)

    async def load(url: str) -> bytes:
        try:
            async with httpx.AsyncClient(follow_redirects=False) as client:
                return await media.fetch_image(url, client=client, policy=policy)
        except media.MediaError as exc:
            raise InvalidRequestError(exc.message) from None

    return load
