"""The gateway websocket (§3): HELLO, IDENTIFY/READY, RESUME with replay, heartbeats, op 7/8/9.

Sessions outlive connections: every dispatch is numbered and kept, so a RESUME after op 7 or
a dropped socket replays what the bot missed, as Discord does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .models import (
    ALL_INTENTS,
    APP_FLAG_MEMBERS,
    APP_FLAG_MESSAGE_CONTENT,
    APP_FLAG_PRESENCE,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILD_PRESENCES,
    INTENT_MESSAGE_CONTENT,
    JSON,
    FakeGuild,
    GatewayFrame,
)

if TYPE_CHECKING:
    from .server import FakeDiscord

HELLO, HEARTBEAT, IDENTIFY, PRESENCE, VOICE, RESUME, RECONNECT = 10, 1, 2, 3, 4, 6, 7
REQUEST_MEMBERS, INVALID_SESSION, HEARTBEAT_ACK, DISPATCH = 8, 9, 11, 0

# Close codes (discord-api-docs, gateway close event codes).
UNKNOWN_OPCODE, DECODE_ERROR, NOT_AUTHENTICATED, AUTH_FAILED, ALREADY_AUTHENTICATED = (
    4001,
    4002,
    4003,
    4004,
    4005,
)
INVALID_SHARD, SHARDING_REQUIRED, INVALID_INTENTS, DISALLOWED_INTENTS = 4010, 4011, 4013, 4014


@dataclass
class GatewaySession:
    id: str
    intents: int
    shard: tuple[int, int] | None
    created_at: float
    seq: int = 0
    buffer: list[tuple[int, JSON, str]] = field(default_factory=list)  # kept for replay
    connection: GatewayConnection | None = None
    invalid: bool = False
    resumes: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def covers(self, guild_id: int | None) -> bool:
        if self.shard is None or guild_id is None:
            return True
        shard_id, count = self.shard
        return (guild_id >> 22) % count == shard_id

    def has(self, intent: int) -> bool:
        return bool(self.intents & intent)


class GatewayConnection:
    """One websocket; frames are text JSON unless the client asked for zlib-stream."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, compress: bool) -> None:
        self.ws = ws
        self.request = request
        self.session: GatewaySession | None = None
        self._zlib = zlib.compressobj() if compress else None
        self._lock = asyncio.Lock()
        self.closed_by_server = False

    async def send(self, text: str) -> bool:
        async with self._lock:
            if self.ws.closed:
                return False
            try:
                if self._zlib is not None:
                    frame = self._zlib.compress(text.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
                    await self.ws.send_bytes(frame)
                else:
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return False
            return True

    async def close(self, code: int, message: str = "") -> None:
        self.closed_by_server = True
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=message.encode())

    def abort(self) -> None:
        """Drop the TCP connection without a close frame, like a network failure."""
        self.closed_by_server = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()


