"""Build the provider the settings name."""

from __future__ import annotations

from bot.config import ProviderName, Settings
from bot.providers.base import Provider
from bot.providers.piapi import PiAPIProvider


class ProviderNotAvailableError(Exception):
    pass


def build_provider(settings: Settings) -> Provider:
    if settings.mj_provider is ProviderName.PIAPI:
        assert settings.piapi_api_key is not None  # enforced by Settings
        return PiAPIProvider(
            api_key=settings.piapi_api_key.get_secret_value(),
            base_url=settings.piapi_base_url,
            service_mode=settings.piapi_service_mode,
            timeout=settings.provider_timeout_s,
            follow_up_window=settings.follow_up_window_s,
        )
    raise ProviderNotAvailableError(f"MJ_PROVIDER={settings.mj_provider.value} is not built yet")
