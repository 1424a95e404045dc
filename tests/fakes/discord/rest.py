"""The REST API under /api/v9 and /api/v10 (§2, §5, §6, §7), and the attachment CDN.

Every request is parsed once (JSON, or multipart `payload_json` + `files[n]`), logged, checked
against injected faults and rate limits, routed, and answered with exactly
`Content-Type: application/json` plus rate-limit headers, as discord.py expects (§6, §9).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from .limits import BAN_PAGE
from .messages import ParsedFile
from .models import (
    F_COMPONENTS_V2,
    F_EPHEMERAL,
    F_SUPPRESS_EMBEDS,
    F_SUPPRESS_NOTIFICATIONS,
    JSON,
    ApiError,
    FakeChannel,
    FakeGuild,
    Fault,
    FileInfo,
    InteractionRecord,
    MessageRecord,
    RequestRecord,
    already_acknowledged,
    invalid_json,
    invalid_webhook_token,
    not_author,
    not_found,
    too_large,
    unauthorized,
    unknown_channel,
    unknown_command,
    unknown_guild,
    unknown_interaction,
    unknown_member,
    unknown_message,
    unknown_user,
    unknown_webhook,
)
from .validation import (
    FormErrors,
    validate_choices,
    validate_command,
    validate_commands,
    validate_modal,
)

if TYPE_CHECKING:
    from .server import FakeDiscord

API_RE = re.compile(r"^/api/v(\d+)(/.*)$")
SUPPORTED_VERSIONS = (9, 10)

# Which callback types each interaction type accepts (§5).
CALLBACKS_ALLOWED: dict[int, set[int]] = {
    1: {1},
    2: {4, 5, 9},
    3: {4, 5, 6, 7, 9},
    4: {8},
    5: {4, 5, 6, 7},
}
INTERACTION_FLAGS = F_EPHEMERAL | F_SUPPRESS_EMBEDS | F_SUPPRESS_NOTIFICATIONS | F_COMPONENTS_V2
CHANNEL_FLAGS = F_SUPPRESS_EMBEDS | F_SUPPRESS_NOTIFICATIONS | F_COMPONENTS_V2

KNOWN_CODES = {
    0: "General error",
    10003: "Unknown Channel",
    10008: "Unknown Message",
    10015: "Unknown Webhook",
    10062: "Unknown interaction",
    30046: "Maximum number of edits to messages older than 1 hour reached. Try again later",
    40005: "Request entity too large",
    40060: "Interaction has already been acknowledged.",
    50001: "Missing Access",
    50013: "Missing Permissions",
    50027: "Invalid Webhook Token",
    50035: "Invalid Form Body",
}
STATUS_TEXT = {
    400: "400: Bad Request",
    401: "401: Unauthorized",
    403: "403: Forbidden",
    404: "404: Not Found",
    405: "405: Method Not Allowed",
    500: "500: Internal Server Error",
    502: "502: Bad Gateway",
    503: "503: Service Unavailable",
    504: "504: Gateway Timeout",
}

Reply = tuple[int, Any]


@dataclass
class Ctx:
    request: web.Request
    method: str
    path: str
    query: dict[str, str]
    params: dict[str, str]
    json: Any = None
    payload_json: Any = None
    multipart: bool = False
    files: list[ParsedFile] = field(default_factory=list)

    @property
    def body(self) -> Any:
        return self.payload_json if self.multipart else self.json


Handler = Callable[[Ctx], Awaitable[Reply]]


@dataclass
class Route:
    method: str
    template: str
    regex: re.Pattern[str]
    handler: Handler
    bot_auth: bool
    bucket: str


def json_response(status: int, body: Any, headers: dict[str, str]) -> web.Response:
    if body is None:
        return web.Response(status=status, headers=headers)
    # Exactly "application/json": discord.py parses nothing else as JSON (§9).
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={**headers, "Content-Type": "application/json"},
    )


class RestApi:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.routes: list[Route] = []
        r = self._route
        r("GET", "/users/@me", self.get_me)
        r("GET", "/users/{user_id}", self.get_user)
        r("GET", "/oauth2/applications/@me", self.get_application)
        r("GET", "/applications/@me", self.get_application)
        r("GET", "/gateway", self.get_gateway, bot_auth=False)
        r("GET", "/gateway/bot", self.get_gateway_bot)
        for prefix in ("/applications/{app_id}", "/applications/{app_id}/guilds/{guild_id}"):
            r("GET", f"{prefix}/commands", self.list_commands)
            r("PUT", f"{prefix}/commands", self.put_commands)
            r("POST", f"{prefix}/commands", self.post_command)
            r("GET", f"{prefix}/commands/{{command_id}}", self.get_command)
            r("PATCH", f"{prefix}/commands/{{command_id}}", self.patch_command)
            r("DELETE", f"{prefix}/commands/{{command_id}}", self.delete_command)
        cb = "/interactions/{interaction_id}/{token}/callback"
        r("POST", cb, self.interaction_callback, bot_auth=False)
        orig = "/webhooks/{app_id}/{token}/messages/@original"
        r("GET", orig, self.get_original, bot_auth=False)
        r("PATCH", orig, self.edit_original, bot_auth=False)
        r("DELETE", orig, self.delete_original, bot_auth=False)
        r("POST", "/webhooks/{app_id}/{token}", self.post_followup, bot_auth=False)
        msg = "/webhooks/{app_id}/{token}/messages/{message_id}"
        r("GET", msg, self.get_followup, bot_auth=False)
        r("PATCH", msg, self.edit_followup, bot_auth=False)
        r("DELETE", msg, self.delete_followup, bot_auth=False)
        r("GET", "/channels/{channel_id}", self.get_channel)
        r("POST", "/channels/{channel_id}/typing", self.typing)
        r("GET", "/channels/{channel_id}/messages", self.list_messages)
        r("POST", "/channels/{channel_id}/messages", self.post_message)
        r("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message)
        r("PATCH", "/channels/{channel_id}/messages/{message_id}", self.edit_message)
        r("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message)
        r("GET", "/guilds/{guild_id}", self.get_guild)
        r("GET", "/guilds/{guild_id}/channels", self.get_guild_channels)
        r("GET", "/guilds/{guild_id}/roles", self.get_guild_roles)
        r("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member)

    def _route(
        self, method: str, template: str, handler: Handler, *, bot_auth: bool = True
    ) -> None:
        pattern = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        bucket = hashlib.sha1(f"{method} {template}".encode()).hexdigest()[:16]
        self.routes.append(
            Route(method, template, re.compile(f"^{pattern}$"), handler, bot_auth, bucket)
        )

    def _match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, params, path_known): a known path with another method is a 405."""
        path_known = False
        for route in self.routes:
            match = route.regex.match(path)
            if match:
                path_known = True
                if route.method == method:
                    return route, match.groupdict(), True
        return None, {}, path_known

    # --- entry points -----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        fake = self.fake
        match = API_RE.match(request.path)
        if match is None:
            return await self.unknown(request)
        version, path = int(match.group(1)), match.group(2)
        method = request.method.upper()
        record = RequestRecord(
            seq=fake.next_seq(),
            at=fake.now(),
            method=method,
            path=path,
            version=version,
            query=dict(request.query),
            auth="Authorization" in request.headers,
        )
        fake.requests.append(record)
        route, params, path_known = self._match(method, path)
        record.route = route.template if route else None
        ctx = Ctx(request, method, path, dict(request.query), params)
        headers: dict[str, str] = {}
        try:
            await self._parse_body(request, ctx, record)
            fault = fake.take_fault(method, path)
            limited, rl_headers = (None, None) if fault else self._rate_limited(method, path)
            if fake.limits is not None and fault is None and limited is None:
                verdict = fake.limits.check(method, path)
                if verdict.banned:
                    record.fault = "banned"
                    record.status = 403
                    fake.notify()
                    return web.Response(status=403, text=BAN_PAGE, content_type="text/html")
                limited = verdict.refusal
                if limited is not None:
                    fake.count_429 += 1
                rl_headers = verdict.headers or None
            if fault is not None:
                record.fault = "injected"
                status, body, headers = self._fault_reply(fault.status, fault, route)
            elif limited is not None:
                record.fault = "rate-limited"
                status, body, headers = limited
            elif route is None or version not in SUPPORTED_VERSIONS:
                fake.unknown_routes.append((method, request.path))
                if path_known and version in SUPPORTED_VERSIONS:
                    raise ApiError(405, 0, "405: Method Not Allowed")
                raise not_found()
            else:
                for upload in ctx.files:  # per file, as Discord checks (§8)
                    if len(upload.data) > fake.upload_limit:
                        raise too_large()
                if (
                    route.bot_auth
                    and request.headers.get("Authorization") != f"Bot {fake.bot_token}"
                ):
                    raise unauthorized()
                status, body = await route.handler(ctx)
                headers = rl_headers or self._ratelimit_headers(route.bucket)
        except ApiError as error:
            status, body = error.status, error.body()
            headers = {**(self._ratelimit_headers(route.bucket) if route else {}), **error.headers}
        except Exception:  # a bug in the fake: answer like Discord's 500, and keep the trace
            fake.internal_errors.append(f"{method} {request.path}\n{traceback.format_exc()}")
            status, body, headers = 500, {"message": "500: Internal Server Error", "code": 0}, {}
        record.status, record.reply = status, body
        if fake.limits is not None:
            fake.limits.record_status(status, headers)
        fake.notify()
        return json_response(status, body, headers)

    async def unknown(self, request: web.Request) -> web.StreamResponse:
        self.fake.unknown_routes.append((request.method, request.path))
        self.fake.notify()
        return json_response(404, {"message": "404: Not Found", "code": 0}, {})

    async def cdn(self, request: web.Request) -> web.StreamResponse:
        """Attachment bytes, for `Attachment.read()` and for tests (§1)."""
        fake = self.fake
        status = 404
        try:
            attachment = fake.attachments.get(int(request.match_info["attachment_id"]))
        except ValueError:
            attachment = None
        ex = request.query.get("ex")
        if (
            attachment is not None
            and str(attachment.channel_id) == request.match_info["channel_id"]
        ):
            try:
                expired = ex is not None and int(ex, 16) < fake.now()
                forged = "hm" in request.query and request.query["hm"] != attachment.signature(
                    int(ex, 16) if ex is not None else None
                )
            except ValueError:
                expired = forged = True
            if not expired and not forged:
                status = 200
        fake.downloads.append((request.path, status))
        fake.notify()
        if status != 200 or attachment is None:
            return web.Response(status=404, text="This content is no longer available.")
        return web.Response(body=attachment.data, headers={"Content-Type": attachment.content_type})

    # --- plumbing ---------------------------------------------------------------------------

    async def _parse_body(self, request: web.Request, ctx: Ctx, record: RequestRecord) -> None:
        content_type = request.content_type
        if content_type.startswith("multipart/"):
            ctx.multipart = True
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    continue  # nested multiparts are not something Discord accepts either
                name = part.name or ""
                data = await part.read(decode=False)
                if name == "payload_json":
                    try:
                        ctx.payload_json = json.loads(data)
                    except ValueError as error:
                        raise invalid_json() from error
                    record.payload_json = ctx.payload_json
                elif part.filename is not None:
                    upload = ParsedFile(
                        field=name,
                        filename=part.filename,
                        data=bytes(data),
                        content_type=part.headers.get("Content-Type"),
                    )
                    ctx.files.append(upload)
                    record.files.append(
                        FileInfo(name, upload.filename, len(upload.data), upload.content_type)
                    )
            return
        raw = await request.read()
        if not raw:
            return
        if content_type == "application/json":
            try:
                ctx.json = json.loads(raw)
            except ValueError as error:
                raise invalid_json() from error
            record.json = ctx.json

    def _ratelimit_headers(self, bucket: str, remaining: int = 4, limit: int = 5) -> dict[str, str]:
        now = self.fake.now()
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{now + 1:.3f}",
            "X-RateLimit-Reset-After": "1.000",
            "X-RateLimit-Bucket": bucket,
        }

    def _rate_limited(
        self, method: str, path: str
    ) -> tuple[tuple[int, JSON, dict[str, str]] | None, dict[str, str] | None]:
        """(a 429 reply, or None) and the headers to send when the request goes through."""
        fake = self.fake
        for rule in fake.rate_limits:
            if not rule.matches(method, path):
                continue
            now = fake.now()
            if now - rule.window_start >= rule.per:
                rule.window_start, rule.count = now, 0
            rule.count += 1
            reset_after = max(rule.window_start + rule.per - now, 0.001)
            if rule.count > rule.limit:
                fake.count_429 += 1
                body: JSON = {
                    "message": "You are being rate limited.",
                    "retry_after": round(reset_after, 3),
                    "global": rule.is_global,
                }
                headers = self._429_headers(reset_after, rule.bucket, rule.limit, rule.scope)
                if rule.is_global:
                    headers["X-RateLimit-Global"] = "true"
                    body["code"] = 0
                return (429, body, headers), None
            remaining = rule.limit - rule.count if rule.honest else max(rule.limit - rule.count, 1)
            headers = self._ratelimit_headers(rule.bucket, remaining=remaining, limit=rule.limit)
            headers["X-RateLimit-Reset-After"] = f"{reset_after:.3f}"
            headers["X-RateLimit-Reset"] = f"{now + reset_after:.3f}"
            return None, headers
        return None, None

    def _429_headers(
        self, retry_after: float, bucket: str, limit: int, scope: str
    ) -> dict[str, str]:
        return {
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{self.fake.now() + retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": bucket,
            "X-RateLimit-Scope": scope,
            "Via": "1.1 google",
        }

    def _fault_reply(
        self, status: int, fault: Fault, route: Route | None
    ) -> tuple[int, JSON, dict[str, str]]:
        bucket = route.bucket if route else "unknown"
        if status == 429:
            self.fake.count_429 += 1
            body: JSON = {
                "message": fault.message or "You are being rate limited.",
                "retry_after": fault.retry_after,
                "global": fault.is_global,
            }
            if fault.code is not None:
                body["code"] = fault.code
            headers = self._429_headers(fault.retry_after, bucket, 5, "shared")
            if fault.is_global:
                headers["X-RateLimit-Global"] = "true"
                headers["X-RateLimit-Scope"] = "global"
            if not fault.via:
                headers.pop("Via")
            return status, body, headers
        code = fault.code if fault.code is not None else (50013 if status == 403 else 0)
        message = fault.message or (
            KNOWN_CODES.get(code, f"Error {code}")
            if code
            else STATUS_TEXT.get(status, f"{status}: Error")
        )
        headers = self._ratelimit_headers(bucket)
        if fault.via:
            headers["Via"] = "1.1 google"
        return status, {"message": message, "code": code}, headers

    # --- identity ---------------------------------------------------------------------------

    async def get_me(self, ctx: Ctx) -> Reply:
        user = self.fake.bot_user.payload()
        return 200, {**user, "verified": True, "mfa_enabled": False, "flags": 0, "locale": "en-US"}

    async def get_user(self, ctx: Ctx) -> Reply:
        try:
            return 200, self.fake.resolve_user(int(ctx.params["user_id"])).payload()
        except (LookupError, ValueError) as error:
            raise unknown_user() from error

    async def get_application(self, ctx: Ctx) -> Reply:
        fake = self.fake
        owner = fake.resolve_user(fake.guild.owner_id) if fake.guilds else fake.bot_user
        return 200, {
            "id": str(fake.app_id),
            "name": fake.bot_user.global_name or fake.bot_user.username,
            "icon": None,
            "description": "A fake application",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": hashlib.sha256(str(fake.app_id).encode()).hexdigest(),
            "owner": owner.payload(),
            "team": None,
            "flags": fake.app_flags,
            "bot": fake.bot_user.payload(),
            "interactions_endpoint_url": None,  # else interactions "won't come via gateway" (§2)
            "redirect_uris": [],
            "tags": [],
            "approximate_guild_count": len(fake.guilds),
            "hook": True,
        }

    async def get_gateway(self, ctx: Ctx) -> Reply:
        return 200, {"url": self.fake.gateway_url}

    async def get_gateway_bot(self, ctx: Ctx) -> Reply:
        return 200, {
            "url": self.fake.gateway_url,
            "shards": self.fake.shards,
            "session_start_limit": {
                "total": 1000,
                "remaining": 999,
                "reset_after": 14_400_000,
                "max_concurrency": self.fake.identify_spacing.max_concurrency,
            },
        }

    # --- application commands ---------------------------------------------------------------

    def _scope(self, ctx: Ctx) -> int | None:
        if ctx.params.get("app_id") != str(self.fake.app_id):
            raise ApiError(403, 50001, "Missing Access")
        guild_id = ctx.params.get("guild_id")
        if guild_id is None:
            return None
        if not guild_id.isdigit() or self.fake.guild_by_id(int(guild_id)) is None:
            raise ApiError(403, 50001, "Missing Access")
        return int(guild_id)

    async def list_commands(self, ctx: Ctx) -> Reply:
        return 200, self.fake.commands.get(self._scope(ctx), [])

    async def put_commands(self, ctx: Ctx) -> Reply:
        scope = self._scope(ctx)
        validate_commands(ctx.json)
        return 200, self.fake.store_commands(scope, ctx.json)

    async def post_command(self, ctx: Ctx) -> Reply:
        scope = self._scope(ctx)
        errors = FormErrors()
        validate_command(ctx.json, (), errors)
        errors.raise_if_any()
        current = list(self.fake.commands.get(scope, []))
        ctype = int(ctx.json.get("type", 1) or 1)
        existing = [c for c in current if (c["type"], c["name"]) == (ctype, ctx.json["name"])]
        others = [c for c in current if c not in existing]
        stored = self.fake.store_commands(scope, [*others, ctx.json])
        return (200 if existing else 201), stored[-1]

    def _command(self, ctx: Ctx) -> tuple[int | None, JSON]:
        scope = self._scope(ctx)
        found = next(
            (c for c in self.fake.commands.get(scope, []) if c["id"] == ctx.params["command_id"]),
            None,
        )
        if found is None:
            raise unknown_command()
        return scope, found

    async def get_command(self, ctx: Ctx) -> Reply:
        return 200, self._command(ctx)[1]

    async def patch_command(self, ctx: Ctx) -> Reply:
        scope, found = self._command(ctx)
        merged = {**found, **(ctx.json or {})}
        errors = FormErrors()
        validate_command(merged, (), errors)
        errors.raise_if_any()
        current = [merged if c is found else c for c in self.fake.commands.get(scope, [])]
        stored = self.fake.store_commands(scope, current)
        return 200, next(c for c in stored if c["id"] == found["id"])

    async def delete_command(self, ctx: Ctx) -> Reply:
        scope, found = self._command(ctx)
        rest = [c for c in self.fake.commands.get(scope, []) if c is not found]
        self.fake.store_commands(scope, rest)
        return 204, None

    # --- interaction callbacks --------------------------------------------------------------

    async def interaction_callback(self, ctx: Ctx) -> Reply:
        fake = self.fake
        try:
            record = fake.interactions.get(int(ctx.params["interaction_id"]))
        except ValueError:
            record = None
        if record is None or record.token != ctx.params["token"]:
            raise unknown_interaction()
        record.callback_attempts += 1
        if fake.now() - record.created_at > fake.callback_deadline:
            raise unknown_interaction()  # the 3-second rule (§7)
        if record.responded:
            raise already_acknowledged()
        body = ctx.body
        if not isinstance(body, dict) or not isinstance(body.get("type"), int):
            raise ApiError(
                400,
                50035,
                "Invalid Form Body",
                {
                    "type": {
                        "_errors": [
                            {"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}
                        ]
                    }
                },
            )
        ctype: int = body["type"]
        data = body.get("data") or {}
        allowed = set(CALLBACKS_ALLOWED.get(record.type, set()))
        if record.type == 5 and record.message_id is None:
            allowed -= {7}  # updating a message needs a modal opened from a component
        if ctype not in allowed:
            raise ApiError(
                400,
                50035,
                "Invalid Form Body",
                {
                    "type": {
                        "_errors": [
                            {
                                "code": "INTERACTION_CALLBACK_TYPE_INVALID",
                                "message": f"Callback type {ctype} is not valid for "
                                f"interaction type {record.type}",
                            }
                        ]
                    }
                },
            )

        message: MessageRecord | None = None
        if ctype in (4, 5):
            message = await self._create_response_message(
                record, data, ctx.files, loading=ctype == 5
            )
            record.original_message_id = message.id
        elif ctype in (6, 7) and record.message_id is not None:
            clicked = fake.messages.get(record.message_id)
            if clicked is None or clicked.deleted:
                raise unknown_message()
            if ctype == 7:
                await fake.message_service.edit(clicked, data, ctx.files)
                message = clicked
            record.original_message_id = clicked.id  # @original is the clicked message now
        elif ctype == 8:
            record.autocomplete_choices = validate_choices(data)
        elif ctype == 9:
            validate_modal(data)
            record.modal = json.loads(json.dumps(data))

        record.response_type = ctype
        record.response_data = data
        fake.notify()
        if ctx.query.get("with_response", "").lower() not in ("1", "true"):
            return 204, None
        interaction: JSON = {"id": str(record.id), "type": record.type}
        resource: JSON = {"type": ctype}
        if message is not None:
            interaction.update(
                response_message_id=str(message.id),
                response_message_loading=ctype == 5,
                response_message_ephemeral=message.ephemeral,
            )
            resource["message"] = message.payload(fake.base_url)
        return 200, {"interaction": interaction, "resource": resource}

    def _metadata(self, record: InteractionRecord, **extra: Any) -> JSON:
        user = self.fake.resolve_user(record.user_id)
        meta: JSON = {
            "id": str(record.id),
            "type": record.type,
            "user": user.payload(),
            "authorizing_integration_owners": {"0": str(record.guild_id)},
        }
        if record.type == 2:
            meta["name"] = record.data.get("name")
            meta["command_type"] = 1
        if record.message_id is not None:
            meta["interacted_message_id"] = str(record.message_id)
        meta.update({k: v for k, v in extra.items() if v is not None})
        return meta

    def _channel_of(self, record: InteractionRecord) -> FakeChannel:
        found = self.fake.channel_by_id(record.channel_id)
        if found is None:
            raise unknown_channel()
        return found[1]

    async def _create_response_message(
        self, record: InteractionRecord, data: JSON, files: list[ParsedFile], *, loading: bool
    ) -> MessageRecord:
        service = self.fake.message_service
        payload = data if not loading else {"flags": data.get("flags", 0)}
        message = service.build(
            channel=self._channel_of(record),
            payload=payload,
            files=[] if loading else files,
            author=self.fake.bot_user.payload(),
            msg_type=20 if record.type == 2 else 0,
            allowed_flags=INTERACTION_FLAGS if not loading else F_EPHEMERAL,
            interaction_id=record.id,
            interaction_metadata=self._metadata(record),
            loading=loading,
        )
        return await service.commit_new(message)

    # --- webhook-token routes: @original and followups --------------------------------------

    def _token_interaction(self, ctx: Ctx) -> InteractionRecord:
        fake = self.fake
        record = fake.interaction_by_token(ctx.params["token"])
        if record is None or ctx.params["app_id"] != str(fake.app_id):
            raise unknown_webhook()
        if fake.now() - record.created_at > fake.token_ttl:
            raise invalid_webhook_token()  # the 15-minute rule (§7)
        if not record.responded or record.response_type in (1, 8):
            raise unknown_webhook()
        return record

    def _owned_message(self, record: InteractionRecord, message_id: int | None) -> MessageRecord:
        if message_id is None:
            message_id = record.original_message_id
        elif message_id not in (record.original_message_id, *record.followup_ids):
            raise unknown_message()
        message = self.fake.messages.get(message_id or 0)
        if message is None or message.deleted:
            raise unknown_message()
        return message

    async def get_original(self, ctx: Ctx) -> Reply:
        record = self._token_interaction(ctx)
        return 200, self._owned_message(record, None).payload(self.fake.base_url)

    async def edit_original(self, ctx: Ctx) -> Reply:
        record = self._token_interaction(ctx)
        message = self._owned_message(record, None)
        await self.fake.message_service.edit(message, ctx.body, ctx.files)
        return 200, message.payload(self.fake.base_url)

    async def delete_original(self, ctx: Ctx) -> Reply:
        record = self._token_interaction(ctx)
        await self.fake.message_service.delete(self._owned_message(record, None))
        return 204, None

    async def post_followup(self, ctx: Ctx) -> Reply:
        fake = self.fake
        record = self._token_interaction(ctx)
        payload = ctx.body if isinstance(ctx.body, dict) else {}
        original = fake.messages.get(record.original_message_id or 0)
        if (
            record.response_type == 5
            and original is not None
            and original.loading
            and not original.deleted
        ):
            # The first followup after a defer fills in the "thinking" message (§5).
            await fake.message_service.edit(original, payload, ctx.files)
            message = original
        else:
            service = fake.message_service
            message = service.build(
                channel=self._channel_of(record),
                payload=payload,
                files=ctx.files,
                author=fake.bot_user.payload(),
                msg_type=0,
                allowed_flags=INTERACTION_FLAGS,
                interaction_id=record.id,
                interaction_metadata=self._metadata(
                    record, original_response_message_id=record.original_message_id
                ),
            )
            record.followup_ids.append(message.id)
            await service.commit_new(message)
        if ctx.query.get("wait", "").lower() not in ("1", "true"):
            return 204, None
        return 200, message.payload(fake.base_url)

    def _message_id(self, ctx: Ctx) -> int:
        try:
            return int(ctx.params["message_id"])
        except ValueError as error:
            raise unknown_message() from error

    async def get_followup(self, ctx: Ctx) -> Reply:
        record = self._token_interaction(ctx)
        return 200, self._owned_message(record, self._message_id(ctx)).payload(self.fake.base_url)

    async def edit_followup(self, ctx: Ctx) -> Reply:
        record = self._token_interaction(ctx)
        message = self._owned_message(record, self._message_id(ctx))
        await self.fake.message_service.edit(message, ctx.body, ctx.files)
        return 200, message.payload(self.fake.base_url)

    async def delete_followup(self, ctx: Ctx) -> Reply:
        record = self._token_interaction(ctx)
        await self.fake.message_service.delete(self._owned_message(record, self._message_id(ctx)))
        return 204, None

    # --- channels and messages (bot token) --------------------------------------------------

    def _channel(self, ctx: Ctx) -> FakeChannel:
        try:
            found = self.fake.channel_by_id(int(ctx.params["channel_id"]))
        except ValueError:
            found = None
        if found is None:
            raise unknown_channel()
        return found[1]

    def _channel_message(self, ctx: Ctx) -> MessageRecord:
        channel = self._channel(ctx)
        message = self.fake.messages.get(self._message_id(ctx))
        # Ephemeral messages do not exist for the bot token.
        if (
            message is None
            or message.deleted
            or message.ephemeral
            or message.channel_id != channel.id
        ):
            raise unknown_message()
        return message

    async def get_channel(self, ctx: Ctx) -> Reply:
        channel = self._channel(ctx)
        return 200, channel.payload()

    async def typing(self, ctx: Ctx) -> Reply:
        self._channel(ctx)
        return 204, None

    async def list_messages(self, ctx: Ctx) -> Reply:
        channel = self._channel(ctx)
        try:
            limit = max(1, min(int(ctx.query.get("limit", "50")), 100))
            before = int(ctx.query["before"]) if "before" in ctx.query else None
            after = int(ctx.query["after"]) if "after" in ctx.query else None
        except ValueError as error:
            errors = FormErrors()
            errors.add(("limit",), "NUMBER_TYPE_COERCE", "Value is not int.")
            raise ApiError(400, 50035, "Invalid Form Body", errors.tree()) from error
        found = [
            m
            for m in self.fake.messages.values()
            if m.channel_id == channel.id
            and not m.deleted
            and not m.ephemeral
            and not m.loading
            and (before is None or m.id < before)
            and (after is None or m.id > after)
        ]
        found.sort(key=lambda m: m.id, reverse=True)
        return 200, [m.payload(self.fake.base_url) for m in found[:limit]]

    async def post_message(self, ctx: Ctx) -> Reply:
        fake = self.fake
        channel = self._channel(ctx)
        payload = ctx.body if isinstance(ctx.body, dict) else {}
        service = fake.message_service
        message = service.build(
            channel=channel,
            payload=payload,
            files=ctx.files,
            author=fake.bot_user.payload(),
            msg_type=19 if payload.get("message_reference") else 0,
            allowed_flags=CHANNEL_FLAGS,
        )
        await service.commit_new(message)
        return 200, message.payload(fake.base_url)

    async def get_message(self, ctx: Ctx) -> Reply:
        return 200, self._channel_message(ctx).payload(self.fake.base_url)

    async def edit_message(self, ctx: Ctx) -> Reply:
        message = self._channel_message(ctx)
        if message.author.get("id") != str(self.fake.bot_user.id):
            raise not_author()
        await self.fake.message_service.edit(message, ctx.body, ctx.files)
        return 200, message.payload(self.fake.base_url)

    async def delete_message(self, ctx: Ctx) -> Reply:
        message = self._channel_message(ctx)
        await self.fake.message_service.delete(message)
        return 204, None

    # --- guilds -----------------------------------------------------------------------------

    def _guild(self, ctx: Ctx) -> FakeGuild:
        try:
            guild = self.fake.guild_by_id(int(ctx.params["guild_id"]))
        except ValueError:
            guild = None
        if guild is None:
            raise unknown_guild()
        return guild

    async def get_guild(self, ctx: Ctx) -> Reply:
        guild = self._guild(ctx)
        data = guild.create_payload(members=[], now=self.fake.now())
        for key in ("channels", "members", "threads", "voice_states", "presences", "joined_at"):
            data.pop(key, None)
        return 200, data

    async def get_guild_channels(self, ctx: Ctx) -> Reply:
        return 200, [c.payload() for c in self._guild(ctx).channels]

    async def get_guild_roles(self, ctx: Ctx) -> Reply:
        return 200, [r.payload() for r in self._guild(ctx).roles]

    async def get_member(self, ctx: Ctx) -> Reply:
        guild = self._guild(ctx)
        try:
            member = guild.member(int(ctx.params["user_id"]))
        except ValueError:
            member = None
        if member is None:
            raise unknown_member()
        return 200, member.payload()
