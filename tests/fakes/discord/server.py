"""`FakeDiscord`: the fake's state, its aiohttp server and the Python control API tests use.

async with FakeDiscord() as fake:
    point_discord_at(fake.api_base, fake.gateway_url)
    ... start the bot with fake.bot_token ...
    await fake.wait_ready()
    rec = await fake.slash("imagine", {"prompt": "a lighthouse"})
    await fake.wait_for_request("PATCH", rf"/webhooks/\\d+/{rec.token}/messages/@original")
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from aiohttp import web

from .gateway import Gateway
from .identify_spacing import IdentifySpacing
from .interactions import (
    ChannelRef,
    InteractionRefused,
    OptionBuilder,
    UserRef,
    check_can_use,
    click_data,
    command_path,
    ephemeral_owner,
    modal_submit_components,
)
from .limits import (
    DEFAULT_BAN_S,
    DEFAULT_INVALID_LIMIT,
    BucketSpec,
    DiscordLimits,
    LimitModel,
)
from .messages import MessageService
from .models import (
    DEFAULT_APP_FLAGS,
    DEFAULT_APP_ID,
    DEFAULT_UPLOAD_LIMIT,
    JSON,
    AttachmentRecord,
    FakeChannel,
    FakeGuild,
    FakeRole,
    FakeUser,
    Fault,
    GatewayFrame,
    InteractionRecord,
    MessageRecord,
    RateLimitRule,
    RequestRecord,
    SnowflakeGenerator,
    Upload,
    default_guild,
    default_users,
    guess_content_type,
)

T = TypeVar("T")


class FakeDiscord:
    """A protocol-faithful Discord for one bot application, on 127.0.0.1."""

    def __init__(
        self,
        *,
        bot_token: str = "test-token",
        app_id: int = DEFAULT_APP_ID,
        bot_name: str = "Midjourney Bot",
        guilds: Sequence[FakeGuild] | None = None,
        users: Mapping[str, FakeUser] | None = None,
        clock_offset: float = 0.0,
        clock: Callable[[], float] = time.time,
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        callback_deadline: float = 3.0,
        token_ttl: float = 900.0,
        app_flags: int = DEFAULT_APP_FLAGS,
        shards: int = 1,
        gateway_compression: bool = True,
        heartbeat_interval_ms: int = 41_250,
        host: str = "127.0.0.1",
    ) -> None:
        self.bot_token = bot_token
        self.app_id = app_id
        self.bot_user = FakeUser(app_id, bot_name.lower().replace(" ", "_"), bot_name, bot=True)
        self.users: dict[str, FakeUser] = dict(users) if users is not None else default_users()
        self.guilds: list[FakeGuild] = (
            list(guilds) if guilds is not None else [default_guild(self.users, self.bot_user)]
        )
        for guild in self.guilds:
            for member in guild.members:
                self.users.setdefault(member.user.username, member.user)
        self.clock_offset = clock_offset
        self._clock = clock
        self.upload_limit = upload_limit
        self.callback_deadline = callback_deadline
        self.token_ttl = token_ttl
        self.app_flags = app_flags
        self.shards = shards
        # max_concurrency, IDENTIFY times per bucket, the 5 s rule when enforced.
        self.identify_spacing = IdentifySpacing(clock=self.now)
        self.gateway_compression = gateway_compression
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.old_message_edit_limit: int | None = None
        self.host = host
        self.port: int | None = None

        # State a test can read.
        self.messages: dict[int, MessageRecord] = {}
        self.attachments: dict[int, AttachmentRecord] = {}
        self.interactions: dict[int, InteractionRecord] = {}
        self.requests: list[RequestRecord] = []
        self.unknown_routes: list[tuple[str, str]] = []
        self.internal_errors: list[str] = []  # bugs in the fake itself: tests should fail
        self.gateway_log: list[GatewayFrame] = []
        self.downloads: list[tuple[str, int]] = []  # (attachment path, status)
        self.commands: dict[int | None, list[JSON]] = {}  # scope (guild id or None) → commands
        self.faults: list[Fault] = []
        self.rate_limits: list[RateLimitRule] = []
        # Discord's buckets as bot authors observe them (limits.py); None: only the rules above.
        self.limits: DiscordLimits | None = None
        self.count_429 = 0

        self._by_token: dict[str, InteractionRecord] = {}
        self._command_ids: dict[tuple[int | None, int, str], int] = {}
        self._snowflakes = SnowflakeGenerator()
        self._seq = 0
        self._version = 0
        self._changed: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self.gateway = Gateway(self)
        self.message_service = MessageService(self)

    # --- lifecycle --------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        from .control import ControlApi  # late: control imports this module's types
        from .rest import RestApi

        # Uploads are checked against `upload_limit` by the fake, not cut off by aiohttp.
        app = web.Application(client_max_size=1024**3)
        rest = RestApi(self)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_route("*", "/api/{tail:.*}", rest.handle)
        app.router.add_route(
            "GET", "/attachments/{channel_id}/{attachment_id}/{filename}", rest.cdn
        )
        ControlApi(self).register(app)
        app.router.add_route("*", "/{tail:.*}", rest.unknown)
        return app

    async def start(self, port: int = 0) -> FakeDiscord:
        self._changed = asyncio.Event()
        self._runner = web.AppRunner(self.build_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("FakeDiscord is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway"

    @property
    def control_url(self) -> str:
        return f"{self.base_url}/_test"

    # --- clock, ids, change notification ---------------------------------------------------

    def now(self) -> float:
        return self._clock() + self.clock_offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock (3 s callback rule, 15 min token rule, CDN expiry)."""
        self.clock_offset += seconds
        self.notify()

    def snowflake(self) -> int:
        return self._snowflakes.next(self.now())

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    @property
    def last_seq(self) -> int:
        """The seq of the latest request; pass it as `since=` to wait for later ones."""
        return self._seq

    @property
    def version(self) -> int:
        """Bumped on every change of state; the HTTP control API long-polls on it."""
        return self._version

    def notify(self) -> None:
        self._version += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    async def wait_for(
        self,
        predicate: Callable[[], T],
        timeout: float = 5.0,  # noqa: ASYNC109 - the documented API: every wait is bounded
        what: str | None = None,
    ) -> T:
        """Wait until `predicate()` is truthy (re-checked on every change); return its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
            event = self._changed
            if event is None:
                raise RuntimeError("FakeDiscord is not started")
            # A bounded wait: a change wakes us at once; the cap re-checks predicates that
            # depend on things the fake does not see (e.g. the bot's own state).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, 0.5))

    def requests_matching(
        self, method: str, path_regex: str, *, since: int = 0, status: int | None = None
    ) -> list[RequestRecord]:
        pattern = re.compile(path_regex)
        return [
            r
            for r in self.requests
            if r.seq > since
            and r.status
            and method in ("*", r.method)
            and pattern.search(r.path)
            and (status is None or r.status == status)
        ]

    async def wait_for_request(
        self,
        method: str,
        path_regex: str,
        *,
        since: int = 0,
        status: int | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> RequestRecord:
        """The first finished request matching method + path (regex search) after seq `since`."""
        found = await self.wait_for(
            lambda: self.requests_matching(method, path_regex, since=since, status=status),
            timeout,
            f"{method} {path_regex} after seq {since}",
        )
        return found[0]

    async def wait_for_callback(
        self,
        record: InteractionRecord,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> InteractionRecord:
        await self.wait_for(lambda: record.responded, timeout, f"callback of {record.id}")
        return record

    async def wait_ready(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """A bot identified and got every GUILD_CREATE of its shard."""

        def ready() -> bool:
            session = self.gateway.session_for(self.guilds[0].id if self.guilds else None)
            if session is None or session.connection is None:
                return False
            sent = [f.t for f in self.gateway_log if f.session_id == session.id]
            return sent.count("GUILD_CREATE") >= sum(session.covers(g.id) for g in self.guilds)

        await self.wait_for(ready, timeout, "a READY gateway session")

    # --- lookups ------------------------------------------------------------------------------

    @property
    def guild(self) -> FakeGuild:
        """The first (default) guild."""
        return self.guilds[0]

    def guild_by_id(self, guild_id: int) -> FakeGuild | None:
        return next((g for g in self.guilds if g.id == guild_id), None)

    def channel_by_id(self, channel_id: int) -> tuple[FakeGuild, FakeChannel] | None:
        for guild in self.guilds:
            channel = guild.channel(channel_id)
            if channel is not None:
                return guild, channel
        return None

    def resolve_guild(self, ref: FakeGuild | int | None) -> FakeGuild:
        if ref is None:
            return self.guild
        if isinstance(ref, FakeGuild):
            return ref
        guild = self.guild_by_id(int(ref))
        if guild is None:
            raise LookupError(f"no guild {ref}")
        return guild

    def resolve_channel(self, ref: ChannelRef | None, guild: FakeGuild) -> FakeChannel:
        if ref is None:
            return guild.channels[0]
        if isinstance(ref, FakeChannel):
            return ref
        if isinstance(ref, str) and not ref.isdigit():
            found = guild.channel_named(ref)
        else:
            found = guild.channel(int(ref))
        if found is None:
            raise LookupError(f"no channel {ref!r} in guild {guild.id}")
        return found

    def resolve_user(self, ref: UserRef) -> FakeUser:
        if isinstance(ref, FakeUser):
            return ref
        if isinstance(ref, str) and not ref.isdigit():
            if ref in self.users:
                return self.users[ref]
            raise LookupError(f"no user {ref!r}; have {sorted(self.users)}")
        user_id = int(ref)
        found = next((u for u in self.users.values() if u.id == user_id), None)
        if found is None and user_id == self.bot_user.id:
            return self.bot_user
        if found is None:
            raise LookupError(f"no user {ref!r}")
        return found

    def resolve_role(self, ref: FakeRole | str | int, guild: FakeGuild) -> FakeRole:
        if isinstance(ref, FakeRole):
            return ref
        if isinstance(ref, str) and not ref.isdigit():
            found = next((r for r in guild.roles if r.name == ref), None)
        else:
            found = guild.role(int(ref))
        if found is None:
            raise LookupError(f"no role {ref!r}")
        return found

    def interaction_by_token(self, token: str) -> InteractionRecord | None:
        return self._by_token.get(token)

    def messages_in(
        self,
        channel: ChannelRef,
        *,
        guild: FakeGuild | int | None = None,
        include_deleted: bool = False,
        include_ephemeral: bool = False,
    ) -> list[MessageRecord]:
        """A channel's messages, oldest first, as the channel's members see them."""
        ch = self.resolve_channel(channel, self.resolve_guild(guild))
        return [
            m
            for m in self.messages.values()
            if m.channel_id == ch.id
            and (include_deleted or not m.deleted)
            and (include_ephemeral or not m.ephemeral)
        ]

    # --- commands ----------------------------------------------------------------------------

    def store_commands(self, scope: int | None, commands: list[JSON]) -> list[JSON]:
        """Replace a scope's commands; ids stay stable per (scope, type, name)."""
        previous = {(c.get("type", 1), c["name"]): c for c in self.commands.get(scope, [])}
        stored = [self._stored_command(scope, c, previous) for c in commands]
        self.commands[scope] = stored
        self.notify()
        return stored

    def _stored_command(
        self, scope: int | None, command: JSON, previous: dict[tuple[int, str], JSON]
    ) -> JSON:
        ctype = int(command.get("type", 1) or 1)
        key = (scope, ctype, command["name"])
        if key not in self._command_ids:
            self._command_ids[key] = self.snowflake()
        body = {
            "type": ctype,
            "name": command["name"],
            "name_localizations": command.get("name_localizations"),
            "description": command.get("description", ""),
            "description_localizations": command.get("description_localizations"),
            "options": command.get("options") or [],
            "default_member_permissions": command.get("default_member_permissions"),
            "dm_permission": command.get("dm_permission", True),
            "contexts": command.get("contexts"),
            "integration_types": command.get("integration_types", [0]),
            "nsfw": bool(command.get("nsfw", False)),
        }
        old = previous.get((ctype, command["name"]))
        unchanged = old is not None and all(old.get(k) == v for k, v in body.items())
        stored: JSON = {
            "id": str(self._command_ids[key]),
            "application_id": str(self.app_id),
            "version": old["version"] if unchanged and old else str(self.snowflake()),
            **body,
        }
        if scope is not None:
            stored["guild_id"] = str(scope)
        return stored

    def find_command(self, name: str, guild_id: int | None, ctype: int = 1) -> JSON | None:
        """Guild commands first, then global ones — the order a client shows them."""
        for scope in (guild_id, None):
            for command in self.commands.get(scope, []):
                if command["name"] == name and command["type"] == ctype:
                    return command
        return None

    # --- attachments, faults, limits --------------------------------------------------------

    def add_attachment(
        self, channel_id: int, upload: Upload, *, ephemeral: bool = False
    ) -> AttachmentRecord:
        """Store bytes the fake will serve under /attachments/... (e.g. for an option)."""
        record = AttachmentRecord(
            id=self.snowflake(),
            filename=upload.filename,
            data=upload.data,
            content_type=upload.content_type or guess_content_type(upload.filename),
            channel_id=channel_id,
            created_at=self.now(),
            ephemeral=ephemeral,
            description=upload.description,
            clock=self.now,
        )
        self.attachments[record.id] = record
        return record

    def inject(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        code: int | None = None,
        message: str | None = None,
        via: bool = True,
        retry_after: float = 0.1,
        times: int | None = 1,
        is_global: bool = False,
    ) -> Fault:
        """Answer the next `times` matching requests with this error instead of handling them."""
        fault = Fault(
            method=method.upper(),
            pattern=re.compile(path_regex),
            status=status,
            code=code,
            message=message,
            via=via,
            retry_after=retry_after,
            times=times,
            is_global=is_global,
        )
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.hits += 1
                return fault
        return None

    def set_rate_limit(
        self,
        method: str,
        path_regex: str,
        *,
        limit: int,
        per: float = 1.0,
        honest: bool = False,
        scope: str = "user",
        is_global: bool = False,
    ) -> RateLimitRule:
        """A real rate limit: more than `limit` matching requests per `per` seconds get 429.
        With `honest=False` the headers never show Remaining 0, so clients run into it."""
        rule = RateLimitRule(
            method=method.upper(),
            pattern=re.compile(path_regex),
            limit=limit,
            per=per,
            honest=honest,
            scope=scope,
            is_global=is_global,
            bucket=secrets.token_hex(8),
        )
        self.rate_limits.append(rule)
        return rule

    def set_limit_models(
        self,
        models: Iterable[LimitModel | str],
        *,
        specs: Mapping[LimitModel, BucketSpec] | None = None,
        invalid_limit: int = DEFAULT_INVALID_LIMIT,
        ban_s: float = DEFAULT_BAN_S,
    ) -> DiscordLimits:
        """Apply the chosen models of limits.py (`"abd"` or LimitModel values) from now on."""
        chosen = [m if isinstance(m, LimitModel) else LimitModel(m) for m in models]
        self.limits = DiscordLimits(
            self, chosen, specs=dict(specs or {}), invalid_limit=invalid_limit, ban_s=ban_s
        )
        return self.limits

    def set_upload_limit(self, limit: int) -> None:
        """Per-file upload limit; also what new interactions report as attachment_size_limit."""
        self.upload_limit = limit

    def set_old_message_edit_limit(self, limit: int | None) -> None:
        """After `limit` edits of a message older than 1 h, further edits get 429/30046."""
        self.old_message_edit_limit = limit

    # --- interactions ------------------------------------------------------------------------

    def _interaction_payload(
        self,
        *,
        itype: int,
        guild: FakeGuild,
        channel: FakeChannel,
        user: FakeUser,
        data: JSON,
        message: MessageRecord | None = None,
        locale: str = "en-US",
    ) -> tuple[int, str, JSON]:
        member = guild.member(user.id)
        if member is None:
            raise InteractionRefused(f"{user.username} is not a member of guild {guild.id}")
        perms = guild.permissions_for(user.id)
        iid = self.snowflake()
        token = "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(96)
        payload: JSON = {
            "id": str(iid),
            "application_id": str(self.app_id),
            "type": itype,
            "token": token,
            "version": 1,
            "guild_id": str(guild.id),
            "guild": {
                "id": str(guild.id),
                "locale": guild.preferred_locale,
                "features": list(guild.features),
            },
            "channel_id": str(channel.id),
            "channel": channel.payload(perms),
            "member": member.payload(permissions=perms),
            "app_permissions": str(guild.permissions_for(self.bot_user.id)),
            "locale": locale,
            "guild_locale": guild.preferred_locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": self.upload_limit,
            "data": data,
        }
        if message is not None:
            payload["message"] = message.payload(self.base_url)
        return iid, token, payload

    async def _dispatch_interaction(
        self,
        *,
        itype: int,
        guild: FakeGuild,
        channel: FakeChannel,
        user: FakeUser,
        data: JSON,
        message: MessageRecord | None = None,
        source: InteractionRecord | None = None,
        locale: str = "en-US",
    ) -> InteractionRecord:
        iid, token, payload = self._interaction_payload(
            itype=itype,
            guild=guild,
            channel=channel,
            user=user,
            data=data,
            message=message,
            locale=locale,
        )
        record = InteractionRecord(
            id=iid,
            token=token,
            type=itype,
            application_id=self.app_id,
            guild_id=guild.id,
            channel_id=channel.id,
            user_id=user.id,
            data=data,
            payload=payload,
            created_at=self.now(),
            message_id=message.id if message is not None else None,
            source_id=source.id if source is not None else None,
        )
        self.interactions[iid] = record
        self._by_token[token] = record
        await self.gateway.dispatch_interaction(payload, guild.id)
        self.notify()
        return record

    def _command_interaction_data(
        self,
        name: str,
        options: Mapping[str, Any] | Sequence[JSON] | None,
        *,
        guild: FakeGuild,
        channel: FakeChannel,
        user: FakeUser,
        subcommand: str | Sequence[str] | None,
        focused: str | None,
    ) -> JSON:
        path = command_path(name, subcommand)
        command = self.find_command(path[0], guild.id)
        if command is None:
            raise InteractionRefused(f"/{path[0]} is not registered (sync the command tree first)")
        check_can_use(command, guild, channel, user)
        builder = OptionBuilder(self, guild, channel)
        built = builder.build(command, path, options, focused=focused)
        data: JSON = {"id": command["id"], "name": command["name"], "type": 1}
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]  # how the tree finds guild commands (§4)
        if built:
            data["options"] = built
        if builder.resolved:
            data["resolved"] = builder.resolved
        return data

    async def slash(
        self,
        name: str,
        options: Mapping[str, Any] | Sequence[JSON] | None = None,
        *,
        user: UserRef = "tester",
        channel: ChannelRef | None = None,
        guild: FakeGuild | int | None = None,
        attachments: Mapping[str, Upload | tuple[str, bytes]] | None = None,
        subcommand: str | Sequence[str] | None = None,
        locale: str = "en-US",
    ) -> InteractionRecord:
        """Invoke a registered slash command as `user` would; returns the interaction record.

        `name` may carry the subcommand path ("settings show"); attachment options may be
        given in `options` or in `attachments` as `Upload` or `(filename, bytes)`.
        """
        g = self.resolve_guild(guild)
        ch = self.resolve_channel(channel, g)
        u = self.resolve_user(user)
        merged: Mapping[str, Any] | Sequence[JSON] | None = options
        if attachments:
            if options is not None and not isinstance(options, Mapping):
                raise InteractionRefused("give attachments inside raw option lists yourself")
            merged = {**(options or {}), **attachments}
        data = self._command_interaction_data(
            name, merged, guild=g, channel=ch, user=u, subcommand=subcommand, focused=None
        )
        return await self._dispatch_interaction(
            itype=2, guild=g, channel=ch, user=u, data=data, locale=locale
        )

    async def autocomplete(
        self,
        name: str,
        options: Mapping[str, Any],
        *,
        focused: str,
        user: UserRef = "tester",
        channel: ChannelRef | None = None,
        guild: FakeGuild | int | None = None,
        subcommand: str | Sequence[str] | None = None,
    ) -> InteractionRecord:
        """Type-4 interaction while `focused` is being typed; wait for `autocomplete_choices`."""
        g = self.resolve_guild(guild)
        ch = self.resolve_channel(channel, g)
        u = self.resolve_user(user)
        data = self._command_interaction_data(
            name, options, guild=g, channel=ch, user=u, subcommand=subcommand, focused=focused
        )
        return await self._dispatch_interaction(itype=4, guild=g, channel=ch, user=u, data=data)

    async def click(
        self,
        message_id: int,
        custom_id: str,
        *,
        user: UserRef = "tester",
        values: Sequence[str] | None = None,
    ) -> InteractionRecord:
        """Click a button (or choose select `values`) present and enabled on a message."""
        message = self.messages.get(int(message_id))
        if message is None or message.deleted:
            raise InteractionRefused(f"message {message_id} does not exist (or was deleted)")
        u = self.resolve_user(user)
        owner = ephemeral_owner(message)
        if owner is not None and owner != u.id:
            raise InteractionRefused("only its recipient can see an ephemeral message")
        found = self.channel_by_id(message.channel_id)
        if found is None:
            raise InteractionRefused(f"channel {message.channel_id} is gone")
        guild, channel = found
        data = click_data(message, custom_id, values)
        return await self._dispatch_interaction(
            itype=3, guild=guild, channel=channel, user=u, data=data, message=message
        )

    async def submit_modal(
        self,
        record: InteractionRecord,
        values: Mapping[str, Any],
        *,
        user: UserRef | None = None,
    ) -> InteractionRecord:
        """Submit the modal the bot opened in answer to `record` (type 9 only)."""
        if record.response_type != 9 or record.modal is None:
            raise InteractionRefused(f"interaction {record.id} was not answered with a modal")
        if record.modal_submitted:
            raise InteractionRefused("this modal was already submitted")
        u = self.resolve_user(user if user is not None else record.user_id)
        if u.id != record.user_id:
            raise InteractionRefused("only the user who opened a modal can submit it")
        guild = self.resolve_guild(record.guild_id)
        channel = self.resolve_channel(record.channel_id, guild)
        data: JSON = {
            "custom_id": record.modal["custom_id"],
            "components": modal_submit_components(record.modal, values),
        }
        message = self.messages.get(record.message_id) if record.message_id else None
        record.modal_submitted = True
        return await self._dispatch_interaction(
            itype=5,
            guild=guild,
            channel=channel,
            user=u,
            data=data,
            message=message if message is not None and not message.deleted else None,
            source=record,
        )

    # --- moderation and gateway triggers ----------------------------------------------------

    async def delete_message(self, message_id: int) -> None:
        """Delete a message as a moderator would (MESSAGE_DELETE to the bot)."""
        message = self.messages.get(int(message_id))
        if message is None or message.deleted:
            raise LookupError(f"no message {message_id}")
        await self.message_service.delete(message)

    async def send_reconnect(self) -> int:
        """op 7 RECONNECT: the bot should close and RESUME."""
        return await self.gateway.send_reconnect()

    async def send_invalid_session(self, resumable: bool) -> int:
        """op 9; `resumable=False` also forgets the session, so only IDENTIFY works."""
        return await self.gateway.send_invalid_session(resumable)

    async def drop_gateway(self, code: int | None = None) -> int:
        """Drop the websocket(s): abruptly when `code` is None, else with that close code."""
        return await self.gateway.drop(code)
