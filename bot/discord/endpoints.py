"""Point discord.py at any Discord-compatible endpoint (the real one, or the fake in tests).

discord.py has no setting for its endpoints (DISCORD_PROTOCOL.md §1): every REST call, interaction
callbacks, `@original` edits and followups included, is built from the class attribute
`discord.http.Route.BASE`; the gateway comes from `DiscordWebSocket.DEFAULT_GATEWAY` (a plain
`Client` never asks `GET /gateway`); avatars and icons from `Asset.BASE`. Proxies do not help
(the defaults are https/wss), so the launcher patches these before the client's first request.
"""

from __future__ import annotations

from typing import NamedTuple

import discord.asset
import discord.gateway
import discord.http
import yarl

DISCORD_API_BASE = "https://discord.com/api/v10"
DISCORD_CDN_BASE = "https://cdn.discordapp.com"
_DISCORD_HOSTS = ("discord.com", "discordapp.com", "discord.gg")


class DiscordEndpoints(NamedTuple):
    """What `point_discord_at` changes, so tests can restore it."""

    api_base: str
    gateway: yarl.URL
    asset_base: str


def current_endpoints() -> DiscordEndpoints:
    return DiscordEndpoints(
        discord.http.Route.BASE,
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
        discord.asset.Asset.BASE,
    )


def restore_endpoints(saved: DiscordEndpoints) -> None:
    discord.http.Route.BASE = saved.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved.gateway
    discord.asset.Asset.BASE = saved.asset_base


def _is_discord(url: yarl.URL) -> bool:
    host = url.host or ""
    return any(host == h or host.endswith("." + h) for h in _DISCORD_HOSTS)


def point_discord_at(api_base: str, gateway_url: str | None) -> None:
    """Send discord.py's REST calls to `api_base` (with the version, e.g.
    `http://127.0.0.1:8080/api/v10`) and, when given, its gateway to `gateway_url`.

    Call it before the client's first request, and never call `discord.http._set_api_version()`
    afterwards (it resets `Route.BASE`). Process-global and idempotent.
    """
    base = yarl.URL(api_base.rstrip("/"))
    if base.scheme not in ("http", "https") or not base.host:
        raise ValueError(f"api_base must be an http(s) URL, got {api_base!r}")
    discord.http.Route.BASE = str(base)
    if gateway_url is not None:
        gateway = yarl.URL(gateway_url)
        if gateway.scheme not in ("ws", "wss"):
            raise ValueError(f"gateway_url must be a ws(s) URL, got {gateway_url!r}")
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway
    # Assets live on Discord's CDN, or on the compatible server itself.
    discord.asset.Asset.BASE = DISCORD_CDN_BASE if _is_discord(base) else str(base.origin())
