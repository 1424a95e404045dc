"""A protocol-faithful fake Discord (REST + gateway on 127.0.0.1) for end-to-end tests.

See /work/shared/DISCORD_PROTOCOL.md for what it models and why; `FakeDiscord` is the entry.
"""

from .interactions import InteractionRefused
from .limits import BucketSpec, DiscordLimits, LimitModel, parse_models
from .models import (
    DEFAULT_APP_ID,
    DEFAULT_GUILD_ID,
    ApiError,
    AttachmentRecord,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeUser,
    Fault,
    GatewayFrame,
    InteractionRecord,
    MessageRecord,
    RateLimitRule,
    RequestRecord,
    Upload,
    default_guild,
    default_users,
)
from .server import FakeDiscord

__all__ = [
    "DEFAULT_APP_ID",
    "DEFAULT_GUILD_ID",
    "ApiError",
    "AttachmentRecord",
    "BucketSpec",
    "DiscordLimits",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeMember",
    "FakeRole",
    "FakeUser",
    "Fault",
    "GatewayFrame",
    "InteractionRecord",
    "InteractionRefused",
    "LimitModel",
    "MessageRecord",
    "RateLimitRule",
    "RequestRecord",
    "Upload",
    "default_guild",
    "default_users",
    "parse_models",
]
