"""The first hour of a server owner and a member (issue 15), end to end: the real bot
process against the fake Discord and the fake providers."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

from tests.e2e.conftest import World, button_ids
from tests.e2e.test_commands import advance_until, png
from tests.e2e.test_community import admin, private_text, slash
from tests.e2e.test_imagine import imagine_to_grid, is_final_grid
from tests.fakes.discord import DEFAULT_GUILD_ID
from tests.fakes.discord.models import MessageRecord, default_guild
from tests.fakes.piapi import POINTS_PER_USD


def closed_port_url() -> str:
    """A loopback URL nothing listens on: every connection to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def all_versions(message: MessageRecord) -> list[str]:
    return [*(v.get("content") or "" for v in message.history), message.content]


async def test_an_outage_says_so_at_once_and_gives_up_in_a_sentence(world: World) -> None:
    """Item 1 and 2: the provider refuses connections. The member reads at once that the
    service is not answering and that the bot retries (not a long queue), and the job ends
    within the retry window with a sentence: no exception name, no quoted detail."""
    bot = await world.start_bot(
        PIAPI_BASE_URL=closed_port_url(), MJ_SUBMIT_RETRY_WINDOW_S="3", PROVIDER_TIMEOUT_S="1"
    )
    interaction = await world.discord.slash("imagine", {"prompt": "a dark lighthouse"})
    await world.discord.wait_for(lambda: interaction.responded, timeout=10, what="the ack")
    message_id = interaction.original_message_id

    retrying = await world.wait_message(
        lambda m: m.id == message_id and "isn't answering; retrying" in m.content,
        limit_s=10,
        what="the retrying note",
    )
    assert retrying.content.splitlines()[0].endswith("(Retrying)"), retrying.content
    assert "Queued" not in retrying.content

    final = await world.wait_message(
        lambda m: m.id == message_id and "❌ Failed" in m.content,
        limit_s=20,
        what="the job to give up",
    )
    assert final.content.splitlines()[1:] == [
        "❌ Failed: The image service did not answer for 1 minute; nothing was charged."
        " Try again later."
    ], final.content
    for text in all_versions(final):
        assert "ClientConnectorError" not in text and "ConnectError" not in text
        assert "\n>" not in text
    # The detail is the log's: the final line names what the transport said, once.
    log = bot.log()
    [ending] = [line for line in log.splitlines() if ": failed (unavailable" in line]
    assert "[provider: ClientConnectorError]" in ending or "[provider: ConnectError]" in ending
    assert log.count("ClientConnectorError") + log.count("ConnectError") == 1, log


async def test_a_job_lost_to_an_outage_does_not_use_the_members_day(world: World) -> None:
    """Item 4: with one job a day (and one fast), a job the service never took leaves
    the member's day untouched; the next one runs, and only the one after is refused."""
    await world.start_bot(MJ_SUBMIT_RETRY_WINDOW_S="2", PROVIDER_TIMEOUT_S="1")
    await admin(world, "settings limits", {"per_day": 1, "fast_per_day": 1})
    outage = world.piapi.inject("POST", "/api/v1/task", "503", times=None)
    lost = await slash(world, "imagine", {"prompt": "lost to the outage", "mode": "fast"})
    assert lost.response_type == 5
    await world.wait_message(
        lambda m: m.id == lost.original_message_id and "❌ Failed" in m.content,
        limit_s=20,
        what="the outage to end the job",
    )
    world.piapi.faults.remove(outage)

    ran = await slash(world, "imagine", {"prompt": "after the outage", "mode": "fast"})
    assert ran.response_type == 5, ran.response_data  # public "thinking": it started
    await world.discord.wait_for(lambda: len(world.piapi.created()) == 1, timeout=10)
    refused = await slash(world, "imagine", {"prompt": "one too many", "mode": "fast"})
    assert "day" in private_text(refused)
    assert len(world.piapi.created()) == 1