class Gateway:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: set[GatewayConnection] = set()
        self.identifies = 0

    # --- frames ---------------------------------------------------------------------------

    def _log(self, direction: str, session: GatewaySession | None, frame: JSON) -> None:
        self.fake.gateway_log.append(
            GatewayFrame(
                direction=direction,
                session_id=session.id if session else None,
                op=frame.get("op"),
                t=frame.get("t"),
                s=frame.get("s"),
                d=frame.get("d"),
                at=self.fake.now(),
            )
        )
        self.fake.notify()

    async def _send(self, conn: GatewayConnection, op: int, d: Any = None) -> None:
        frame = {"op": op, "d": d, "s": None, "t": None}
        self._log("send", conn.session, frame)
        await conn.send(json.dumps(frame))

    async def _dispatch_to(self, session: GatewaySession, event: str, data: JSON) -> None:
        """Number, keep and (if connected) send one dispatch; order is per session."""
        async with session.lock:
            session.seq += 1
            frame = {"op": DISPATCH, "t": event, "s": session.seq, "d": data}
            text = json.dumps(frame)
            session.buffer.append((session.seq, frame, text))
            self._log("send", session, frame)
            if session.connection is not None:
                await session.connection.send(text)

    # --- websocket handler ----------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        compress = request.query.get("compress") == "zlib-stream" and self.fake.gateway_compression
        conn = GatewayConnection(ws, request, compress)
        self.connections.add(conn)
        try:
            interval = self.fake.heartbeat_interval_ms
            await self._send(conn, HELLO, {"heartbeat_interval": interval, "_trace": ["fake-gw"]})
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    raw: str | bytes = msg.data
                elif msg.type == WSMsgType.BINARY:
                    raw = msg.data
                else:
                    break
                try:
                    payload = json.loads(raw)
                    op = payload["op"]
                except (ValueError, KeyError, TypeError):
                    await conn.close(DECODE_ERROR, "Decode error")
                    break
                self._log("recv", conn.session, payload)
                if not await self._on_frame(conn, op, payload.get("d")):
                    break
        finally:
            self.connections.discard(conn)
            session = conn.session
            if session is not None and session.connection is conn:
                session.connection = None
                # A client that closes with 1000/1001 ends its session: it cannot RESUME.
                if not conn.closed_by_server and ws.close_code in (1000, 1001):
                    session.invalid = True
            self.fake.notify()
        return ws

    async def _on_frame(self, conn: GatewayConnection, op: int, d: Any) -> bool:
        """Handle one client frame; False ends the connection."""
        if op == HEARTBEAT:
            await self._send(conn, HEARTBEAT_ACK)
            return True
        if op == IDENTIFY:
            if conn.session is not None:
                await conn.close(ALREADY_AUTHENTICATED, "Already authenticated.")
                return False
            return await self._identify(conn, d or {})
        if op == RESUME:
            if conn.session is not None:
                await conn.close(ALREADY_AUTHENTICATED, "Already authenticated.")
                return False
            return await self._resume(conn, d or {})
        if conn.session is None:
            await conn.close(NOT_AUTHENTICATED, "Not authenticated.")
            return False
        if op == REQUEST_MEMBERS:
            await self._member_chunks(conn.session, d or {})
            return True
        if op in (PRESENCE, VOICE):
            return True
        await conn.close(UNKNOWN_OPCODE, "Unknown opcode.")
        return False

    async def _identify(self, conn: GatewayConnection, d: JSON) -> bool:
        fake = self.fake
        token = str(d.get("token", "")).removeprefix("Bot ")
        if token != fake.bot_token:
            await conn.close(AUTH_FAILED, "Authentication failed.")
            return False
        intents = d.get("intents")
        if not isinstance(intents, int) or intents < 0 or intents & ~ALL_INTENTS:
            await conn.close(INVALID_INTENTS, "Invalid intent(s).")
            return False
        for intent, flags in (
            (INTENT_GUILD_MEMBERS, APP_FLAG_MEMBERS),
            (INTENT_GUILD_PRESENCES, APP_FLAG_PRESENCE),
            (INTENT_MESSAGE_CONTENT, APP_FLAG_MESSAGE_CONTENT),
        ):
            if intents & intent and not fake.app_flags & flags:
                await conn.close(DISALLOWED_INTENTS, "Disallowed intent(s).")
                return False
        shard = d.get("shard")
        if shard is not None:
            ok = (
                isinstance(shard, list)
                and len(shard) == 2
                and all(isinstance(x, int) for x in shard)
                and shard[1] >= 1
                and 0 <= shard[0] < shard[1]
            )
            if not ok:
                await conn.close(INVALID_SHARD, "Invalid shard.")
                return False
        elif fake.shards > 1:
            await conn.close(SHARDING_REQUIRED, "Sharding required.")
            return False
        # Discord's session start limit (identify_spacing.py): too soon → op 9, IDENTIFY again.
        if not fake.identify_spacing.admit((shard[0], shard[1]) if shard else None):
            await self._send(conn, INVALID_SESSION, False)
            return True

        session = GatewaySession(
            id=secrets.token_hex(16),
            intents=intents,
            shard=(shard[0], shard[1]) if shard else None,
            created_at=fake.now(),
        )
        self.sessions[session.id] = session
        self.identifies += 1
        conn.session = session
        session.connection = conn

        guilds = [g for g in fake.guilds if session.covers(g.id)]
        ready: JSON = {
            "v": 10,
            "user": {**fake.bot_user.payload(), "verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": fake.gateway_url,
            "application": {"id": str(fake.app_id), "flags": fake.app_flags},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "geo_ordered_rtc_regions": [],
            "guild_join_requests": [],
            "_trace": ["fake-gw"],
        }
        if session.shard is not None:
            ready["shard"] = list(session.shard)
        await self._dispatch_to(session, "READY", ready)
        for guild in guilds:
            await self._dispatch_to(session, "GUILD_CREATE", self._guild_create(guild, session))
        return True

    def _guild_create(self, guild: FakeGuild, session: GatewaySession) -> JSON:
        # Without the presences intent Discord sends only the bot's own member (and members in
        # voice); the rest come from op 8 chunking.
        if session.has(INTENT_GUILD_PRESENCES):
            members = list(guild.members)
        else:
            members = [m for m in guild.members if m.user.id == self.fake.bot_user.id]
        return guild.create_payload(members=members, now=self.fake.now())

    async def _resume(self, conn: GatewayConnection, d: JSON) -> bool:
        fake = self.fake
        if str(d.get("token", "")).removeprefix("Bot ") != fake.bot_token:
            await conn.close(AUTH_FAILED, "Authentication failed.")
            return False
        session = self.sessions.get(str(d.get("session_id")))
        if session is None or session.invalid:
            await self._send(conn, INVALID_SESSION, False)
            return True  # the client closes and IDENTIFYs
        old = session.connection
        if old is not None and old is not conn:
            session.connection = None
            await old.close(4000, "Session resumed elsewhere")
        client_seq = d.get("seq") or 0
        async with session.lock:
            conn.session = session
            for seq, frame, text in session.buffer:
                if seq > client_seq:
                    self._log("replay", session, frame)
                    await conn.send(text)
            session.connection = conn
            session.resumes += 1
        await self._dispatch_to(session, "RESUMED", {"_trace": ["fake-gw"]})
        return True

    async def _member_chunks(self, session: GatewaySession, d: JSON) -> None:
        raw_ids = d.get("guild_id")
        guild_ids = raw_ids if isinstance(raw_ids, list) else [raw_ids]
        for raw in guild_ids:
            if raw is None or not str(raw).isdigit():
                continue
            guild = self.fake.guild_by_id(int(raw))
            if guild is None:
                continue
            members = list(guild.members)
            not_found: list[str] = []
            user_ids = d.get("user_ids")
            if user_ids:
                wanted = {int(u) for u in (user_ids if isinstance(user_ids, list) else [user_ids])}
                members = [m for m in members if m.user.id in wanted]
                found = {m.user.id for m in members}
                not_found = [str(u) for u in wanted - found]
            else:
                query = str(d.get("query") or "").lower()
                members = [m for m in members if m.user.username.lower().startswith(query)]
                limit = int(d.get("limit") or 0)
                if limit:
                    members = members[:limit]
            chunk: JSON = {
                "guild_id": str(guild.id),
                "members": [m.payload() for m in members],
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": not_found,
            }
            if d.get("presences"):
                chunk["presences"] = []
            if d.get("nonce") is not None:
                chunk["nonce"] = d["nonce"]
            await self._dispatch_to(session, "GUILD_MEMBERS_CHUNK", chunk)

    # --- what the rest of the fake calls --------------------------------------------------

    def session_for(self, guild_id: int | None) -> GatewaySession | None:
        """The newest live session that receives events for this guild."""
        live = [s for s in self.sessions.values() if not s.invalid and s.covers(guild_id)]
        return max(live, key=lambda s: s.created_at, default=None)

    async def dispatch_interaction(self, data: JSON, guild_id: int | None) -> GatewaySession:
        session = self.session_for(guild_id)
        if session is None:
            raise RuntimeError("no gateway session: the bot has not connected (IDENTIFY) yet")
        await self._dispatch_to(session, "INTERACTION_CREATE", data)
        return session

    async def dispatch_guild_event(
        self, event: str, data: JSON, guild_id: int | None, *, needs_messages_intent: bool
    ) -> None:
        session = self.session_for(guild_id)
        if session is None:
            return
        if needs_messages_intent and not session.has(INTENT_GUILD_MESSAGES):
            return
        await self._dispatch_to(session, event, data)

    def _active(self) -> list[GatewayConnection]:
        return [c for c in list(self.connections) if c.session is not None]

    async def send_reconnect(self) -> int:
        """op 7 on every identified connection; returns how many got it."""
        active = self._active()
        for conn in active:
            await self._send(conn, RECONNECT)
        return len(active)

    async def send_invalid_session(self, resumable: bool) -> int:
        active = self._active()
        for conn in active:
            if not resumable and conn.session is not None:
                conn.session.invalid = True
            await self._send(conn, INVALID_SESSION, resumable)
        return len(active)

    async def drop(self, code: int | None = None) -> int:
        """Close every connection: abruptly (no close frame) or with `code`."""
        active = list(self.connections)
        for conn in active:
            if code is None:
                conn.abort()
            else:
                await conn.close(code, "Dropped by the test")
        return len(active)

    async def close_all(self) -> None:
        for conn in list(self.connections):
            await conn.close(1001, "Fake Discord stopping")
