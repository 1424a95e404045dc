"""The fake Discord's rate-limit models (tests/fakes/discord/limits.py), over real HTTP.

A raw gateway session (no discord.py) makes the fake dispatch interactions, so that their
tokens exist; requests go out with aiohttp on 127.0.0.1. The fake's clock stands still
unless a test moves it, so every window is exactly where the test puts it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.fakes.discord import FakeDiscord, InteractionRecord
from tests.fakes.discord.limits import LimitModel
from tests.fakes.discord.models import default_guild

T0 = 1_800_000_000.0
SECOND_GUILD_ID = 1_100_000_000_000_050_001
IMAGINE = {
    "name": "imagine",
    "description": "Make a picture",
    "options": [{"name": "prompt", "description": "What", "type": 3, "required": True}],
}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def remaining(self) -> int:
        return int(self.headers["X-RateLimit-Remaining"])


class Client:
    """Bot-token and interaction-token requests to the fake, as a bot would send them."""

    def __init__(self, fake: FakeDiscord, session: aiohttp.ClientSession) -> None:
        self.fake = fake
        self.session = session

    async def call(self, method: str, path: str, *, bot: bool = True, **kw: Any) -> Reply:
        headers = {"Authorization": f"Bot {self.fake.bot_token}"} if bot else {}
        url = self.fake.api_base + path
        async with self.session.request(method, url, headers=headers, **kw) as response:
            text = await response.text()
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = text
            return Reply(response.status, dict(response.headers), body)

    async def post(self, channel_id: int, content: str = "hello") -> Reply:
        return await self.call(
            "POST", f"/channels/{channel_id}/messages", json={"content": content}
        )

    async def interaction(self, channel: str = "general", guild: int | None = None) -> str:
        """A slash command answered with a message; returns its token."""
        record: InteractionRecord = await self.fake.slash(
            "imagine", {"prompt": "a lighthouse"}, channel=channel, guild=guild
        )
        reply = await self.call(
            "POST",
            f"/interactions/{record.id}/{record.token}/callback",
            bot=False,
            json={"type": 4, "data": {"content": "Waiting to start"}},
        )
        assert reply.status == 204, reply
        return record.token

    async def edit_original(self, token: str, content: str = "50%") -> Reply:
        path = f"/webhooks/{self.fake.app_id}/{token}/messages/@original"
        return await self.call("PATCH", path, bot=False, json={"content": content})

    async def followup(self, token: str, content: str = "more") -> Reply:
        path = f"/webhooks/{self.fake.app_id}/{token}"
        return await self.call("POST", path, bot=False, json={"content": content})


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord(clock=lambda: T0)
    server.guilds.append(
        default_guild(server.users, server.bot_user, guild_id=SECOND_GUILD_ID, name="Other")
    )
    async with server:
        yield server


@pytest.fixture
async def client(fake: FakeDiscord) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{fake.gateway_url}?v=10&encoding=json")
        hello = json.loads((await ws.receive(timeout=5)).data)
        assert hello["op"] == 10
        await ws.send_str(json.dumps({"op": 2, "d": {"token": fake.bot_token, "intents": 1}}))
        await fake.wait_ready(timeout=5)
        api = Client(fake, session)
        reply = await api.call("PUT", f"/applications/{fake.app_id}/commands", json=[IMAGINE])
        assert reply.status == 200, reply
        yield api
        await ws.close()


def channel(fake: FakeDiscord, name: str, guild_id: int | None = None) -> int:
    return fake.resolve_channel(name, fake.resolve_guild(guild_id)).id


# --- (a) per channel, shared by both tokens ------------------------------------------------


async def test_channel_writes_allow_five_per_five_seconds_with_truthful_headers(
    fake: FakeDiscord, client: Client
) -> None:
    limits = fake.set_limit_models("a")
    general, art = channel(fake, "general"), channel(fake, "art")

    replies = [await client.post(general) for _ in range(5)]
    assert [r.status for r in replies] == [200] * 5
    assert [r.remaining for r in replies] == [4, 3, 2, 1, 0]
    assert {r.headers["X-RateLimit-Limit"] for r in replies} == {"5"}
    assert {float(r.headers["X-RateLimit-Reset-After"]) for r in replies} == {5.0}
    assert len({r.headers["X-RateLimit-Bucket"] for r in replies}) == 1

    refused = await client.post(general)
    assert refused.status == 429
    assert refused.body["retry_after"] == 5.0 and refused.body["global"] is False
    assert refused.remaining == 0 and refused.headers["Retry-After"] == "5"
    assert refused.headers["X-RateLimit-Bucket"] == replies[0].headers["X-RateLimit-Bucket"]
    assert refused.headers["X-RateLimit-Scope"] == "user"
    assert limits.refused[LimitModel.CHANNEL_WRITES] == 1 and fake.count_429 == 1
    # The refused post created nothing.
    assert len(fake.messages_in("general")) == 5

    # Another channel has its own window; the same bucket id, as Discord documents.
    other = await client.post(art)
    assert (other.status, other.remaining) == (200, 4)
    assert other.headers["X-RateLimit-Bucket"] == replies[0].headers["X-RateLimit-Bucket"]

    # Edits and reads: edits count in the channel's window, reads do not.
    message_id = replies[0].body["id"]
    fake.advance(2.0)
    read = await client.call("GET", f"/channels/{general}/messages/{message_id}")
    assert read.status == 200
    edit = await client.call(
        "PATCH", f"/channels/{general}/messages/{message_id}", json={"content": "edited"}
    )
    assert edit.status == 429 and float(edit.headers["X-RateLimit-Reset-After"]) == 3.0

    fake.advance(3.0)  # the window has ended
    again = await client.post(general)
    assert (again.status, again.remaining) == (200, 4)


async def test_channel_writes_are_shared_by_bot_token_and_interaction_token_writes(
    fake: FakeDiscord, client: Client
) -> None:
    token = await client.interaction("general")  # the callback itself counts in no bucket
    limits = fake.set_limit_models("a")
    general = channel(fake, "general")

    assert (await client.post(general)).remaining == 4
    assert (await client.edit_original(token)).remaining == 3
    assert (await client.post(general)).remaining == 2
    assert (await client.followup(token)).remaining == 1
    assert (await client.edit_original(token, "60%")).remaining == 0
    assert (await client.edit_original(token, "70%")).status == 429
    assert (await client.post(general)).status == 429
    assert limits.refused[LimitModel.CHANNEL_WRITES] == 2
    # The refused edit did not land.
    record = fake.interaction_by_token(token)
    assert record is not None and record.original_message_id is not None
    assert fake.messages[record.original_message_id].content == "60%"

    # An interaction in another channel writes to that channel's bucket.
    other = await client.interaction("art")
    assert (await client.edit_original(other)).status == 200


# --- (b) per guild, interaction-token writes -------------------------------------------------


async def test_guild_webhooks_allow_five_per_second_per_guild_for_interaction_writes(
    fake: FakeDiscord, client: Client
) -> None:
    here = [await client.interaction(name) for name in ("general", "art")]
    there = await client.interaction("general", guild=SECOND_GUILD_ID)
    limits = fake.set_limit_models("b")

    # Two channels of one guild share its bucket.
    replies = [await client.edit_original(here[i % 2], f"{i}%") for i in range(5)]
    assert [r.remaining for r in replies] == [4, 3, 2, 1, 0]
    assert {float(r.headers["X-RateLimit-Reset-After"]) for r in replies} == {1.0}
    refused = await client.followup(here[1])
    assert refused.status == 429 and refused.body["retry_after"] == 1.0
    assert limits.refused[LimitModel.GUILD_WEBHOOKS] == 1

    # Another guild has its own; bot-token writes are not in (b) at all.
    assert (await client.edit_original(there)).remaining == 4
    plain = await client.post(channel(fake, "general"))
    assert plain.status == 200
    assert plain.headers.get("X-RateLimit-Bucket") != refused.headers["X-RateLimit-Bucket"]

    fake.advance(1.0)
    assert (await client.edit_original(here[0], "done")).remaining == 4


# --- (c) per token -----------------------------------------------------------------------


async def test_per_token_allows_five_per_two_seconds_for_each_token(
    fake: FakeDiscord, client: Client
) -> None:
    first, second = await client.interaction(), await client.interaction()
    limits = fake.set_limit_models("c")

    assert [(await client.edit_original(first, f"{i}%")).remaining for i in range(5)] == [
        4,
        3,
        2,
        1,
        0,
    ]
    assert (await client.edit_original(first, "late")).status == 429
    assert (await client.edit_original(second)).remaining == 4  # another token, another bucket
    assert limits.refused[LimitModel.PER_TOKEN] == 1
    fake.advance(2.0)
    assert (await client.edit_original(first, "again")).status == 200


# --- (d) global, bot-token routes only ---------------------------------------------------------


async def test_global_limit_counts_bot_token_routes_and_exempts_interaction_routes(
    fake: FakeDiscord, client: Client
) -> None:
    token = await client.interaction()
    pending: InteractionRecord = await fake.slash("imagine", {"prompt": "later"})
    limits = fake.set_limit_models("d")
    general = channel(fake, "general")

    for _ in range(50):  # reads and writes alike
        reply = await client.call("GET", f"/channels/{general}")
        assert reply.status == 200
        assert "X-RateLimit-Global" not in reply.headers
    refused = await client.post(general)
    assert refused.status == 429
    assert refused.headers["X-RateLimit-Global"] == "true"
    assert refused.headers["X-RateLimit-Scope"] == "global"
    assert refused.body["global"] is True
    assert limits.refused[LimitModel.GLOBAL] == 1

    # Interaction-token writes and interaction callbacks are exempt.
    for i in range(10):
        assert (await client.edit_original(token, f"{i}%")).status == 200
    callback = await client.call(
        "POST",
        f"/interactions/{pending.id}/{pending.token}/callback",
        bot=False,
        json={"type": 4, "data": {"content": "ok"}},
    )
    assert callback.status == 204
    assert limits.refused[LimitModel.GLOBAL] == 1

    fake.advance(1.0)
    assert (await client.post(general)).status == 200


# --- the invalid-request budget -----------------------------------------------------------------


async def test_invalid_requests_past_the_budget_ban_every_request_for_a_while(
    fake: FakeDiscord, client: Client
) -> None:
    limits = fake.set_limit_models("a", invalid_limit=3, ban_s=60.0)
    general = channel(fake, "general")
    for _ in range(5):
        assert (await client.post(general)).status == 200
    assert limits.invalid_peak == 0

    assert [(await client.post(general)).status for _ in range(2)] == [429, 429]
    assert limits.invalid_peak == 2
    unauthorised = await client.call("GET", "/users/@me", bot=False)
    assert unauthorised.status == 401  # 401s count too: the third invalid request
    assert limits.invalid_peak == 3

    # Banned: every request, limited route or not, valid token or not.
    for path in ("/users/@me", f"/channels/{general}"):
        banned = await client.call("GET", path)
        assert banned.status == 403
        assert "Cloudflare" in banned.body and "Via" not in banned.headers
    fake.advance(10.0)  # the channel window is over, the ban is not
    assert (await client.post(general)).status == 403

    fake.advance(50.0)
    after = await client.post(general)
    assert after.status == 200 and after.remaining == 4
