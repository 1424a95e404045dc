"""/shorten end to end (issue 19 item 4): the real bot against the fake Discord and the
fake midjourney-proxy (POST /mj/submit/shorten) and Legnext (POST /v1/shorten). The answer
lists the shortened prompts under buttons 1–5; a click on 2 imagines prompt 2. /describe
gains 🎉 Imagine all beside 1–4."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import button_ids, buttons_of, open_world
from tests.e2e.test_backends import run
from tests.e2e.test_community import private_text, slash
from tests.fakes.images import single_png

LONG = "a very old stone lighthouse standing on a rock in a storm at night"


def shortened(prompt: str) -> list[str]:
    """What the fakes answer: the prompt with one more word dropped each time."""
    words = prompt.split()
    return [" ".join(words[: len(words) - k]) for k in range(1, 6)]


@pytest.mark.parametrize("backend", ["mjproxy", "legnext"])
async def test_shorten_then_click_2_imagines_prompt_2(backend: str, tmp_path: Path) -> None:
    async with open_world(tmp_path, backend) as world:
        await world.start_bot()
        empty = await slash(world, "shorten", {"prompt": "   "})
        assert "empty" in private_text(empty)
        interaction = await slash(world, "shorten", {"prompt": LONG})
        assert interaction.response_type == 5
        await run(world)
        answer = await world.wait_message(
            lambda m: m.id == interaction.original_message_id and "2" in button_ids(m),
            what="the shorten answer",
        )
        if backend == "mjproxy":
            [record] = world.fake.created("SHORTEN")
            assert record.path.endswith("/mj/submit/shorten")
            assert record.body["prompt"] == LONG
        else:
            [record] = world.fake.created("shorten")
            assert record.body == {"prompt": LONG}
        assert buttons_of(answer) == [["1", "2", "3", "4", "5"]]
        description = answer.embeds[0]["description"]
        for prompt in shortened(LONG):
            assert prompt in description

        before = len(world.fake.created())
        click = await world.discord.click(answer.id, button_ids(answer)["2"])
        await world.discord.wait_for(lambda: click.responded, timeout=5, what="2")
        await run(world, rounds=2)
        await world.discord.wait_for(
            lambda: len(world.fake.created()) == before + 1, timeout=10, what="the imagine"
        )
        last = world.fake.created()[-1]
        text = last.body.get("prompt") or last.body.get("text")
        assert str(text).startswith(shortened(LONG)[1]), last.body


async def test_describe_imagine_all_starts_one_imagine_per_prompt(tmp_path: Path) -> None:
    async with open_world(tmp_path, "legnext") as world:
        await world.start_bot()
        # Four jobs at once for one member: the server allows them (three by default).
        await slash(world, "settings limits", {"at_once": 4}, user="admin")
        record = await world.discord.slash(
            "describe", {}, attachments={"image": ("p.png", single_png("p", (64, 64)))}
        )
        await world.discord.wait_for(lambda: record.responded, timeout=10, what="/describe")
        await run(world)
        answer = await world.wait_message(
            lambda m: "Imagine all" in button_ids(m), what="the describe answer"
        )
        assert [b for row in buttons_of(answer) for b in row][:6] == [
            *("1", "2", "3", "4"),
            *("🔄", "Imagine all"),
        ]
        click = await world.discord.click(answer.id, button_ids(answer)["Imagine all"])
        await world.discord.wait_for(lambda: click.responded, timeout=5, what="Imagine all")
        await run(world)  # the engine may hold the fourth until one of the member's ends
        await world.discord.wait_for(
            lambda: len(world.fake.created("diffusion")) == 4, timeout=15, what="four imagines"
        )
        texts = [r.body["text"] for r in world.fake.created("diffusion")]
        for subject in ("a lighthouse", "a fox", "a city at dusk", "an old map"):
            assert any(t.startswith(subject) for t in texts), texts
