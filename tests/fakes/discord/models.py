"""In-memory state of the fake Discord: users, guilds, messages, interactions and the request log.

Everything here is plain data plus the JSON shape Discord would send for it. The behaviour
(what a request does to this state) lives in `server.py`, `rest.py` and `gateway.py`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import mimetypes
import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

JSON = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # 10 MiB per file, a bot's default (§8)
ALL_PERMISSIONS = (1 << 51) - 1  # "2251799813685247" as in §4

# Permission bits the default guild uses (discord-api-docs, permissions table).
P_KICK_MEMBERS = 1 << 1
P_ADMINISTRATOR = 1 << 3
P_MANAGE_GUILD = 1 << 5
P_ADD_REACTIONS = 1 << 6
P_VIEW_CHANNEL = 1 << 10
P_SEND_MESSAGES = 1 << 11
P_MANAGE_MESSAGES = 1 << 13
P_EMBED_LINKS = 1 << 14
P_ATTACH_FILES = 1 << 15
P_READ_MESSAGE_HISTORY = 1 << 16
P_USE_EXTERNAL_EMOJIS = 1 << 18
P_USE_APPLICATION_COMMANDS = 1 << 31
P_MODERATE_MEMBERS = 1 << 40

EVERYONE_PERMISSIONS = (
    P_VIEW_CHANNEL
    | P_SEND_MESSAGES
    | P_EMBED_LINKS
    | P_ATTACH_FILES
    | P_READ_MESSAGE_HISTORY
    | P_ADD_REACTIONS
    | P_USE_EXTERNAL_EMOJIS
    | P_USE_APPLICATION_COMMANDS
)

# Gateway intents that matter to the fake (§3).
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_MESSAGE_CONTENT = 1 << 15
ALL_INTENTS = (1 << 26) - 1

# Application flags that allow the privileged intents (§3).
APP_FLAG_PRESENCE = (1 << 12) | (1 << 13)
APP_FLAG_MEMBERS = (1 << 14) | (1 << 15)
APP_FLAG_MESSAGE_CONTENT = (1 << 18) | (1 << 19)
DEFAULT_APP_FLAGS = (1 << 13) | (1 << 15) | (1 << 19)  # the "_LIMITED" flags: all three allowed

# Message flags.
F_SUPPRESS_EMBEDS = 1 << 2
F_EPHEMERAL = 1 << 6
F_LOADING = 1 << 7
F_SUPPRESS_NOTIFICATIONS = 1 << 12
F_COMPONENTS_V2 = 1 << 15

# Fixed ids so that logs and failures read the same from run to run.
DEFAULT_APP_ID = 1_200_000_000_000_000_001
DEFAULT_GUILD_ID = 1_100_000_000_000_000_001


def utc_iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).isoformat()


class SnowflakeGenerator:
    """Snowflakes from the fake's clock, strictly increasing even when the clock repeats."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self, now: float) -> int:
        with self._lock:
            candidate = (int(now * 1000) - DISCORD_EPOCH_MS) << 22
            self._last = max(candidate, self._last + 1)
            return self._last


@dataclass
class FakeUser:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    avatar: str | None = None

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": self.avatar,
            "public_flags": 0,
        }
        if self.bot:
            data["bot"] = True
        return data


@dataclass
class FakeRole:
    id: int
    name: str
    permissions: int = 0
    position: int = 0
    managed: bool = False
    color: int = 0
    bot_id: int | None = None

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": self.color,
            "colors": {
                "primary_color": self.color,
                "secondary_color": None,
                "tertiary_color": None,
            },
            "hoist": False,
            "managed": self.managed,
            "mentionable": False,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass
class FakeChannel:
    id: int
    name: str
    type: int = 0  # GUILD_TEXT
    position: int = 0
    nsfw: bool = False
    topic: str | None = None
    parent_id: int | None = None
    guild_id: int | None = None

    def payload(self, permissions: int | None = None) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "position": self.position,
            "nsfw": self.nsfw,
            "topic": self.topic,
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "permission_overwrites": [],
            "rate_limit_per_user": 0,
            "last_message_id": None,
            "flags": 0,
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


