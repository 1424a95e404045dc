"""The fake Discord is faithful: a real discord.py client runs against it unchanged.

Each test starts the fake on 127.0.0.1, points discord.py at it with `point_discord_at`, and
drives a real `commands.Bot` (or `AutoShardedBot`) through slash commands, buttons and modals.
Assertions are about what "Discord" received. The raw tests at the end check error replies and
gateway rules that discord.py would only meet in bad weather.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from bot.discord.endpoints import current_endpoints, point_discord_at, restore_endpoints
from tests.fakes.discord import (
    DEFAULT_GUILD_ID,
    FakeDiscord,
    InteractionRefused,
    Upload,
)

GUILD = discord.Object(DEFAULT_GUILD_ID)
REPO_ROOT = Path(__file__).resolve().parents[2]
ORIGINAL = r"/webhooks/\d+/[^/]+/messages/@original$"
CHANNEL_MESSAGES = r"^/channels/\d+/messages$"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


# --- the bot under test: tiny, but every path the real bot uses -----------------------------


class CounterButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"counter:(?P<n>\d+)"):
    """A persistent button: matched by custom_id on any message, across restarts."""

    def __init__(self, n: int) -> None:
        super().__init__(discord.ui.Button(label=f"+1 ({n})", custom_id=f"counter:{n}"))
        self.n = n

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> CounterButton:
        return cls(int(match["n"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        view = discord.ui.View(timeout=None)
        view.add_item(CounterButton(self.n + 1))
        await interaction.response.edit_message(content=f"count {self.n + 1}", view=view)


class FeedbackModal(discord.ui.Modal, title="Feedback"):
    thoughts: discord.ui.TextInput[FeedbackModal] = discord.ui.TextInput(
        label="Your thoughts", custom_id="feedback:text", max_length=200
    )

    def __init__(self) -> None:
        super().__init__(custom_id="feedback:modal")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"thanks: {self.thoughts.value}", ephemeral=True)


class FeedbackView(discord.ui.View):
    """An ordinary (non-persistent) view: found only under the response's message id."""

    @discord.ui.button(label="Open form", custom_id="feedback:open")
    async def open(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        await interaction.response.send_modal(FeedbackModal())


class Probe(commands.Cog):
    def __init__(self, bot: TestBot) -> None:
        self.bot = bot

    @app_commands.command(description="Defer, then edit @original with a file")
    async def ping(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await interaction.edit_original_response(
            content="pong", attachments=[discord.File(io.BytesIO(PNG), "pong.png")]
        )

    @app_commands.command(description="Download an attachment option")
    async def inspect(self, interaction: discord.Interaction, image: discord.Attachment) -> None:
        data = await image.read()
        digest = hashlib.sha256(data).hexdigest()
        echo = discord.File(io.BytesIO(data), "echo.png")  # a multipart callback
        await interaction.response.send_message(f"{image.filename} {len(data)} {digest}", file=echo)

    @app_commands.command(description="Reply, follow up, edit the followup, delete the reply")
    async def vanish(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("now you see me")
        original = await interaction.original_response()  # GET @original
        extra = await interaction.followup.send("extra", wait=True)
        await extra.edit(content=f"extra for {original.id}")  # PATCH followup
        await interaction.delete_original_response()

    @app_commands.command(description="A persistent counter button")
    async def counter(self, interaction: discord.Interaction) -> None:
        view = discord.ui.View(timeout=None)
        view.add_item(CounterButton(0))
        await interaction.response.send_message("count 0", view=view)

    @app_commands.command(description="A button that opens a modal")
    async def feedback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("tell us", view=FeedbackView())

    @app_commands.command(description="Post to the channel with the bot token")
    async def say(self, interaction: discord.Interaction, text: str) -> None:
        await interaction.response.defer(ephemeral=True)
        await interaction.channel.send(text)  # type: ignore[union-attr]
        await interaction.followup.send("sent", ephemeral=True)

    @app_commands.command(description="A job that outlives its interaction token")
    async def longjob(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        message = await interaction.edit_original_response(content="working")
        await asyncio.wait_for(self.bot.gate.wait(), 10)  # the test moves the clock meanwhile
        try:
            await interaction.edit_original_response(content="done")
        except discord.HTTPException as error:
            channel = interaction.channel
            assert isinstance(channel, discord.TextChannel)
            await channel.get_partial_message(message.id).edit(
                content=f"done (token error {error.code})"
            )
            await channel.send("job finished")

    @app_commands.command(description="Autocomplete a style")
    async def style(self, interaction: discord.Interaction, name: str) -> None:
        await interaction.response.send_message(f"style {name}")

    @style.autocomplete("name")
    async def style_names(self, interaction: discord.Interaction, current: str) -> list[Any]:
        names = ["photo", "phantasy", "painting"]
        return [app_commands.Choice(name=n, value=n) for n in names if n.startswith(current)]

    job = app_commands.Group(name="job", description="Jobs")

    @job.command(name="status", description="Status of a job")
    async def job_status(self, interaction: discord.Interaction, number: int) -> None:
        await interaction.response.send_message(f"job {number} is fine")


class TestBot(commands.Bot):
    __test__ = False  # not a pytest test class

    def __init__(self, **kwargs: Any) -> None:
        intents = discord.Intents.default()
        intents.members = True  # privileged: makes discord.py chunk members with op 8
        super().__init__(
            command_prefix="!",
            intents=intents,
            guild_ready_timeout=0.1,
            help_command=None,
            **kwargs,
        )
        self.gate = asyncio.Event()
        self.ready_event = asyncio.Event()

    async def setup_hook(self) -> None:
        await self.add_cog(Probe(self), guild=GUILD)
        self.add_dynamic_items(CounterButton)
        await self.tree.sync(guild=GUILD)

    async def on_ready(self) -> None:
        self.ready_event.set()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        pass  # the default sleeps 5 s before a re-IDENTIFY (identify rate limit); not needed here


class TestShardedBot(commands.AutoShardedBot):
    __test__ = False

    def __init__(self) -> None:
        super().__init__(
            command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.1
        )
        self.ready_event = asyncio.Event()

    async def setup_hook(self) -> None:
        await self.add_cog(Probe(self), guild=GUILD)  # type: ignore[arg-type]
        await self.tree.sync(guild=GUILD)

    async def on_ready(self) -> None:
        self.ready_event.set()


AnyBot = TypeVar("AnyBot", TestBot, TestShardedBot)


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def endpoints() -> Any:
    """Route.BASE & co. are process-global: put them back for whatever runs next."""
    saved = current_endpoints()
    yield
    restore_endpoints(saved)


@pytest.fixture
async def fake(endpoints: None) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        point_discord_at(server.api_base, server.gateway_url)
        yield server
        assert server.unknown_routes == [], "the bot called routes the fake lacks"
        assert server.internal_errors == [], server.internal_errors[0]


@contextlib.asynccontextmanager
async def running(bot: AnyBot, fake: FakeDiscord) -> AsyncIterator[AnyBot]:
    task = asyncio.create_task(bot.start(fake.bot_token))
    try:
        ready = asyncio.ensure_future(bot.ready_event.wait())
        done, _ = await asyncio.wait({ready, task}, timeout=10, return_when="FIRST_COMPLETED")
        if ready not in done:
            ready.cancel()
            if task.done():
                task.result()  # surface the startup error
            raise TimeoutError("the bot did not become ready")
        yield bot
    finally:
        await bot.close()
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[TestBot]:
    async with running(TestBot(), fake) as started:
        yield started


def sent_events(fake: FakeDiscord, event: str) -> list[dict[str, Any]]:
    return [f.d for f in fake.gateway_log if f.direction == "send" and f.t == event]


# --- startup --------------------------------------------------------------------------------


async def test_startup_login_sync_chunk_and_ready(fake: FakeDiscord, bot: TestBot) -> None:
    me = fake.requests_matching("GET", r"^/users/@me$")
    app = fake.requests_matching("GET", r"^/oauth2/applications/@me$")
    sync = fake.requests_matching("PUT", rf"^/applications/{fake.app_id}/guilds/\d+/commands$")
    assert [r.status for r in me + app + sync] == [200, 200, 200]
    assert all(r.auth for r in me + app + sync)
    names = sorted(c["name"] for c in fake.commands[DEFAULT_GUILD_ID])
    assert names == [
        "counter",
        "feedback",
        "inspect",
        "job",
        "longjob",
        "ping",
        "say",
        "style",
        "vanish",
    ]
    assert fake.gateway_log[0].op == 10  # HELLO first
    identify = [f for f in fake.gateway_log if f.direction == "recv" and f.op == 2]
    assert identify[0].d["token"] == fake.bot_token and identify[0].d["intents"] & (1 << 1)
    # GUILD_CREATE only carried the bot's member; the rest came from an op 8 chunk request
    assert any(f.direction == "recv" and f.op == 8 for f in fake.gateway_log)
    assert sent_events(fake, "GUILD_MEMBERS_CHUNK")
    guild = bot.get_guild(DEFAULT_GUILD_ID)
    assert guild is not None and guild.chunked and len(guild.members) == 6
    assert {c.name for c in guild.text_channels} == {"general", "art", "nsfw-art"}
    seqs = [f.s for f in fake.gateway_log if f.direction == "send" and f.s is not None]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))


# --- slash commands, files, attachments -----------------------------------------------------


async def test_ping_defers_then_edits_original_with_a_file(fake: FakeDiscord, bot: TestBot) -> None:
    record = await fake.slash("ping")
    patch = await fake.wait_for_request("PATCH", ORIGINAL, status=200)

    callback = fake.requests_matching("POST", rf"^/interactions/{record.id}/")[0]
    assert callback.query == {"with_response": "1"} and not callback.auth
    assert callback.json["type"] == 5 and callback.status == 200
    assert patch.payload_json["attachments"] == [{"id": 0, "filename": "pong.png"}]
    assert [(f.field, f.filename, f.size) for f in patch.files] == [
        ("files[0]", "pong.png", len(PNG))
    ]

    message = fake.messages[record.original_message_id or 0]
    assert message.content == "pong" and not message.loading and message.type == 20
    assert message.attachments[0].data == PNG
    assert message.attachments[0].content_type == "image/png"
    # the deferred message appears (MESSAGE_CREATE) with its first edit, not before
    assert [d["id"] for d in sent_events(fake, "MESSAGE_CREATE")] == [str(message.id)]


async def test_attachment_option_is_downloaded_by_the_bot(fake: FakeDiscord, bot: TestBot) -> None:
    data = PNG * 50
    record = await fake.slash("inspect", {"image": Upload("ref.png", data)}, user="artist")
    await fake.wait_for_callback(record)
    option = record.data["options"][0]
    assert option["type"] == 11
    assert record.data["resolved"]["attachments"][option["value"]]["ephemeral"] is True
    reply = fake.messages[record.original_message_id or 0]
    assert reply.content == f"ref.png {len(data)} {hashlib.sha256(data).hexdigest()}"
    assert [status for _, status in fake.downloads] == [200]
    callback = fake.requests_matching("POST", rf"^/interactions/{record.id}/")[0]
    assert callback.payload_json["type"] == 4 and callback.files[0].size == len(data)
    assert reply.attachments[0].data == data


async def test_original_get_delete_and_followup_edit(fake: FakeDiscord, bot: TestBot) -> None:
    record = await fake.slash("vanish")
    await fake.wait_for_request("DELETE", ORIGINAL, status=204)
    original = fake.messages[record.original_message_id or 0]
    assert original.deleted and original.content == "now you see me"
    assert [r.status for r in fake.requests_matching("GET", ORIGINAL)] == [200]
    (followup_id,) = record.followup_ids
    followup = fake.messages[followup_id]
    assert followup.content == f"extra for {original.id}" and followup.edit_count == 1
    assert [d["id"] for d in sent_events(fake, "MESSAGE_DELETE")] == [str(original.id)]
    assert str(followup_id) in [d["id"] for d in sent_events(fake, "MESSAGE_UPDATE")]


async def test_subcommands_and_autocomplete(fake: FakeDiscord, bot: TestBot) -> None:
    status = await fake.wait_for_callback(await fake.slash("job status", {"number": 7}))
    assert fake.messages[status.original_message_id or 0].content == "job 7 is fine"

    typing = await fake.autocomplete("style", {"name": "ph"}, focused="name")
    await fake.wait_for_callback(typing)
    assert typing.response_type == 8
    assert [c["value"] for c in typing.autocomplete_choices or []] == ["photo", "phantasy"]

    with pytest.raises(InteractionRefused):
        await fake.slash("imagine", {"prompt": "never registered"})
    with pytest.raises(InteractionRefused):
        await fake.slash("say", {"txt": "unknown option"})
    with pytest.raises(InteractionRefused):
        await fake.slash("job", {"number": 1})  # a group needs its subcommand


# --- components and modals ------------------------------------------------------------------


async def test_dynamic_item_button_is_handled_even_after_a_restart(
    fake: FakeDiscord, bot: TestBot
) -> None:
    record = await fake.wait_for_callback(await fake.slash("counter"))
    message_id = record.original_message_id or 0
    click = await fake.wait_for_callback(await fake.click(message_id, "counter:0"))
    assert click.response_type == 7
    assert fake.messages[message_id].custom_ids == ["counter:1"]
    assert fake.messages[message_id].content == "count 1"
    assert click.payload["message"]["id"] == str(message_id)  # the full message was sent

    with pytest.raises(InteractionRefused):
        await fake.click(message_id, "counter:0")  # no longer on the message

    # A new bot process (new IDENTIFY) still handles the old message's button.
    await bot.close()
    async with running(TestBot(), fake):
        later = await fake.wait_for_callback(await fake.click(message_id, "counter:1"))
        assert later.response_type == 7 and fake.messages[message_id].content == "count 2"
        assert fake.gateway.identifies == 2

        # a moderator deletes the message: the bot hears of it and nobody can click it
        await fake.delete_message(message_id)
        assert [d["id"] for d in sent_events(fake, "MESSAGE_DELETE")] == [str(message_id)]
        with pytest.raises(InteractionRefused):
            await fake.click(message_id, "counter:2")


async def test_button_opens_a_modal_whose_submit_is_handled(
    fake: FakeDiscord, bot: TestBot
) -> None:
    record = await fake.wait_for_callback(await fake.slash("feedback"))
    with pytest.raises(InteractionRefused):
        await fake.submit_modal(record, {"feedback:text": "not a modal"})

    opened = await fake.wait_for_callback(
        await fake.click(record.original_message_id or 0, "feedback:open")
    )
    assert opened.response_type == 9 and opened.modal is not None
    assert opened.modal["custom_id"] == "feedback:modal" and opened.modal["title"] == "Feedback"
    with pytest.raises(InteractionRefused):
        await fake.submit_modal(opened, {"nope": "x"})

    submit = await fake.wait_for_callback(
        await fake.submit_modal(opened, {"feedback:text": "lovely"})
    )
    reply = fake.messages[submit.original_message_id or 0]
    assert reply.content == "thanks: lovely" and reply.ephemeral
    assert str(reply.id) not in [d["id"] for d in sent_events(fake, "MESSAGE_CREATE")]


# --- token lifetime, rate limits ------------------------------------------------------------


async def test_after_the_token_dies_the_bot_edits_through_the_channel(
    fake: FakeDiscord, bot: TestBot
) -> None:
    record = await fake.slash("longjob")
    await fake.wait_for(
        lambda: (
            record.original_message_id
            and fake.messages[record.original_message_id].content == "working"
        )
    )
    since = fake.last_seq
    fake.advance(901)  # past the 15-minute token lifetime
    bot.gate.set()

    dead = await fake.wait_for_request("PATCH", ORIGINAL, since=since)
    assert (dead.status, dead.code) == (401, 50027)
    edit = await fake.wait_for_request("PATCH", r"^/channels/\d+/messages/\d+$", since=since)
    post = await fake.wait_for_request("POST", CHANNEL_MESSAGES, since=since)
    assert edit.status == 200 and edit.auth and post.status == 200
    message = fake.messages[record.original_message_id or 0]
    assert message.content == "done (token error 50027)"
    assert [m.content for m in fake.messages_in("general")][-1] == "job finished"


async def test_429_with_via_is_retried_and_delivered_once(fake: FakeDiscord, bot: TestBot) -> None:
    channel_fault = fake.inject("POST", CHANNEL_MESSAGES, 429, retry_after=0.05)
    webhook_fault = fake.inject("POST", r"^/webhooks/", 429, retry_after=0.05)
    since = fake.last_seq
    record = await fake.slash("say", {"text": "hello"})
    await fake.wait_for_request("POST", r"^/webhooks/", since=since, status=200)

    posts = fake.requests_matching("POST", CHANNEL_MESSAGES, since=since)
    assert [r.status for r in posts] == [429, 200]
    assert posts[0].reply["retry_after"] == 0.05 and posts[0].fault == "injected"
    assert channel_fault.hits == 1 and webhook_fault.hits == 1 and fake.count_429 == 2
    assert [m.content for m in fake.messages_in("general")].count("hello") == 1
    # the first followup after an ephemeral defer fills in the "thinking" message
    original = fake.messages[record.original_message_id or 0]
    assert original.content == "sent" and original.ephemeral and record.followup_ids == []


async def test_configured_rate_limit_answers_a_real_429(fake: FakeDiscord, bot: TestBot) -> None:
    fake.set_rate_limit("POST", CHANNEL_MESSAGES, limit=1, per=1.0)
    since = fake.last_seq
    await fake.slash("say", {"text": "one"})
    await fake.slash("say", {"text": "two"})  # both within the window: one of them gets a 429
    await fake.wait_for(
        lambda: len(fake.requests_matching("POST", CHANNEL_MESSAGES, since=since, status=200)) == 2
    )
    statuses = [r.status for r in fake.requests_matching("POST", CHANNEL_MESSAGES, since=since)]
    assert statuses.count(429) >= 1 and statuses.count(200) == 2
    assert sorted(m.content for m in fake.messages_in("general")) == ["one", "two"]


# --- gateway: reconnects --------------------------------------------------------------------


async def test_op7_reconnect_resumes_and_replays_a_missed_interaction(
    fake: FakeDiscord, bot: TestBot
) -> None:
    mark = len(fake.gateway_log)
    assert await fake.send_reconnect() == 1
    # dispatched while the bot is reconnecting: it must come back in the RESUME replay
    record = await fake.slash("ping")
    await fake.wait_for(lambda: any(f.t == "RESUMED" for f in fake.gateway_log[mark:]))
    await fake.wait_for_callback(record)
    resume = [f for f in fake.gateway_log[mark:] if f.direction == "recv" and f.op == 6]
    assert resume and resume[0].d["session_id"] in fake.gateway.sessions
    replayed = [f.d["id"] for f in fake.gateway_log[mark:] if f.direction == "replay"]
    assert str(record.id) in replayed
    await fake.wait_for(lambda: fake.messages[record.original_message_id or 0].content == "pong")

    later = await fake.wait_for_callback(await fake.slash("ping"))
    assert later.response_type == 5
    assert fake.gateway.identifies == 1  # resumed, never re-identified


async def test_dropped_socket_resumes_and_invalid_session_reidentifies(
    fake: FakeDiscord, bot: TestBot
) -> None:
    session = next(iter(fake.gateway.sessions.values()))
    assert await fake.drop_gateway() == 1  # no close frame: like a network failure
    await fake.wait_for(lambda: session.resumes == 1 and session.connection is not None)
    await fake.wait_for_callback(await fake.slash("ping"))

    assert await fake.send_invalid_session(resumable=False) == 1
    await fake.wait_for(lambda: fake.gateway.identifies == 2)
    await fake.wait_ready()
    record = await fake.wait_for_callback(await fake.slash("ping"))
    assert record.response_type == 5


async def test_auto_sharded_bot_asks_gateway_bot(fake: FakeDiscord) -> None:
    async with running(TestShardedBot(), fake):
        gateway_bot = fake.requests_matching("GET", r"^/gateway/bot$")
        assert [r.status for r in gateway_bot] == [200]
        ready = sent_events(fake, "READY")[0]
        assert ready["shard"] == [0, 1] and ready["resume_gateway_url"] == fake.gateway_url
        await fake.wait_for_callback(await fake.slash("ping"))


# --- raw protocol checks (no discord.py) ----------------------------------------------------


class RawGateway:
    """A minimal gateway client: plain text frames, no heartbeating (tests are short)."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.session = session
        self.ws = ws
        self.session_id: str | None = None
        self.seq = 0

    @classmethod
    async def connect(cls, fake: FakeDiscord, session: aiohttp.ClientSession) -> RawGateway:
        ws = await session.ws_connect(f"{fake.gateway_url}?v=10&encoding=json")
        gw = cls(session, ws)
        hello = await gw.recv()
        assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] > 0
        return gw

    async def send(self, op: int, d: Any) -> None:
        await self.ws.send_str(json.dumps({"op": op, "d": d}))

    async def recv(self) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=5)
        if msg.type != aiohttp.WSMsgType.TEXT:
            return {"closed": msg.type, "code": self.ws.close_code}
        frame = json.loads(msg.data)
        if frame.get("s") is not None:
            assert frame["s"] > self.seq, "sequence numbers must increase"
            self.seq = frame["s"]
        return frame

    async def until(self, event: str) -> dict[str, Any]:
        while True:
            frame = await self.recv()
            if frame.get("t") == event or "closed" in frame:
                return frame

    async def identify(self, token: str, intents: int = (1 << 0) | (1 << 9)) -> dict[str, Any]:
        await self.send(2, {"token": token, "intents": intents, "properties": {}})
        ready = await self.until("READY")
        if "closed" not in ready:
            self.session_id = ready["d"]["session_id"]
            await self.until("GUILD_CREATE")
        return ready


class Api:
    def __init__(self, fake: FakeDiscord, session: aiohttp.ClientSession) -> None:
        self.fake = fake
        self.session = session

    async def __call__(
        self, method: str, path: str, *, auth: bool = True, **kwargs: Any
    ) -> tuple[int, dict[str, str], Any]:
        headers = {"Authorization": f"Bot {self.fake.bot_token}"} if auth else {}
        async with self.session.request(
            method, self.fake.api_base + path, headers=headers, **kwargs
        ) as response:
            text = await response.text()
            body = json.loads(text) if text else None
            return response.status, dict(response.headers), body


@pytest.fixture
async def raw(fake: FakeDiscord) -> AsyncIterator[tuple[Api, RawGateway]]:
    async with aiohttp.ClientSession() as session:
        api = Api(fake, session)
        gateway = await RawGateway.connect(fake, session)
        await gateway.identify(fake.bot_token)
        commands_path = f"/applications/{fake.app_id}/guilds/{DEFAULT_GUILD_ID}/commands"
        status, _, _ = await api(
            "PUT",
            commands_path,
            json=[
                {
                    "name": "imagine",
                    "description": "Make a picture",
                    "options": [
                        {"name": "prompt", "description": "What", "type": 3, "required": True}
                    ],
                }
            ],
        )
        assert status == 200
        yield api, gateway
        await gateway.ws.close()


async def test_replies_are_exactly_json_with_rate_limit_headers(
    fake: FakeDiscord, raw: tuple[Api, RawGateway]
) -> None:
    api, _ = raw
    status, headers, body = await api("GET", "/users/@me")
    assert status == 200 and body["bot"] is True
    assert headers["Content-Type"] == "application/json"  # no charset (§9)
    assert headers["X-RateLimit-Remaining"] != "0" and "X-RateLimit-Bucket" in headers
    assert (await api("GET", "/users/@me", auth=False))[:3:2] == (
        401,
        {"message": "401: Unauthorized", "code": 0},
    )
    status, _, body = await api("GET", "/gateway/bot")
    assert body["url"] == fake.gateway_url and body["session_start_limit"]["max_concurrency"] == 1

    fault = fake.inject("GET", r"^/users/@me$", 404, code=10015, times=1)
    status, headers, body = await api("GET", "/users/@me")
    assert (status, body) == (404, {"message": "Unknown Webhook", "code": 10015})
    assert headers["Via"] == "1.1 google" and fault.hits == 1
    assert (await api("GET", "/users/@me"))[0] == 200  # one-shot

    status, _, body = await api("GET", "/no/such/route")
    assert (status, body["code"]) == (404, 0)
    assert fake.unknown_routes == [("GET", "/api/v10/no/such/route")]
    fake.unknown_routes.clear()


async def test_command_registration_is_validated_and_ids_are_stable(
    fake: FakeDiscord, raw: tuple[Api, RawGateway]
) -> None:
    api, _ = raw
    path = f"/applications/{fake.app_id}/commands"
    good = [{"name": "imagine", "description": "Make a picture", "type": 1}]
    _, _, first = await api("PUT", path, json=good)
    _, _, second = await api("PUT", path, json=good)
    assert first[0]["id"] == second[0]["id"] and first[0]["application_id"] == str(fake.app_id)
    for bad in (
        [{"name": "Imagine", "description": "uppercase"}],
        [{"name": "imagine", "description": "x" * 101}],
        [{"name": "has space", "description": "d"}],
        [good[0], good[0]],
        [
            {
                "name": "opts",
                "description": "d",
                "options": [
                    {"name": "a", "description": "d", "type": 3},
                    {"name": "b", "description": "d", "type": 3, "required": True},
                ],
            }
        ],
    ):
        status, _, body = await api("PUT", path, json=bad)
        assert (status, body["code"]) == (400, 50035), bad
        assert body["errors"]


async def test_interaction_callback_rules(fake: FakeDiscord, raw: tuple[Api, RawGateway]) -> None:
    api, gateway = raw
    record = await fake.slash("imagine", {"prompt": "a lighthouse"})
    event = await gateway.until("INTERACTION_CREATE")
    for key in ("id", "type", "token", "version", "application_id", "attachment_size_limit"):
        assert key in event["d"], key
    assert event["d"]["data"]["guild_id"] == str(DEFAULT_GUILD_ID)
    assert event["d"]["channel"]["name"] == "general" and event["d"]["member"]["user"]["id"]

    original = f"/webhooks/{fake.app_id}/{record.token}/messages/@original"
    callback = f"/interactions/{record.id}/{record.token}/callback"
    assert (await api("PATCH", original, auth=False, json={"content": "x"}))[2]["code"] == 10015
    status, _, body = await api(
        "POST", callback, auth=False, json={"type": 8, "data": {"choices": []}}
    )
    assert (status, body["code"]) == (400, 50035)
    status, _, body = await api(
        "POST",
        callback,
        params={"with_response": "1"},
        auth=False,
        json={"type": 4, "data": {"content": "hi"}},
    )
    assert status == 200 and body["resource"]["message"]["content"] == "hi"
    assert body["interaction"]["response_message_id"] == body["resource"]["message"]["id"]
    status, _, body = await api(
        "POST", callback, auth=False, json={"type": 4, "data": {"content": "again"}}
    )
    assert (status, body["code"]) == (400, 40060)

    late = await fake.slash("imagine", {"prompt": "slow"})
    fake.advance(3.5)
    status, _, body = await api(
        "POST", f"/interactions/{late.id}/{late.token}/callback", json={"type": 5}
    )
    assert (status, body["code"]) == (404, 10062)
    fake.advance(900)
    status, _, body = await api("PATCH", original, auth=False, json={"content": "too late"})
    assert (status, body["code"]) == (401, 50027)


async def test_message_limits_and_attachment_rules(
    fake: FakeDiscord, raw: tuple[Api, RawGateway]
) -> None:
    api, gateway = raw
    channel = fake.guild.channel_named("art")
    assert channel is not None
    path = f"/channels/{channel.id}/messages"

    status, _, body = await api("POST", path, json={"content": "x" * 2001})
    assert (status, body["code"]) == (400, 50035)
    assert body["errors"]["content"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    assert (await api("POST", path, json={"content": ""}))[2]["code"] == 50006
    button = {"type": 2, "style": 1, "label": "U1", "custom_id": "same"}
    rows = [{"type": 1, "components": [button, dict(button)]}]
    assert (await api("POST", path, json={"content": "d", "components": rows}))[2]["code"] == 50035
    six_rows = [{"type": 1, "components": [{**button, "custom_id": f"b{i}"}]} for i in range(6)]
    assert (await api("POST", path, json={"content": "d", "components": six_rows}))[2][
        "code"
    ] == 50035
    assert (await api("POST", "/channels/1/messages", json={"content": "x"}))[2]["code"] == 10003
    assert (await api("GET", f"{path}/1"))[2]["code"] == 10008

    form = aiohttp.FormData(quote_fields=False)
    payload = {
        "content": "two files",
        "attachments": [{"id": 0, "filename": "a.png"}, {"id": 1, "filename": "b.png"}],
    }
    form.add_field("payload_json", json.dumps(payload))
    form.add_field("files[0]", PNG, filename="a.png", content_type="application/octet-stream")
    form.add_field("files[1]", PNG * 2, filename="b.png", content_type="application/octet-stream")
    status, _, created = await api("POST", path, data=form)
    assert status == 200 and [a["filename"] for a in created["attachments"]] == ["a.png", "b.png"]
    announced = await gateway.until("MESSAGE_CREATE")  # the session has GUILD_MESSAGES
    assert announced["d"]["id"] == created["id"] and announced["d"]["guild_id"]

    keep_a = created["attachments"][0]["id"]
    form = aiohttp.FormData(quote_fields=False)
    edit = {"attachments": [{"id": keep_a}, {"id": 0, "filename": "c.png"}]}
    form.add_field("payload_json", json.dumps(edit))
    form.add_field("files[0]", b"new", filename="c.png", content_type="application/octet-stream")
    status, _, edited = await api("PATCH", f"{path}/{created['id']}", data=form)
    assert status == 200 and [a["filename"] for a in edited["attachments"]] == ["a.png", "c.png"]
    async with api.session.get(edited["attachments"][1]["url"]) as response:
        assert await response.read() == b"new"

    fake.set_upload_limit(100)
    form = aiohttp.FormData(quote_fields=False)
    form.add_field("payload_json", json.dumps({"content": "big"}))
    form.add_field(
        "files[0]", b"x" * 101, filename="big.bin", content_type="application/octet-stream"
    )
    status, _, body = await api("POST", path, data=form)
    assert (status, body["code"]) == (413, 40005)


async def test_gateway_rejects_bad_tokens_and_replays_on_resume(
    fake: FakeDiscord, raw: tuple[Api, RawGateway]
) -> None:
    _, gateway = raw
    async with aiohttp.ClientSession() as http:
        intruder = await RawGateway.connect(fake, http)
        closed = await intruder.identify("wrong-token")
        assert closed["code"] == 4004

        await gateway.send(1, gateway.seq)
        assert (await gateway.recv())["op"] == 11  # heartbeat ACK

        # miss an interaction while disconnected, then RESUME: it is replayed, then RESUMED
        await gateway.ws.close(code=4000)  # 1000/1001 would end the session for good
        await fake.wait_for(lambda: not fake.gateway.sessions[gateway.session_id or ""].connection)
        record = await fake.slash("imagine", {"prompt": "while away"})
        back = await RawGateway.connect(fake, http)
        back.seq = gateway.seq
        await back.send(
            6, {"token": fake.bot_token, "session_id": gateway.session_id, "seq": gateway.seq}
        )
        replayed = await back.recv()
        assert replayed["t"] == "INTERACTION_CREATE" and replayed["d"]["id"] == str(record.id)
        assert (await back.recv())["t"] == "RESUMED"

        stranger = await RawGateway.connect(fake, http)
        await stranger.send(6, {"token": fake.bot_token, "session_id": "nope", "seq": 1})
        assert (await stranger.recv()) == {"op": 9, "d": False, "s": None, "t": None}
        await stranger.ws.close()

        # closing with 1000 ends the session: a later RESUME is refused with op 9 false
        await back.ws.close(code=1000)
        session = fake.gateway.sessions[gateway.session_id or ""]
        await fake.wait_for(lambda: session.invalid)
        again = await RawGateway.connect(fake, http)
        await again.send(6, {"token": fake.bot_token, "session_id": session.id, "seq": back.seq})
        assert (await again.recv())["op"] == 9
        await again.ws.close()


async def test_privileged_intents_need_application_flags(endpoints: None) -> None:
    async with FakeDiscord(app_flags=0) as fake, aiohttp.ClientSession() as http:
        gateway = await RawGateway.connect(fake, http)
        closed = await gateway.identify(fake.bot_token, intents=(1 << 0) | (1 << 1))
        assert closed["code"] == 4014


async def test_http_control_api_drives_the_fake(fake: FakeDiscord, bot: TestBot) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{fake.control_url}/slash", json={"name": "ping"}) as response:
            assert response.status == 200
            record = await response.json()
        url = f"{fake.control_url}/requests/wait"
        query = {"method": "PATCH", "path": ORIGINAL, "status": "200", "timeout": "5"}
        async with http.get(url, params=query) as response:
            assert (
                response.status == 200
                and (await response.json())["files"][0]["filename"] == "pong.png"
            )
        async with http.get(f"{fake.control_url}/interactions/{record['id']}") as response:
            detail = await response.json()
        async with http.get(
            f"{fake.control_url}/messages/{detail['original_message_id']}"
        ) as response:
            assert (await response.json())["content"] == "pong"
        async with http.post(f"{fake.control_url}/slash", json={"name": "nope"}) as response:
            assert response.status == 400
        async with http.post(f"{fake.control_url}/advance", json={"seconds": 5}) as response:
            assert (await response.json())["clock_offset"] == 5


async def test_runs_standalone_as_a_module() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.discord",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,  # so `-m tests...` resolves wherever pytest runs from
    )
    try:
        lines: dict[str, str] = {}
        while True:
            line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()  # type: ignore[union-attr]
            if line == "READY" or not line:
                break
            key, _, value = line.partition("=")
            lines[key] = value
        async with (
            aiohttp.ClientSession() as http,
            http.get(lines["FAKE_DISCORD_CONTROL_URL"] + "/info") as response,
        ):
            info = await response.json()
        assert info["api_base"] == lines["FAKE_DISCORD_API_BASE"]
        assert info["guilds"][0]["channels"]["general"]
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


def test_point_discord_at_is_idempotent_and_restorable(endpoints: None) -> None:
    point_discord_at("http://127.0.0.1:9/api/v10/", "ws://127.0.0.1:9/gateway")
    point_discord_at("http://127.0.0.1:9/api/v10", "ws://127.0.0.1:9/gateway")
    assert discord.http.Route.BASE == "http://127.0.0.1:9/api/v10"
    assert discord.http.Route("GET", "/users/@me").url == "http://127.0.0.1:9/api/v10/users/@me"
    assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == "ws://127.0.0.1:9/gateway"
    assert discord.asset.Asset.BASE == "http://127.0.0.1:9"
    point_discord_at("https://discord.com/api/v10", None)
    assert discord.asset.Asset.BASE == "https://cdn.discordapp.com"
    with pytest.raises(ValueError):
        point_discord_at("127.0.0.1:9/api/v10", None)
