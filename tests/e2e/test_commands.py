"""/describe, /blend, /job and /help end to end: the real bot process against the fake
Discord and the fake PiAPI."""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.discord.buttons_layout import parse_custom_id
from tests.e2e.conftest import World, button_ids, buttons_of
from tests.e2e.test_imagine import GRID_ROWS, imagine_to_grid, is_final_grid
from tests.fakes.discord.models import InteractionRecord, MessageRecord, Upload
from tests.fakes.images import grid_png

MIB = 1024 * 1024
DESCRIBE_ROWS = [["1", "2", "3", "4", "🔄"], ["Imagine all"]]  # 🎉 Imagine all (issue 19)


def png(seed: str) -> Upload:
    return Upload(f"{seed}.png", grid_png(seed, (64, 64)), "image/png")


async def advance_until(world: World, done: Callable[[], bool], *, what: str) -> None:
    """Move the fake provider's clock in 3-second steps until `done` (bounded)."""
    for _ in range(20):
        if done():
            return
        await world.advance_piapi(3, settle=0.25)
    raise AssertionError(f"never happened: {what}")


async def answered(world: World, interaction: InteractionRecord) -> InteractionRecord:
    await world.discord.wait_for(lambda: interaction.responded, timeout=5, what="an answer")
    return interaction


def is_ephemeral(interaction: InteractionRecord) -> bool:
    return bool((interaction.response_data or {}).get("flags", 0) & 64)


async def private_text(world: World, interaction: InteractionRecord, pattern: str) -> str:
    """The text of the private answer (direct, or the deferred reply once edited)."""
    await answered(world, interaction)
    assert is_ephemeral(interaction), interaction.response_data
    if interaction.response_type == 4:
        data = interaction.response_data or {}
        text = (data.get("content") or "") + " ".join(
            str(e.get("description", "")) + str(e.get("fields", "")) for e in data.get("embeds", [])
        )
        assert re.search(pattern, text, re.IGNORECASE), text
        return text
    message = await world.wait_message(
        lambda m: (
            m.id == interaction.original_message_id
            and re.search(pattern, m.content, re.IGNORECASE) is not None
        ),
        what=f"a private answer matching {pattern!r}",
    )
    assert message.ephemeral
    return message.content


def new_message(
    world: World, before: set[int], predicate: Callable[[MessageRecord], bool]
) -> Callable[[], MessageRecord | None]:
    return lambda: next(
        (m for m in world.channel_messages() if m.id not in before and predicate(m)), None
    )


async def test_describe_shows_four_prompts_and_a_pick_imagines_one(world: World) -> None:
    await world.start_bot()
    photo = png("describe-me")
    interaction = await world.discord.slash("describe", attachments={"image": photo})
    await answered(world, interaction)
    assert interaction.response_type == 5  # acknowledged before the provider is asked

    await world.discord.wait_for(lambda: world.piapi.created("describe"), timeout=10)
    [create] = world.piapi.created("describe")
    [record] = [a for a in world.discord.attachments.values() if a.filename == photo.filename]
    # The same file, signed as Discord signed it in the interaction (Discord re-signs each
    # payload, so a URL built now may carry a later `is`; the path names the file).
    sent_url = create.json["input"]["image_url"]
    assert sent_url.split("?")[0] == record.url(world.discord.base_url).split("?")[0]
    assert "hm=" in sent_url
    assert any(f"/{record.id}/" in path for path, _ in world.discord.downloads)

    def finished() -> MessageRecord | None:
        return next((m for m in world.channel_messages() if buttons_of(m) == DESCRIBE_ROWS), None)

    await advance_until(world, lambda: finished() is not None, what="the describe result")
    described = finished()
    assert described is not None and not described.ephemeral
    text = " ".join(str(e.get("description", "")) for e in described.embeds)
    for subject in ("a lighthouse", "a fox", "a city at dusk", "an old map"):
        assert subject in text, text

    before = {m.id for m in world.channel_messages()}
    click = await world.discord.click(described.id, button_ids(described)["2"], user="artist")
    await answered(world, click)
    await world.discord.wait_for(lambda: world.piapi.created("imagine"), timeout=10)
    [imagine] = world.piapi.created("imagine")
    assert imagine.json["input"]["prompt"].startswith("a fox in soft light")
    # The pick gets its own public message, credited to whoever clicked.
    artist = world.discord.users["artist"].id
    posted = await world.discord.wait_for(
        new_message(world, before, lambda m: f"<@{artist}>" in m.content), timeout=10
    )
    assert "a fox in soft light" in posted.content

    reroll = await world.discord.click(described.id, button_ids(described)["🔄"])
    await answered(world, reroll)
    await world.discord.wait_for(lambda: len(world.piapi.created("describe")) == 2, timeout=10)
    again = world.piapi.created("describe")[1]
    assert again.json["input"]["image_url"] == create.json["input"]["image_url"]