@dataclass
class FakeMember:
    user: FakeUser
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = "2025-01-01T00:00:00+00:00"

    def payload(self, *, permissions: int | None = None, with_user: bool = True) -> JSON:
        data: JSON = {
            "roles": [str(r) for r in self.roles],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


@dataclass
class FakeGuild:
    id: int
    name: str
    owner_id: int
    channels: list[FakeChannel] = field(default_factory=list)
    roles: list[FakeRole] = field(default_factory=list)
    members: list[FakeMember] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    preferred_locale: str = "en-US"
    premium_tier: int = 0

    def __post_init__(self) -> None:
        for channel in self.channels:
            channel.guild_id = self.id
        if not any(r.id == self.id for r in self.roles):
            self.roles.insert(0, FakeRole(self.id, "@everyone", EVERYONE_PERMISSIONS))

    def channel(self, channel_id: int) -> FakeChannel | None:
        return next((c for c in self.channels if c.id == channel_id), None)

    def channel_named(self, name: str) -> FakeChannel | None:
        return next((c for c in self.channels if c.name == name.lstrip("#")), None)

    def role(self, role_id: int) -> FakeRole | None:
        return next((r for r in self.roles if r.id == role_id), None)

    def member(self, user_id: int) -> FakeMember | None:
        return next((m for m in self.members if m.user.id == user_id), None)

    def permissions_for(self, user_id: int) -> int:
        """Guild-level permissions (channel overwrites are not modelled)."""
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        member = self.member(user_id)
        everyone = self.role(self.id)
        perms = everyone.permissions if everyone is not None else 0
        for role_id in member.roles if member else []:
            role = self.role(role_id)
            if role is not None:
                perms |= role.permissions
        return ALL_PERMISSIONS if perms & P_ADMINISTRATOR else perms

    def create_payload(self, *, members: list[FakeMember], now: float) -> JSON:
        """The GUILD_CREATE body (§3 step 4)."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "unavailable": False,
            "large": len(self.members) >= 250,
            "member_count": len(self.members),
            "joined_at": utc_iso(now),
            "roles": [r.payload() for r in self.roles],
            "channels": [c.payload() for c in self.channels],
            "threads": [],
            "members": [m.payload() for m in members],
            "voice_states": [],
            "presences": [],
            "emojis": [],
            "stickers": [],
            "features": list(self.features),
            "preferred_locale": self.preferred_locale,
            "premium_tier": self.premium_tier,
            "premium_subscription_count": 0,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "afk_timeout": 300,
            "system_channel_id": str(self.channels[0].id) if self.channels else None,
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }


def default_users() -> dict[str, FakeUser]:
    base = 1_100_000_000_000_000_300
    names = ["owner", "admin", "artist", "tester", "other"]
    return {name: FakeUser(base + i + 1, name, name.title()) for i, name in enumerate(names)}


def default_guild(
    users: dict[str, FakeUser],
    bot_user: FakeUser,
    *,
    guild_id: int = DEFAULT_GUILD_ID,
    name: str = "Test Guild",
) -> FakeGuild:
    """One guild as a small community server: three text channels (one NSFW), three roles,
    an owner, an admin (Manage Guild via Moderators), an artist, plain members and the bot."""
    cid = guild_id + 100
    rid = guild_id + 200
    artists = FakeRole(rid + 1, "Artists", 0, position=1)
    moderators = FakeRole(
        rid + 2,
        "Moderators",
        P_MANAGE_GUILD | P_MANAGE_MESSAGES | P_KICK_MEMBERS | P_MODERATE_MEMBERS,
        position=2,
    )
    bot_role = FakeRole(
        rid + 3,
        bot_user.username,
        EVERYONE_PERMISSIONS | P_MANAGE_MESSAGES,
        position=3,
        managed=True,
        bot_id=bot_user.id,
    )
    return FakeGuild(
        id=guild_id,
        name=name,
        owner_id=users["owner"].id,
        channels=[
            FakeChannel(cid + 1, "general", position=0, topic="General chat"),
            FakeChannel(cid + 2, "art", position=1, topic="Make pictures"),
            FakeChannel(cid + 3, "nsfw-art", position=2, nsfw=True),
        ],
        roles=[
            FakeRole(guild_id, "@everyone", EVERYONE_PERMISSIONS),
            artists,
            moderators,
            bot_role,
        ],
        members=[
            FakeMember(users["owner"]),
            FakeMember(users["admin"], [moderators.id]),
            FakeMember(users["artist"], [artists.id]),
            FakeMember(users["tester"]),
            FakeMember(users["other"]),
            FakeMember(bot_user, [bot_role.id]),
        ],
    )


@dataclass
class Upload:
    """A file a test hands to the fake (an attachment option, for instance)."""

    filename: str
    data: bytes
    content_type: str | None = None
    description: str | None = None


def guess_content_type(filename: str, fallback: str | None = None) -> str:
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or fallback or "application/octet-stream"


def _image_size(data: bytes) -> tuple[int, int] | None:
    try:
        from PIL import Image  # Pillow is a project dependency; the size is a courtesy

        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:
        return None


@dataclass
class AttachmentRecord:
    id: int
    filename: str
    data: bytes
    content_type: str
    channel_id: int
    created_at: float
    ephemeral: bool = False
    description: str | None = None
    # The fake's clock: Discord signs attachment URLs afresh in every payload it sends
    # (DISCORD_PROTOCOL §11), so each payload's URL is issued "now". None: at creation.
    clock: Any = None

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def issued_at(self) -> float:
        return float(self.clock()) if self.clock is not None else self.created_at

    @property
    def expires_at(self) -> float:
        return self.issued_at + 24 * 3600  # CDN links are signed for a day

    def signature(self, expires: int | None = None) -> str:
        """The `hm` of a URL expiring at `expires` (default: one issued now)."""
        raw = f"{self.id}:{int(self.expires_at) if expires is None else expires}".encode()
        return hashlib.sha256(raw).hexdigest()[:32]

    def url(self, base_url: str) -> str:
        issued = self.issued_at
        ex = format(int(issued + 24 * 3600), "x")
        iss = format(int(issued), "x")
        name = quote(self.filename, safe="")
        return (
            f"{base_url}/attachments/{self.channel_id}/{self.id}/{name}"
            f"?ex={ex}&is={iss}&hm={self.signature(int(issued + 24 * 3600))}&"
        )

    def payload(self, base_url: str) -> JSON:
        url = self.url(base_url)
        data: JSON = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": url,
            "proxy_url": url,
            "content_type": self.content_type,
        }
        if self.content_type.startswith("image/"):
            dims = _image_size(self.data)
            if dims is not None:
                data["width"], data["height"] = dims
        if self.ephemeral:
            data["ephemeral"] = True
        if self.description is not None:
            data["description"] = self.description
        return data


@dataclass
class MessageRecord:
    """A message as the fake stores it; `payload()` is what Discord would return."""

    id: int
    channel_id: int
    guild_id: int | None
    author: JSON
    created_at: float
    content: str = ""
    embeds: list[JSON] = field(default_factory=list)
    components: list[JSON] = field(default_factory=list)
    attachments: list[AttachmentRecord] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_id: int | None = None  # the interaction whose token owns it
    interaction_metadata: JSON | None = None
    message_reference: JSON | None = None
    allowed_mentions: JSON | None = None
    tts: bool = False
    edited_at: float | None = None
    edit_count: int = 0
    deleted: bool = False
    dispatched: bool = False  # has MESSAGE_CREATE gone out (loading messages wait for 1st edit)
    old_edits: int = 0  # edits made while older than an hour (30046)
    history: list[JSON] = field(default_factory=list)  # earlier versions, oldest first

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & F_EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & F_LOADING)

    @property
    def custom_ids(self) -> list[str]:
        return [c["custom_id"] for c in iter_components(self.components) if "custom_id" in c]

    def component(self, custom_id: str) -> JSON | None:
        return next(
            (c for c in iter_components(self.components) if c.get("custom_id") == custom_id), None
        )

    def attachment_named(self, filename: str) -> AttachmentRecord | None:
        return next((a for a in self.attachments if a.filename == filename), None)

    def snapshot(self) -> JSON:
        return {
            "content": self.content,
            "embeds": self.embeds,
            "components": self.components,
            "attachments": [(a.id, a.filename, a.size) for a in self.attachments],
            "flags": self.flags,
            "at": self.edited_at or self.created_at,
        }

    def payload(self, base_url: str) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "type": self.type,
            "channel_id": str(self.channel_id),
            "author": self.author,
            "content": self.content,
            "timestamp": utc_iso(self.created_at),
            "edited_timestamp": utc_iso(self.edited_at) if self.edited_at else None,
            "tts": self.tts,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [a.payload(base_url) for a in self.attachments],
            "embeds": [_resolve_embed(e, self.attachments, base_url) for e in self.embeds],
            "components": self.components,
            "pinned": False,
            "flags": self.flags,
        }
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            data["application_id"] = str(self.application_id)
        if self.interaction_metadata is not None:
            data["interaction_metadata"] = self.interaction_metadata
        if self.message_reference is not None:
            data["message_reference"] = self.message_reference
        return data


def _resolve_embed(embed: JSON, attachments: list[AttachmentRecord], base_url: str) -> JSON:
    """Discord rewrites `attachment://name` in embed images to the attachment's URL."""
    out = dict(embed)
    out.setdefault("type", "rich")
    for key in ("image", "thumbnail"):
        media = out.get(key)
        if isinstance(media, dict) and str(media.get("url", "")).startswith("attachment://"):
            name = media["url"].removeprefix("attachment://")
            found = next((a for a in attachments if a.filename == name), None)
            if found is not None:
                url = found.url(base_url)
                out[key] = {**media, "url": url, "proxy_url": url}
    return out


def iter_components(components: list[JSON]) -> list[JSON]:
    """All components depth-first: rows, sections, containers and labels included."""
    found: list[JSON] = []
    for component in components or []:
        if not isinstance(component, dict):
            continue
        found.append(component)
        found.extend(iter_components(component.get("components") or []))
        for key in ("accessory", "component"):
            child = component.get(key)
            if isinstance(child, dict):
                found.extend(iter_components([child]))
    return found


@dataclass
class InteractionRecord:
    """One interaction the fake dispatched, and how the bot answered it."""

    id: int
    token: str
    type: int
    application_id: int
    guild_id: int | None
    channel_id: int
    user_id: int
    data: JSON
    payload: JSON
    created_at: float
    message_id: int | None = None  # the component's message (types 3 and 5-from-component)
    source_id: int | None = None  # for a modal submit: the interaction that opened the modal
    response_type: int | None = None
    response_data: JSON | None = None
    original_message_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    modal: JSON | None = None
    modal_submitted: bool = False
    autocomplete_choices: list[JSON] | None = None
    callback_attempts: int = 0

    @property
    def responded(self) -> bool:
        return self.response_type is not None

    @property
    def command_name(self) -> str | None:
        return self.data.get("name")

    @property
    def custom_id(self) -> str | None:
        return self.data.get("custom_id")


@dataclass
class FileInfo:
    field: str
    filename: str
    size: int
    content_type: str | None


@dataclass
class RequestRecord:
    """One request the fake received under /api, with what it answered."""

    seq: int
    at: float
    method: str
    path: str  # relative to /api/vN, e.g. "/channels/1/messages"
    version: int
    query: dict[str, str]
    auth: bool  # an Authorization header was present
    json: Any = None
    payload_json: Any = None
    files: list[FileInfo] = field(default_factory=list)
    status: int = 0
    reply: Any = None
    route: str | None = None  # the route template, None for unknown routes
    fault: str | None = None  # set when an injected fault or rate limit answered

    @property
    def body(self) -> Any:
        return self.payload_json if self.payload_json is not None else self.json

    @property
    def code(self) -> int | None:
        return self.reply.get("code") if isinstance(self.reply, dict) else None

    def to_json(self) -> JSON:
        return {
            "seq": self.seq,
            "at": self.at,
            "method": self.method,
            "path": self.path,
            "version": self.version,
            "query": self.query,
            "auth": self.auth,
            "json": self.json,
            "payload_json": self.payload_json,
            "files": [f.__dict__ for f in self.files],
            "status": self.status,
            "reply": self.reply,
            "route": self.route,
            "fault": self.fault,
        }


@dataclass
class GatewayFrame:
    direction: str  # "send" (fake → bot), "recv" (bot → fake) or "replay" (sent again on RESUME)
    session_id: str | None
    op: int | None
    t: str | None
    s: int | None
    d: Any
    at: float


@dataclass
class Fault:
    """A one-shot (or n-shot) error the fake answers instead of handling a request."""

    method: str
    pattern: re.Pattern[str]
    status: int
    code: int | None = None
    message: str | None = None
    via: bool = True
    retry_after: float = 0.1
    times: int | None = 1  # None = until removed
    is_global: bool = False
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        live = self.times is None or self.hits < self.times
        return live and self.method in ("*", method) and bool(self.pattern.search(path))


@dataclass
class RateLimitRule:
    """A real fixed-window rate limit on the matching requests."""

    method: str
    pattern: re.Pattern[str]
    limit: int
    per: float
    honest: bool = False  # report the real Remaining (0 on the last one) or keep it hidden
    scope: str = "user"
    is_global: bool = False
    window_start: float = 0.0
    count: int = 0
    bucket: str = ""

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and bool(self.pattern.search(path))


class ApiError(Exception):
    """An error reply in Discord's shape: `{"message", "code"}` (+ `errors`)."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        errors: JSON | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = headers or {}

    def body(self) -> JSON:
        data: JSON = {"message": self.message, "code": self.code}
        if self.errors:
            data["errors"] = self.errors
        return data


# The replies of §7, by name.
def unauthorized() -> ApiError:
    return ApiError(401, 0, "401: Unauthorized")


def not_found() -> ApiError:
    return ApiError(404, 0, "404: Not Found")


def unknown_interaction() -> ApiError:
    return ApiError(404, 10062, "Unknown interaction")


def already_acknowledged() -> ApiError:
    return ApiError(400, 40060, "Interaction has already been acknowledged.")


def invalid_webhook_token() -> ApiError:
    return ApiError(401, 50027, "Invalid Webhook Token")


def unknown_webhook() -> ApiError:
    return ApiError(404, 10015, "Unknown Webhook")


def unknown_message() -> ApiError:
    return ApiError(404, 10008, "Unknown Message")


def unknown_channel() -> ApiError:
    return ApiError(404, 10003, "Unknown Channel")


def unknown_guild() -> ApiError:
    return ApiError(404, 10004, "Unknown Guild")


def unknown_member() -> ApiError:
    return ApiError(404, 10007, "Unknown Member")


def unknown_user() -> ApiError:
    return ApiError(404, 10013, "Unknown User")


def unknown_command() -> ApiError:
    return ApiError(404, 10063, "Unknown application command")


def empty_message() -> ApiError:
    return ApiError(400, 50006, "Cannot send an empty message")


def too_large() -> ApiError:
    return ApiError(413, 40005, "Request entity too large")


def not_author() -> ApiError:
    return ApiError(403, 50005, "Cannot edit a message authored by another user")


def invalid_json() -> ApiError:
    return ApiError(400, 50109, "The request body contains invalid JSON.")