async def run_check(world: World, **env: str) -> tuple[int, str]:
    """`python -m bot --check --online` as an owner runs it, against the fakes."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--check",
        "--online",
        cwd=world.tmp,
        env={**world.env, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_a_refused_key_is_an_error_at_start_with_the_fix(world: World) -> None:
    """Item 3: the bot starts (Discord works) but says loudly, once, what is wrong."""
    bot = await world.start_bot(PIAPI_API_KEY="pk-not-the-right-key")
    await world.discord.wait_for(
        lambda: "refused its API key" in bot.log(), timeout=10, what="the key's ERROR line"
    )
    [line] = [line for line in bot.log().splitlines() if "refused its API key" in line]
    assert " ERROR " in line, line
    assert "Fix: put a valid key in PIAPI_API_KEY and restart" in line, line
    assert "pk-not-the-right-key" not in bot.log()


async def test_check_online_logs_in_to_discord_and_reads_the_account(world: World) -> None:
    """Item 3: `--check --online` proves the token and the key, or says which is wrong."""
    code, out = await run_check(world)
    assert code == 0, out
    assert "configuration OK" in out and "Discord: logged in as" in out, out
    assert "account piapi (piapi): key accepted" in out, out

    code, out = await run_check(world, PIAPI_API_KEY="pk-junk")
    assert code == 2, out
    assert "account piapi (piapi): the image service refused its API key." in out, out
    assert "PIAPI_API_KEY" in out and "pk-junk" not in out, out

    code, out = await run_check(world, DISCORD_TOKEN="junk-token")
    assert code == 2, out
    assert "Discord refused DISCORD_TOKEN. Fix:" in out and "junk-token" not in out, out


async def test_a_quiet_start_a_logged_stop_and_an_invite_for_threads(world: World) -> None:
    """Items 11 and 10: no voice warnings at start; the invite the bot prints asks for
    Send Messages in Threads; SIGTERM is a line in the log, and the exit is clean."""
    bot = await world.start_bot()
    await world.discord.wait_for(lambda: "invite: " in bot.log(), timeout=10, what="the invite")
    log = bot.log()
    assert "voice will NOT be supported" not in log and "PyNaCl" not in log, log
    [invite] = re.findall(r"invite: (\S+)", log)
    permissions = int(parse_qs(urlsplit(invite).query)["permissions"][0])
    threads = 1 << 38  # SEND_MESSAGES_IN_THREADS
    assert permissions & threads and permissions & (1 << 11), permissions  # and Send Messages

    bot.proc.send_signal(signal.SIGTERM)
    await asyncio.get_running_loop().run_in_executor(None, bot.proc.wait, 15)
    assert bot.proc.returncode == 0
    assert "SIGTERM received: closing; jobs in flight resume at the next start" in bot.log()


async def test_an_unreachable_discord_is_one_line(world: World) -> None:
    """Item 11: no traceback when Discord cannot be reached, one ERROR line and exit 2."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=world.tmp,
        env={**world.env, "DISCORD_API_BASE": closed_port_url() + "api/v10"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    text = out.decode()
    assert proc.returncode == 2, text
    assert "Traceback" not in text, text
    [line] = [line for line in text.splitlines() if "ERROR" in line]
    assert "Discord is unreachable at 127.0.0.1:" in line, line
    assert "check the network or DISCORD_API_BASE" in line, line


NEW_GUILD_ID = 1300000000000000001


async def test_joining_a_server_sends_the_set_up_card(world: World) -> None:
    """Item 5: on GUILD_CREATE for a server it was just invited to, the bot posts a short
    card in the system channel: the defaults in force and the command changing each."""
    bot = await world.start_bot()
    # discord.py reports joins only once its start is over (READY and the first servers).
    await world.discord.wait_for(lambda: "logged in as" in bot.log(), timeout=10, what="ready")
    fake = world.discord
    guild = default_guild(fake.users, fake.bot_user, guild_id=NEW_GUILD_ID, name="New Server")
    fake.guilds.append(guild)
    bot_member = [m for m in guild.members if m.user.id == fake.bot_user.id]
    joined = guild.create_payload(members=bot_member, now=fake.now())
    # A join's GUILD_CREATE carries no `unavailable` (false marks a known server coming
    # back after an outage, which discord.py reports as guild_available instead).
    del joined["unavailable"]
    await fake.gateway.dispatch_guild_event(
        "GUILD_CREATE",
        joined,
        NEW_GUILD_ID,
        needs_messages_intent=False,
    )
    card = await world.wait_message(
        lambda m: m.guild_id == NEW_GUILD_ID and "Thanks for adding me" in m.content,
        what="the set-up card",
    )
    assert card.channel_id == guild.channels[0].id  # the system channel
    assert card.content.splitlines() == [
        "**Thanks for adding me to New Server!**",
        "Every job runs on the owner's image-service account and spends its credits. Right now:",
        "• Where: every channel — `/settings channels add` keeps me to some",
        "• Who: everyone — `/settings roles add`",
        "• Per member: 3 at once, 100 a day, 25 fast/turbo a day — `/settings limits`",
        "• Speed: **fast** by default, allowed relax, fast, turbo — `/settings modes`",
        "• Buttons under a job: usable by anyone — `/settings clicks`",
        "`/settings show` lists every setting (Manage Server); members start with `/help`.",
    ]
    # Only on joining: the servers it was already in at start got no card.
    assert not [m for m in fake.messages.values() if "Thanks for adding me" in m.content][1:]


async def test_info_and_usage_me_say_what_is_left_today(world: World) -> None:
    """Item 10 (/info) and 9 (/usage me): the speed, the jobs and fast jobs left today,
    what runs now and when the day resets, privately."""
    await world.start_bot()
    await admin(world, "settings limits", {"per_day": 5, "fast_per_day": 2})
    await imagine_to_grid(world, "one for today")
    info = private_text(await slash(world, "info"))
    lines = info.splitlines()
    assert lines[:5] == [
        "**Your info here**",
        "Speed: **fast** (change it with `/prefs mode`, or `--fast`/`--relax` on a prompt)",
        "Jobs today: 1 of 5 used, **4 left**",
        "Fast/turbo jobs today: 1 of 2 used, **1 left**",
        "Running or waiting now: 0 (at once: 3)",
    ], info
    assert re.fullmatch(r"The day resets <t:\d+:R> \(midnight UTC\)\.", lines[5]), info
    usage = private_text(await slash(world, "usage me"))
    assert "Jobs today: 1 of 5 used, **4 left**" in usage, usage
    assert "Fast/turbo jobs today: 1 of 2 used, **1 left**" in usage, usage


async def test_a_failures_details_go_to_the_admins_log_channel(world: World) -> None:
    """Item 2: the member's channel reads a sentence; the admin-chosen log channel gets
    the job, the code and what the transport said."""
    await world.start_bot(
        PIAPI_BASE_URL=closed_port_url(), MJ_SUBMIT_RETRY_WINDOW_S="2", PROVIDER_TIMEOUT_S="1"
    )
    art = world.discord.resolve_channel("art", world.discord.resolve_guild(None))
    saved = await admin(world, "settings log_channel", {"channel": "art"})
    assert saved == f"Saved: log channel: none → <#{art.id}>", saved

    failed = await slash(world, "imagine", {"prompt": "into the void"}, channel="general")
    public = await world.wait_message(
        lambda m: m.id == failed.original_message_id and "❌ Failed" in m.content,
        limit_s=20,
        what="the public failure",
    )
    assert "ClientConnectorError" not in public.content and "ConnectError" not in public.content
    report = await world.wait_message(
        lambda m: m.channel_id == art.id and "job `" in m.content, what="the log channel's report"
    )
    lines = report.content.splitlines()
    general = world.discord.resolve_channel("general", world.discord.resolve_guild(None))
    user = world.discord.resolve_user("tester").id
    assert lines[0].startswith("❌ Failed: job `"), lines
    assert lines[0].endswith(f"(imagine) by <@{user}> in <#{general.id}> on piapi — `unavailable`")
    assert lines[1].startswith("Members read: The image service did not answer for 1 minute")
    said = ("The service said: `ClientConnectorError`", "The service said: `ConnectError`")
    assert lines[2] in said, lines
    assert not any(m.channel_id == art.id for m in world.channel_messages() if m is not report)


def options_of(command: dict[str, object]) -> list[dict[str, object]]:
    found = []
    for option in command.get("options") or []:  # type: ignore[attr-defined]
        found.append(option)
        found += options_of(option)
    return found


async def test_settings_answer_in_the_words_of_their_options(world: World) -> None:
    """Item 8: replies name the options, not the stored keys; every option is described;
    the moderation-refusals setting is explained and settable."""
    await world.start_bot()
    assert await admin(world, "settings limits", {"at_once": 1}) == "Saved: at_once: 3 → 1"
    assert (
        await admin(world, "settings clicks", {"who": "requester"})
        == "Saved: who may click: anyone → requester and moderators"
    )
    assert (
        await admin(world, "settings limits", {"moderation_refusals": 5})
        == "Saved: moderation_refusals: 3 → 5"
    )
    artists = world.discord.resolve_guild(None).roles[1]  # "Artists"
    saved = await admin(world, "settings limits", {"role": "Artists", "per_day": 5})
    assert saved == (
        f"Saved: role limits <@&{artists.id}>: added (at_once 1, per_day 5, fast_per_day 25)"
    ), saved
    shown = await admin(world, "settings show")
    assert (
        "Moderation refusals per member per day before a pause until midnight UTC: 5"
        " (`/settings limits moderation_refusals`)" in shown
    ), shown
    audit = private_text(await slash(world, "settings audit", user="admin"))
    assert "at_once: 3 → 1" in audit and "concurrent_jobs" not in audit, audit
    settings = world.discord.find_command("settings", DEFAULT_GUILD_ID)
    assert settings is not None
    vague = [o["name"] for o in options_of(settings) if o.get("description") in ("…", "...")]
    assert vague == [], vague


async def test_the_progress_line_reads_as_midjourneys_at_each_state(world: World) -> None:
    """Item 7: every state's first line is Midjourney's `**prompt --ar 16:9** - <@id>
    (state)`, the percentage shown once as `(25%) (fast)`, the elapsed time labelled; the
    effective --ar (from the option) is shown; a typed --ar that contradicts the option
    is refused privately, and one that agrees reaches the service once."""
    await world.start_bot()
    options = {"prompt": "a lighthouse", "aspect_ratio": "16:9", "mode": "fast"}
    interaction = await slash(world, "imagine", options)
    user = world.discord.resolve_user("tester").id
    for _ in range(12):
        await world.advance_piapi(3, settle=0.3)
    final = await world.wait_message(
        lambda m: m.id == interaction.original_message_id and bool(m.attachments),
        what="the final grid",
    )
    head = f"**a lighthouse --ar 16:9** - <@{user}> "
    states = set()
    for text in all_versions(final):
        first, *rest = text.splitlines() or [""]
        if not first:
            continue  # the deferred reply before the first render
        assert first.startswith(head), text
        state = first.removeprefix(head)
        assert re.fullmatch(r"\(Waiting to start\)|\((\d{1,3})%\) \(fast\)|\(fast\)", state), text
        assert len(re.findall(r"\d+%", text)) <= 1, text  # the percentage once
        if state != "(fast)":
            assert rest and re.fullmatch(r"(⌛|▰*▱*) ?(<10s|\d+s|\d+m( \d+s)?) elapsed", rest[-1])
        states.add(re.sub(r"\d+", "N", state))
    assert states >= {"(Waiting to start)", "(N%) (fast)", "(fast)"}, states
    # The previews and the final share the embed's image slot: nothing jumps at the end.
    previews = [
        v for v in final.history if any((e.get("image") or {}).get("url") for e in v["embeds"])
    ]
    assert previews, "previews were shown in the embed"
    [attachment] = final.attachments
    [embed] = final.embeds
    assert embed["image"]["url"] == f"attachment://{attachment.filename}", embed

    refused = await slash(world, "imagine", {**options, "prompt": "a lighthouse --ar 3:2"})
    assert private_text(refused) == (
        "Your prompt says `--ar 3:2` and the aspect_ratio option says 16:9. Keep one of them."
    )
    same = await slash(world, "imagine", {**options, "prompt": "a pier --ar 16:9"})
    assert same.response_type == 5
    await world.discord.wait_for(lambda: len(world.piapi.created()) == 2, timeout=10)
    sent = world.piapi.created()[1].json["input"]
    assert sent["prompt"].count("--ar") == 1 and not sent.get("aspect_ratio"), sent


async def test_job_show_reuses_the_first_upload_and_history_pages_with_links(
    world: World,
) -> None:
    """Item 10: /job show of a job whose service link has expired re-posts the image the
    bot uploaded the first time; /job history names Zoom Out, links each message and turns
    its pages with ◀ ▶ in place."""
    await world.start_bot()
    await admin(world, "settings limits", {"at_once": 0})
    grid = await imagine_to_grid(world, "an old castle")
    [original] = grid.attachments
    click = await world.discord.click(grid.id, button_ids(grid)["U1"])
    await world.discord.wait_for(lambda: click.responded, timeout=5, what="U1")
    for _ in range(12):
        await world.advance_piapi(3, settle=0.3)
    upscaled = await world.wait_message(
        lambda m: bool(m.attachments) and "Zoom Out 2x" in button_ids(m), what="the upscale"
    )
    zoom = await world.discord.click(upscaled.id, button_ids(upscaled)["Zoom Out 2x"])
    await world.discord.wait_for(lambda: zoom.responded, timeout=5, what="Zoom Out")
    await world.discord.wait_for(lambda: world.piapi.created("outpaint"), timeout=10)

    world.piapi.inject("GET", "/mj/", "500", times=None)  # the service's links are gone
    job_id = re.search(r"mj_([0-9a-z]{12})", original.filename)
    assert job_id is not None, original.filename
    show = await slash(world, "job show", {"id": job_id[1]})
    shown = await world.wait_message(
        lambda m: m.id == show.original_message_id and bool(m.attachments),
        what="the job posted again with its first image",
    )
    assert shown.attachments[0].data == original.data
    assert "no longer available" not in shown.content

    for n in range(9):  # eleven jobs or more: two pages
        await slash(world, "imagine", {"prompt": f"filler {n}"})
    history = await slash(world, "job history")
    [embed] = (history.response_data or {})["embeds"]
    assert "Zoom Out" in embed["description"] and "outpaint" not in embed["description"]
    guild = world.discord.resolve_guild(None).id
    link = f"[message](<https://discord.com/channels/{guild}/{grid.channel_id}/{grid.id}>)"
    assert embed["footer"]["text"].startswith("Page 1 of 2")
    listing = world.discord.messages[history.original_message_id or 0]
    arrows = button_ids(listing)
    assert set(arrows) == {"◀️", "▶️"}, arrows
    assert listing.component(arrows["◀️"])["disabled"] is True  # type: ignore[index]
    turned = await world.discord.click(listing.id, arrows["▶️"])
    await world.discord.wait_for(lambda: turned.responded, timeout=5, what="▶")
    assert turned.response_type == 7  # the same private message, turned in place
    [page2] = (turned.response_data or {})["embeds"]
    assert page2["footer"]["text"].startswith("Page 2 of 2"), page2
    assert "Imagine: an old castle" in page2["description"], page2
    assert link in page2["description"], page2["description"]  # the grid's own message


async def test_help_teaches_the_parameters_and_names_prefs_as_midjourneys_settings(
    world: World,
) -> None:
    """Item 10: /help teaches the common -- parameters and says /prefs is what Midjourney
    calls /settings; /info is on the page."""
    await world.start_bot()
    helped = await slash(world, "help")
    [embed] = (helped.response_data or {})["embeds"]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    parameters = fields["Parameters (after the prompt)"]
    for flag in ("--ar 16:9", "--no", "--stylize", "--chaos", "--seed", "--v 7", "--relax"):
        assert flag in parameters, (flag, parameters)
    assert "It is what Midjourney calls `/settings`" in fields["/prefs"], fields["/prefs"]
    assert "left today" in fields["/info"], fields
    assert sum(len(f["name"]) + len(f["value"]) for f in embed["fields"]) < 6000


async def test_describe_and_blend_headers_are_short_and_show_the_source(world: World) -> None:
    """Item 6: /describe's header names the file (no signed CDN link), the source image is
    the embed's image, Imagine all is offered; /blend's shows its --ar and speed."""
    await world.start_bot()
    described = await slash(world, "describe", attachments={"image": png("photo")})

    def done(m: MessageRecord) -> bool:
        return "Imagine all" in button_ids(m)

    await advance_until(
        world, lambda: any(done(m) for m in world.channel_messages()), what="the describe result"
    )
    [result] = [m for m in world.channel_messages() if done(m)]
    user = world.discord.resolve_user("tester").id
    assert result.content == f"**Describe photo.png** - <@{user}> (fast)", result.content
    assert "?ex=" not in result.content and "/attachments/" not in result.content
    [embed] = result.embeds
    [create] = world.piapi.created("describe")
    assert embed["image"]["url"] == create.json["input"]["image_url"] and "thumbnail" not in embed
    assert "Imagine all" in button_ids(result)
    assert described.response_type == 5

    await slash(
        world,
        "blend",
        {"dimension": "portrait"},
        attachments={"image1": png("left"), "image2": png("right")},
    )
    await advance_until(
        world, lambda: any(is_final_grid(m) for m in world.channel_messages()), what="the blend"
    )
    [blend] = [m for m in world.channel_messages() if is_final_grid(m)]
    assert blend.content == f"**Blend of left.png + right.png --ar 2:3** - <@{user}> (fast)"


async def test_usage_server_puts_money_beside_credits(world: World) -> None:
    """Item 9: PiAPI's account read says what its credits are worth; /usage server shows
    the job costs and the balance with their dollar worth beside the credits."""
    await world.start_bot()
    await imagine_to_grid(world, "worth something")
    consumed = world.piapi.initial_credits - world.piapi.balance()
    server = await slash(world, "usage server", user="admin")
    answer = await world.wait_message(
        lambda m: m.id == server.original_message_id and "Server usage" in m.content,
        what="/usage server",
    )
    usd = Decimal(consumed) / POINTS_PER_USD
    assert f"cost {consumed:,} credits (≈ ${usd.quantize(Decimal('0.0001')).normalize():,f})" in (
        answer.content
    ), answer.content
    left = Decimal(world.piapi.balance()) / POINTS_PER_USD
    assert (
        f"**{world.piapi.balance():,} credits** left (≈ ${left.quantize(Decimal('0.01')):,f})."
        in answer.content
    ), answer.content


async def test_the_seed_answers_privately(world: World) -> None:
    """Item 10: 🌱 answers the clicker privately, as Midjourney's seed does; no job
    message is posted in the channel."""
    await world.start_bot()
    grid = await imagine_to_grid(world, "a seeded garden")
    public_before = {m.id for m in world.channel_messages()}
    click = await world.discord.click(grid.id, button_ids(grid)["Seed"])
    await world.discord.wait_for(lambda: click.responded, timeout=5, what="the click")
    for _ in range(3):
        await world.advance_piapi(1, settle=0.2)
    answer = await world.wait_message(
        lambda m: m.id == click.original_message_id and "Seed:" in m.content,
        what="the private seed",
    )
    assert answer.ephemeral
    [seed_task] = world.piapi.created("seed")
    seed = world.piapi.task_json(seed_task.task_id)["output"]["seed"]
    assert answer.content.startswith(f"🌱 Seed: `{seed}` (job `"), answer.content
    assert f"Add `--seed {seed}` to a prompt" in answer.content
    await world.advance_piapi(1, settle=0.5)
    assert {m.id for m in world.channel_messages()} == public_before  # nothing public


async def test_a_job_cancelled_before_it_started_says_so_once_and_costs_nothing(
    world: World,
) -> None:
    """Items 10 and 4: `🚫 Cancelled` (no `: Cancelled.` after it), and a job cancelled
    while it still waited in the bot's queue does not count in the member's day."""
    await world.start_bot(MJ_MAX_CONCURRENT_JOBS="1")  # the second job waits in the bot
    await admin(world, "settings limits", {"per_day": 5})
    await slash(world, "imagine", {"prompt": "the one that runs"})
    await world.discord.wait_for(lambda: len(world.piapi.created()) == 1, timeout=10)
    waiting = await slash(world, "imagine", {"prompt": "the one that waits"})
    await world.wait_message(
        lambda m: m.id == waiting.original_message_id and "Queued" in m.content,
        what="the second job queued",
    )
    history = await slash(world, "job history")
    [embed] = (history.response_data or {})["embeds"]
    job_id = re.search(r"`([0-9a-z]{12})`[^\n]*the one that waits", embed["description"])
    assert job_id is not None, embed["description"]
    done = await slash(world, "job cancel", {"id": job_id[1]})
    await world.wait_message(
        lambda m: m.id == done.original_message_id and "is cancelled" in m.content,
        what="the cancel's answer",
    )
    cancelled = await world.wait_message(
        lambda m: m.id == waiting.original_message_id and "🚫" in m.content,
        what="the cancelled job's message",
    )
    assert cancelled.content.splitlines()[1:] == ["🚫 Cancelled"], cancelled.content
    assert len(world.piapi.created()) == 1  # it never reached the service
    info = private_text(await slash(world, "info"))
    assert "Jobs today: 1 of 5 used, **4 left**" in info, info