async def test_bad_input_gets_private_answers_and_costs_nothing(world: World) -> None:
    await world.start_bot()
    not_png = Upload("notes.png", b"these are my notes, not a picture\n" * 20, "image/png")
    huge = Upload("huge.png", b"\x89PNG\r\n\x1a\n" + bytes(50 * MIB), "image/png")

    text = await world.discord.slash("describe", attachments={"image": not_png})
    await private_text(world, text, r"not an image")

    big = await world.discord.slash("describe", attachments={"image": huge})
    assert "50 MB" in await private_text(world, big, r"limit is 10 MB")
    [huge_record] = [a for a in world.discord.attachments.values() if a.filename == "huge.png"]
    assert not any(f"/{huge_record.id}/" in path for path, _ in world.discord.downloads)

    neither = await world.discord.slash("describe", {})
    await private_text(world, neither, r"attach an image")
    private_link = await world.discord.slash("describe", {"url": "ftp://example.com/a.png"})
    await private_text(world, private_link, r"http")
    blend_text = await world.discord.slash(
        "blend", attachments={"image1": png("b1"), "image2": not_png}
    )
    await private_text(world, blend_text, r"image2: .*not an image")

    unknown = await world.discord.slash("job show", {"id": "nosuchjob123"})
    await private_text(world, unknown, r"no job")
    history = await world.discord.slash("job history")
    await private_text(world, history, r"no jobs")
    helped = await world.discord.slash("help")
    help_text = await private_text(world, helped, r"/imagine")
    for command in ("/describe", "/blend", "/job"):
        assert command in help_text

    await world.advance_piapi(1, settle=0.3)
    assert world.piapi.created() == []


async def test_blend_sends_every_image_and_the_dimension(world: World) -> None:
    await world.start_bot()
    interaction = await world.discord.slash(
        "blend",
        {"dimension": "portrait"},
        attachments={"image1": png("left"), "image2": png("right")},
    )
    await answered(world, interaction)
    await world.discord.wait_for(lambda: world.piapi.created("blend"), timeout=10)
    [create] = world.piapi.created("blend")
    urls = create.json["input"]["image_urls"]
    assert len(urls) == 2 and all("/attachments/" in u for u in urls)
    assert create.json["input"]["dimension"] == "portrait"
    await advance_until(
        world,
        lambda: any(is_final_grid(m) for m in world.channel_messages()),
        what="the blended grid",
    )


async def test_job_show_history_and_cancel(world: World) -> None:
    bot = await world.start_bot()
    grid = await imagine_to_grid(world, "a castle on a hill")
    parsed = parse_custom_id(button_ids(grid)["U1"])
    assert parsed is not None
    job_id = parsed[1]
    world.kill(bot)
    await world.start_bot()

    show = await world.discord.slash("job show", {"id": job_id})
    await answered(world, show)
    assert not is_ephemeral(show)
    shown = await world.wait_message(
        lambda m: m.id == show.original_message_id and is_final_grid(m),
        what="the job posted again with its buttons",
    )
    assert shown.id != grid.id and "a castle on a hill" in shown.content
    assert buttons_of(shown) == GRID_ROWS
    click = await world.discord.click(shown.id, button_ids(shown)["U1"])
    await answered(world, click)
    await world.discord.wait_for(lambda: world.piapi.created("upscale"), timeout=10)
    [upscale] = world.piapi.created("upscale")
    [imagine] = world.piapi.created("imagine")
    assert upscale.json["input"] == {"origin_task_id": imagine.task_id, "index": "1"}

    # A new job stays pending at the provider until its clock moves: cancellable.
    pending = await world.discord.slash("imagine", {"prompt": "a slow one"})
    await answered(world, pending)
    await world.discord.wait_for(lambda: len(world.piapi.created("imagine")) == 2, timeout=10)
    history = await world.discord.slash("job history")
    listing = await private_text(world, history, job_id)
    assert "a castle on a hill" in listing and "a slow one" in listing
    pending_id = re.search(r"`([0-9a-z]{12})` ⏳[^\n]*a slow one", listing)
    assert pending_id is not None, listing

    refused = await world.discord.slash("job cancel", {"id": pending_id[1]}, user="other")
    await private_text(world, refused, r"only the member who started")
    done = await world.discord.slash("job cancel", {"id": job_id})
    await private_text(world, done, r"already ended")
    assert not any(r.method == "DELETE" for r in world.piapi.requests)

    # A moderator may cancel someone else's job; that admin action goes on record.
    cancel = await world.discord.slash("job cancel", {"id": pending_id[1]}, user="admin")
    await private_text(world, cancel, r"is cancelled")
    assert any(r.method == "DELETE" for r in world.piapi.requests)
    audit = await world.discord.slash("settings audit", user="admin")
    await private_text(world, audit, rf"job cancel\*?\*?: cancelled job {pending_id[1]}")
    await world.wait_message(
        lambda m: m.id == pending.original_message_id and "Cancelled" in m.content,
        what="the job's own message to say it was cancelled",
    )
