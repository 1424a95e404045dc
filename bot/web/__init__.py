"""The bot's small HTTP side: webhook receiver (push mode), /metrics and /healthz."""

from bot.web.server import (
    GatewayWatch,
    WebhookAuth,
    WebServer,
    register_engine_gauges,
    servers_for,
    shards_run,
)

__all__ = [
    "GatewayWatch",
    "WebServer",
    "WebhookAuth",
    "register_engine_gauges",
    "servers_for",
    "shards_run",
]
