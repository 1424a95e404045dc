"""Reference images from attachments, end to end (issue 19 item 2).

The real bot against the fake Discord and each backend's fake: /imagine with an image
prompt, an omni-reference with its weight and a style reference as attachments. The bot
keeps the images in a message of its own and sends that message's URLs; a day later
(the fake Discord's clock past every URL's `ex`) a reroll that resends the prompt sends
URLs re-signed by fetching that message again, and the provider can fetch them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import World, button_ids, open_world
from tests.e2e.test_backends import run
from tests.fakes.discord.models import MessageRecord
from tests.fakes.images import single_png

DAY_S = 24 * 3600
URL = r"https?://\S+"


def created_prompts(world: World, backend: str) -> list[str]:
    """The prompt text of every create the backend's fake received, in order."""
    out = []
    for record in world.fake.created():
        body = getattr(record, "body", None) if backend != "piapi" else record.json
        if backend == "piapi":
            out.append(str(body["input"].get("prompt") or ""))
        elif backend == "legnext":
            out.append(str(body.get("text") or body.get("remixPrompt") or ""))
        elif backend == "vtrix":
            params = body["input"][0]["params"] if "input" in body else body
            out.append(str(params.get("text") or ""))
        else:
            out.append(str(body.get("prompt") or ""))
    return out


async def fetch_status(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status


def reference_message(world: World) -> MessageRecord:
    [message] = [m for m in world.channel_messages() if "Reference images" in (m.content or "")]
    return message


async def imagine_with_references(world: World) -> Any:
    interaction = await world.discord.slash(
        "imagine",
        {"prompt": "a knight in a misty forest", "omni_weight": 400, "image_weight": 1.5},
        attachments={
            "image_prompt": ("start.png", single_png("start", (96, 64))),
            "omni_reference": ("knight.png", single_png("knight", (64, 64))),
            "style_reference": ("style.png", single_png("style", (64, 96))),
        },
    )
    await world.discord.wait_for(lambda: interaction.responded, timeout=5, what="the ack")
    assert interaction.response_type == 5, interaction.response_data
    return interaction


def check_sent_prompt(prompt: str, kept: MessageRecord) -> list[str]:
    """The prompt carries the bot's own copies: image prompt first, --oref with --ow 400,
    --sref, --iw 1.5; returns the three URLs in that order."""
    urls = re.findall(URL, prompt)
    assert len(urls) == 3, prompt
    assert prompt.startswith(urls[0] + " a knight in a misty forest"), prompt
    assert f"--oref {urls[1]} --ow 400" in prompt and f"--sref {urls[2]}" in prompt
    assert "--iw 1.5" in prompt
    names = [a.filename for a in kept.attachments]
    assert names == [f"mjref-{kept.id}-{n}.png" for n in range(3)], names
    for url, name in zip(urls, names, strict=True):
        assert f"/attachments/{kept.channel_id}/" in url and name in url
    return urls


@pytest.mark.parametrize("backend", ["piapi", "legnext", "vtrix", "mjproxy"])
async def test_imagine_with_references_sends_the_bots_own_copies(
    backend: str, tmp_path: Path
) -> None:
    async with open_world(tmp_path, backend) as world:
        await world.start_bot()
        interaction = await imagine_with_references(world)
        await run(world)
        message_id = interaction.original_message_id
        await world.wait_message(
            lambda m: m.id == message_id and bool(m.attachments) and len(m.components) > 1,
            what=f"the {backend} grid",
        )
        [prompt] = created_prompts(world, backend)
        kept = reference_message(world)
        urls = check_sent_prompt(prompt, kept)
        for url in urls:  # the provider can fetch each one
            assert await fetch_status(url) == 200
        # The member's own uploads are not what was sent (their URLs die with the day).
        assert not any("start.png" in u or "knight.png" in u for u in urls)
        assert "lg-e2e-secret-key" not in (kept.content or "")


async def test_reroll_after_the_urls_expired_sends_fresh_working_urls(tmp_path: Path) -> None:
    # PiAPI's schema resends the prompt with a reroll (PROVIDERS.md §1.2): the case where
    # a stale link would reach the provider.
    async with open_world(tmp_path, "piapi") as world:
        await world.start_bot()
        interaction = await imagine_with_references(world)
        await run(world)
        grid = await world.wait_message(
            lambda m: (
                m.id == interaction.original_message_id
                and bool(m.attachments)
                and "🔄" in button_ids(m)
            ),
            what="the grid",
        )
        [first] = created_prompts(world, "piapi")
        old_urls = check_sent_prompt(first, reference_message(world))

        world.discord.advance(DAY_S + 3600)  # every URL signed so far is past its `ex`
        for url in old_urls:
            assert await fetch_status(url) == 404

        click = await world.discord.click(grid.id, button_ids(grid)["🔄"])
        await world.discord.wait_for(lambda: click.responded, timeout=5, what="🔄")
        await run(world, rounds=3)
        await world.discord.wait_for(
            lambda: len(world.fake.created("reroll")) == 1, timeout=10, what="the reroll"
        )
        reroll = world.fake.created("reroll")[0].json["input"]["prompt"]
        new_urls = check_sent_prompt(reroll, reference_message(world))
        assert set(new_urls).isdisjoint(old_urls)  # re-signed, same files
        for old, new in zip(old_urls, new_urls, strict=True):
            assert old.split("?")[0] == new.split("?")[0]
            assert await fetch_status(new) == 200
        # The job keeps the prompt as first sent; only the copy sent was refreshed.
        assert world.fake.created("imagine")[0].json["input"]["prompt"] == first

        # /job show a day later: the prompt it shows carries working links too.
        job_id = button_ids(grid)["U1"].rsplit(":", 1)[-1]
        shown = await world.discord.slash("job show", {"id": job_id})
        await world.discord.wait_for(lambda: shown.responded, timeout=10, what="/job show")
        message = await world.wait_message(
            lambda m: m.id == shown.original_message_id and "/attachments/" in (m.content or ""),
            what="the job shown again",
        )
        shown_urls = re.findall(r"https?://[^\s*)>]+", message.content)
        assert len(shown_urls) == 3 and set(shown_urls).isdisjoint(old_urls), message.content
        for url in shown_urls:
            assert await fetch_status(url) == 200


async def test_a_reference_that_is_not_an_image_is_refused_privately(tmp_path: Path) -> None:
    async with open_world(tmp_path, "legnext") as world:
        await world.start_bot()
        # Named and typed as a PNG, so only its bytes tell: checked after the public ack.
        interaction = await world.discord.slash(
            "imagine",
            {"prompt": "a knight"},
            attachments={"style_reference": ("style.png", b"these bytes are no image")},
        )
        await world.discord.wait_for(lambda: interaction.responded, timeout=5, what="the ack")
        private = await world.wait_message(
            lambda m: m.ephemeral and "style reference" in (m.content or "").lower(),
            what="the private answer",
        )
        assert private.content.startswith("❌ ")
        # Nothing public is left behind, nothing was posted or sent.
        assert interaction.response_type == 5  # acknowledged publicly first
        original = interaction.original_message_id
        assert original is not None
        await world.discord.wait_for(
            lambda: world.discord.messages[original].deleted, timeout=5, what="reply removed"
        )
        assert not any("Reference images" in (m.content or "") for m in world.channel_messages())
        assert world.fake.created() == []
