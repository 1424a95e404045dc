"""/describe's own buttons (cogs/describe.py's DynamicItems, registered by the cog), end
to end: 🎉 Imagine all starts one /imagine per suggested prompt and turns its button blue
on the message itself, each judged like a single pick: the first refusal stops it."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import World, button_ids, buttons_of
from tests.e2e.test_commands import DESCRIBE_ROWS, advance_until, answered, png
from tests.fakes.discord.models import InteractionRecord, MessageRecord

PROMPTS = ("a lighthouse", "a fox", "a city at dusk", "an old map")  # the fake's four


def style_in_answer(click: InteractionRecord, custom_id: str) -> int | None:
    """The style the clicked button has in the bot's UPDATE_MESSAGE answer."""
    rows: list[dict[str, Any]] = (click.response_data or {}).get("components", [])
    for row in rows:
        for button in row.get("components", []):
            if button.get("custom_id") == custom_id:
                return int(button["style"])
    return None


async def described(world: World) -> MessageRecord:
    interaction = await world.discord.slash("describe", attachments={"image": png("all-of-it")})
    await answered(world, interaction)
    await world.discord.wait_for(lambda: world.piapi.created("describe"), timeout=10)

    def finished() -> MessageRecord | None:
        return next((m for m in world.channel_messages() if buttons_of(m) == DESCRIBE_ROWS), None)

    await advance_until(world, lambda: finished() is not None, what="the describe result")
    message = finished()
    assert message is not None
    return message


async def test_imagine_all_starts_an_imagine_per_prompt_until_a_rule_stops_it(
    world: World,
) -> None:
    bot = await world.start_bot()
    message = await described(world)
    custom_id = button_ids(message)["Imagine all"]

    click = await world.discord.click(message.id, custom_id, user="artist")
    await answered(world, click)
    # The server's default allows a member 3 jobs at once: three start, the fourth is
    # judged like a single pick and refused privately, and nothing after it starts.
    await world.discord.wait_for(lambda: click.followup_ids, timeout=10, what="the refusal")
    [refusal] = [world.discord.messages[i] for i in click.followup_ids]
    assert refusal.ephemeral and "3 at once" in refusal.content, refusal.content
    prompts = [c.json["input"]["prompt"] for c in world.piapi.created("imagine")]
    assert len(prompts) == 3, prompts
    for subject in PROMPTS[:3]:
        assert any(p.startswith(subject) for p in prompts), prompts
    # Acknowledged by recolouring the clicked button (blue), the others kept as they were.
    assert click.response_type == 7, click.response_type
    assert style_in_answer(click, custom_id) == 1, click.response_data
    assert style_in_answer(click, button_ids(message)["🔄"]) == 2, click.response_data
    assert "Traceback" not in bot.log(), bot.log()[-3000:]
