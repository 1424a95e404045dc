"""Build the providers the settings name: MJ_ACCOUNTS_FILE's accounts, pooled, or the one
account of MJ_PROVIDER (today's single-account settings, as a pool of one)."""

from __future__ import annotations

from dataclasses import dataclass

from bot import media
from bot.accounts.config import AccountConfig
from bot.accounts.pool import Account, AccountPool
from bot.config import MJProxyAuth, ProviderName, Settings
from bot.media_fetcher import MediaFetcher
from bot.providers.base import InvalidRequestError, Provider


class ProviderNotAvailableError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Backend:
    """What one account needs to be built: its kind, key, address and callback URL."""

    kind: ProviderName
    api_key: str | None
    base_url: str
    auth: MJProxyAuth = MJProxyAuth.HEADER
    push_url: str | None = None


def build_pool(settings: Settings, fetcher: MediaFetcher) -> AccountPool:
    """Every account of MJ_ACCOUNTS_FILE, in the file's order; without the file, the single
    account of MJ_PROVIDER, named after its provider. `fetcher` is the bot's one media
    client, for the providers that download images themselves (its owner closes it)."""
    if not settings.accounts:
        provider = build_provider(settings, fetcher)
        return AccountPool(
            [Account(provider.name, provider, limit=settings.mj_max_concurrent_jobs)]
        )
    accounts = []
    for config in settings.accounts:
        provider = build_backend(_backend_of(config, settings), settings, fetcher)
        limit = config.max_concurrent_jobs or settings.mj_max_concurrent_jobs
        accounts.append(
            Account(config.name, provider, limit, weight=config.weight, modes=config.modes)
        )
    return AccountPool(accounts)


def _backend_of(config: AccountConfig, settings: Settings) -> Backend:
    push = settings.webhook_url(config.provider.value)
    return Backend(
        kind=config.provider,
        api_key=config.secret(),
        base_url=config.resolved_base_url,
        auth=config.auth or MJProxyAuth.HEADER,
        # Push mode: the callback URL carries the account it reports for.
        push_url=f"{push}?account={config.name}" if push else None,
    )


def build_provider(settings: Settings, fetcher: MediaFetcher) -> Provider:
    """The one provider of the single-account settings (MJ_PROVIDER and its keys)."""
    name = settings.mj_provider
    keys = {
        ProviderName.PIAPI: (settings.piapi_api_key, settings.piapi_base_url),
        ProviderName.VTRIX: (settings.vtrix_api_key, settings.vtrix_base_url),
        ProviderName.LEGNEXT: (settings.legnext_api_key, settings.legnext_base_url),
        ProviderName.MJPROXY: (settings.mjproxy_api_secret, settings.mjproxy_base_url or ""),
    }
    if name not in keys:
        raise ProviderNotAvailableError(f"MJ_PROVIDER={name.value} is not built")
    secret, base_url = keys[name]
    backend = Backend(
        kind=name,
        api_key=secret.get_secret_value() if secret is not None else None,
        base_url=base_url,
        auth=settings.mjproxy_auth,
        # Push mode: each backend is told where to post its changes (None = polling only).
        push_url=settings.webhook_url(name.value),
    )
    return build_backend(backend, settings, fetcher)


def build_backend(backend: Backend, settings: Settings, fetcher: MediaFetcher) -> Provider:
    # Imported per branch: a deployment loads only the backends it uses.
    timeout = settings.provider_timeout_s
    name, key, push_url = backend.kind, backend.api_key, backend.push_url
    if name is ProviderName.PIAPI:
        from bot.providers.piapi import PiAPIProvider

        assert key is not None  # enforced by Settings
        return PiAPIProvider(
            api_key=key,
            base_url=backend.base_url,
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

        assert key is not None
        return VtrixProvider(
            api_key=key, base_url=backend.base_url, timeout=timeout, callback=push_url
        )
    if name is ProviderName.LEGNEXT:
        from bot.providers.legnext import LegnextProvider

        assert key is not None
        return LegnextProvider(
            api_key=key, base_url=backend.base_url, timeout=timeout, callback=push_url
        )
    from bot.providers.mjproxy import MJProxyProvider

    return MJProxyProvider(
        base_url=backend.base_url,
        api_secret=key,
        auth_style=backend.auth.value,
        timeout=timeout,
        load_image=image_loader(settings, fetcher),
        notify_hook=push_url,
    )


def image_loader(settings: Settings, fetcher: MediaFetcher) -> media.ImageLoader:
    """Downloads for providers that want image bytes rather than links (mj-proxy's blend):
    the same SSRF-safe fetch, size and time limits as every other image the bot reads."""
    # Members' links: no exception for the provider's own origin (the fetcher's default).
    policy = media.FetchPolicy(allow_private=settings.media_allow_private_hosts)

    async def load(url: str) -> bytes:
        try:
            return await fetcher.fetch_image(url, policy=policy)
        except media.MediaError as exc:
            raise InvalidRequestError(exc.message) from None

    return load
