"""The HTTP control API under /_test/ — a thin mapping over FakeDiscord's Python API.

For tests that run the bot (or the fake) in another process. Never under /api/, so a bot can
never reach it by accident. Every reply is JSON; refusals are 400 `{"error": …}`, waits that
time out are 408.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .interactions import InteractionRefused
from .models import JSON, InteractionRecord, MessageRecord, Upload

if TYPE_CHECKING:
    from .server import FakeDiscord

PREFIX = "/_test"


def interaction_json(record: InteractionRecord) -> JSON:
    return {
        "id": str(record.id),
        "token": record.token,
        "type": record.type,
        "guild_id": str(record.guild_id) if record.guild_id else None,
        "channel_id": str(record.channel_id),
        "user_id": str(record.user_id),
        "data": record.data,
        "created_at": record.created_at,
        "message_id": str(record.message_id) if record.message_id else None,
        "response_type": record.response_type,
        "response_data": record.response_data,
        "original_message_id": (
            str(record.original_message_id) if record.original_message_id else None
        ),
        "followup_ids": [str(i) for i in record.followup_ids],
        "modal": record.modal,
        "autocomplete_choices": record.autocomplete_choices,
        "callback_attempts": record.callback_attempts,
    }


def message_json(message: MessageRecord, base_url: str) -> JSON:
    return {
        **message.payload(base_url),
        "edit_count": message.edit_count,
        "deleted": message.deleted,
        "history": message.history,
        "interaction_id": str(message.interaction_id) if message.interaction_id else None,
    }


def _upload(spec: Any) -> Upload:
    return Upload(
        filename=spec["filename"],
        data=base64.b64decode(spec.get("data_base64", "")),
        content_type=spec.get("content_type"),
    )


class ControlApi:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    def register(self, app: web.Application) -> None:
        routes: list[tuple[str, str, Callable[[web.Request], Awaitable[Any]]]] = [
            ("GET", "/info", self.info),
            ("GET", "/state", self.state),
            ("GET", "/wait", self.wait_change),
            ("POST", "/wait_ready", self.wait_ready),
            ("POST", "/slash", self.slash),
            ("POST", "/autocomplete", self.autocomplete),
            ("POST", "/click", self.click),
            ("POST", "/modal", self.modal),
            ("GET", "/interactions/{interaction_id}", self.interaction),
            ("GET", "/requests", self.requests),
            ("GET", "/requests/wait", self.wait_request),
            ("GET", "/messages", self.messages),
            ("GET", "/messages/{message_id}", self.message),
            ("DELETE", "/messages/{message_id}", self.delete_message),
            ("GET", "/commands", self.commands),
            ("POST", "/advance", self.advance),
            ("POST", "/faults", self.add_fault),
            ("DELETE", "/faults", self.clear_faults),
            ("POST", "/rate_limits", self.add_rate_limit),
            ("DELETE", "/rate_limits", self.clear_rate_limits),
            ("POST", "/limits", self.limits),
            ("POST", "/gateway/reconnect", self.reconnect),
            ("POST", "/gateway/invalid_session", self.invalid_session),
            ("POST", "/gateway/drop", self.drop),
            ("GET", "/gateway/log", self.gateway_log),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, PREFIX + path, self._wrap(handler))

    def _wrap(
        self, handler: Callable[[web.Request], Awaitable[Any]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def run(request: web.Request) -> web.Response:
            try:
                status, body = 200, await handler(request)
            except (InteractionRefused, LookupError, ValueError, KeyError) as error:
                status, body = 400, {"error": f"{type(error).__name__}: {error}"}
            except TimeoutError as error:
                status, body = 408, {"error": str(error)}
            except RuntimeError as error:  # e.g. no bot connected to the gateway yet
                status, body = 409, {"error": str(error)}
            return web.Response(
                status=status,
                body=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )

        return run

    async def _body(self, request: web.Request) -> JSON:
        raw = await request.read()
        return json.loads(raw) if raw else {}

    # --- reading --------------------------------------------------------------------------

    async def info(self, request: web.Request) -> JSON:
        fake = self.fake
        return {
            "base_url": fake.base_url,
            "api_base": fake.api_base,
            "gateway_url": fake.gateway_url,
            "app_id": str(fake.app_id),
            "bot_token": fake.bot_token,  # the fake's own test token, not a secret
            "bot_user_id": str(fake.bot_user.id),
            "guilds": [
                {
                    "id": str(g.id),
                    "name": g.name,
                    "channels": {c.name: str(c.id) for c in g.channels},
                    "roles": {r.name: str(r.id) for r in g.roles},
                }
                for g in fake.guilds
            ],
            "users": {name: str(u.id) for name, u in fake.users.items()},
        }

    async def state(self, request: web.Request) -> JSON:
        fake = self.fake
        return {
            "version": fake.version,
            "last_seq": fake.last_seq,
            "clock_offset": fake.clock_offset,
            "unknown_routes": fake.unknown_routes,
            "count_429": fake.count_429,
            "identifies": fake.gateway.identifies,
            "sessions": [
                {
                    "id": s.id,
                    "connected": s.connection is not None,
                    "seq": s.seq,
                    "resumes": s.resumes,
                    "invalid": s.invalid,
                    "shard": s.shard,
                    "intents": s.intents,
                }
                for s in fake.gateway.sessions.values()
            ],
        }

    async def wait_change(self, request: web.Request) -> JSON:
        since = int(request.query.get("since_version", self.fake.version))
        timeout = float(request.query.get("timeout", "10"))
        await self.fake.wait_for(lambda: self.fake.version > since, timeout, "a change")
        return {"version": self.fake.version}

    async def wait_ready(self, request: web.Request) -> JSON:
        body = await self._body(request)
        await self.fake.wait_ready(float(body.get("timeout", 10)))
        return {"ready": True}

    async def interaction(self, request: web.Request) -> JSON:
        record = self.fake.interactions.get(int(request.match_info["interaction_id"]))
        if record is None:
            raise LookupError("no such interaction")
        return interaction_json(record)

    async def requests(self, request: web.Request) -> list[JSON]:
        q = request.query
        found = self.fake.requests_matching(
            q.get("method", "*"), q.get("path", ""), since=int(q.get("since", "0"))
        )
        return [r.to_json() for r in found]

    async def wait_request(self, request: web.Request) -> JSON:
        q = request.query
        record = await self.fake.wait_for_request(
            q.get("method", "*"),
            q.get("path", ""),
            since=int(q.get("since", "0")),
            status=int(q["status"]) if "status" in q else None,
            timeout=float(q.get("timeout", "10")),
        )
        return record.to_json()

    async def messages(self, request: web.Request) -> list[JSON]:
        channel_id = request.query.get("channel_id")
        include_deleted = request.query.get("include_deleted") in ("1", "true")
        return [
            message_json(m, self.fake.base_url)
            for m in self.fake.messages.values()
            if (channel_id is None or str(m.channel_id) == channel_id)
            and (include_deleted or not m.deleted)
        ]

    async def message(self, request: web.Request) -> JSON:
        found = self.fake.messages.get(int(request.match_info["message_id"]))
        if found is None:
            raise LookupError("no such message")
        return message_json(found, self.fake.base_url)

    async def commands(self, request: web.Request) -> JSON:
        return {str(k) if k else "global": v for k, v in self.fake.commands.items()}

    async def gateway_log(self, request: web.Request) -> list[JSON]:
        start = int(request.query.get("since_index", "0"))
        return [
            {"index": start + i, **frame.__dict__}
            for i, frame in enumerate(self.fake.gateway_log[start:])
        ]

    # --- driving --------------------------------------------------------------------------

    async def slash(self, request: web.Request) -> JSON:
        body = await self._body(request)
        attachments = {k: _upload(v) for k, v in (body.get("attachments") or {}).items()}
        record = await self.fake.slash(
            body["name"],
            body.get("options"),
            user=body.get("user", "tester"),
            channel=body.get("channel"),
            guild=body.get("guild"),
            attachments=attachments or None,
            subcommand=body.get("subcommand"),
            locale=body.get("locale", "en-US"),
        )
        return interaction_json(record)

    async def autocomplete(self, request: web.Request) -> JSON:
        body = await self._body(request)
        record = await self.fake.autocomplete(
            body["name"],
            body.get("options") or {},
            focused=body["focused"],
            user=body.get("user", "tester"),
            channel=body.get("channel"),
            guild=body.get("guild"),
            subcommand=body.get("subcommand"),
        )
        return interaction_json(record)

    async def click(self, request: web.Request) -> JSON:
        body = await self._body(request)
        record = await self.fake.click(
            int(body["message_id"]),
            body["custom_id"],
            user=body.get("user", "tester"),
            values=body.get("values"),
        )
        return interaction_json(record)

    async def modal(self, request: web.Request) -> JSON:
        body = await self._body(request)
        source = self.fake.interactions.get(int(body["interaction_id"]))
        if source is None:
            raise LookupError("no such interaction")
        record = await self.fake.submit_modal(
            source, body.get("values") or {}, user=body.get("user")
        )
        return interaction_json(record)

    async def delete_message(self, request: web.Request) -> JSON:
        await self.fake.delete_message(int(request.match_info["message_id"]))
        return {"deleted": True}

    async def advance(self, request: web.Request) -> JSON:
        body = await self._body(request)
        self.fake.advance(float(body["seconds"]))
        return {"clock_offset": self.fake.clock_offset}

    async def add_fault(self, request: web.Request) -> JSON:
        body = await self._body(request)
        fault = self.fake.inject(
            body.get("method", "*"),
            body["path"],
            int(body["status"]),
            code=body.get("code"),
            message=body.get("message"),
            via=bool(body.get("via", True)),
            retry_after=float(body.get("retry_after", 0.1)),
            times=body.get("times", 1),
            is_global=bool(body.get("global", False)),
        )
        return {"index": len(self.fake.faults) - 1, "status": fault.status}

    async def clear_faults(self, request: web.Request) -> JSON:
        self.fake.clear_faults()
        return {"cleared": True}

    async def add_rate_limit(self, request: web.Request) -> JSON:
        body = await self._body(request)
        rule = self.fake.set_rate_limit(
            body.get("method", "*"),
            body["path"],
            limit=int(body["limit"]),
            per=float(body.get("per", 1.0)),
            honest=bool(body.get("honest", False)),
            scope=body.get("scope", "user"),
            is_global=bool(body.get("global", False)),
        )
        return {"bucket": rule.bucket}

    async def clear_rate_limits(self, request: web.Request) -> JSON:
        self.fake.rate_limits.clear()
        return {"cleared": True}

    async def limits(self, request: web.Request) -> JSON:
        body = await self._body(request)
        fake = self.fake
        if "upload_limit" in body:
            fake.set_upload_limit(int(body["upload_limit"]))
        if "callback_deadline" in body:
            fake.callback_deadline = float(body["callback_deadline"])
        if "token_ttl" in body:
            fake.token_ttl = float(body["token_ttl"])
        if "old_message_edit_limit" in body:
            limit = body["old_message_edit_limit"]
            fake.set_old_message_edit_limit(None if limit is None else int(limit))
        return {
            "upload_limit": fake.upload_limit,
            "callback_deadline": fake.callback_deadline,
            "token_ttl": fake.token_ttl,
            "old_message_edit_limit": fake.old_message_edit_limit,
        }

    async def reconnect(self, request: web.Request) -> JSON:
        return {"sent": await self.fake.send_reconnect()}

    async def invalid_session(self, request: web.Request) -> JSON:
        body = await self._body(request)
        return {"sent": await self.fake.send_invalid_session(bool(body.get("resumable", False)))}

    async def drop(self, request: web.Request) -> JSON:
        body = await self._body(request)
        return {"dropped": await self.fake.drop_gateway(body.get("code"))}
