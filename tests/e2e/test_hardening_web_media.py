"""A provider on the owner's own network serves its images (issue 13, item 14): the real
bot, with MEDIA_ALLOW_PRIVATE_HOSTS off, fetches result images from the configured
provider's own origin (the fake, on 127.0.0.1 at its base URL) and from nowhere else
private (tests/integration/test_media_download.py shows the refusals hop by hop)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import buttons_of, open_world
from tests.e2e.test_commands import advance_until
from tests.e2e.test_imagine import GRID_ROWS


@pytest.mark.parametrize("backend", ["mjproxy", "piapi"])
async def test_result_images_come_from_the_providers_own_private_host(
    tmp_path: Path, backend: str
) -> None:
    async with open_world(tmp_path, backend) as world:
        await world.start_bot(MEDIA_ALLOW_PRIVATE_HOSTS="false")
        interaction = await world.discord.slash("imagine", {"prompt": "a harbour at noon"})
        await world.discord.wait_for(lambda: interaction.responded, timeout=5)

        def grid() -> bool:
            message = world.discord.messages.get(interaction.original_message_id or 0)
            return message is not None and buttons_of(message) == GRID_ROWS

        await advance_until(world, grid, what="the final grid")
        message = world.discord.messages[interaction.original_message_id or 0]
        await world.discord.wait_for(lambda: bool(message.attachments), timeout=10)
        [attachment] = message.attachments
        assert attachment.size > 0 and attachment.filename.endswith((".png", ".jpg", ".webp"))
        log = world.bots[-1].log()
        assert "not fetched" not in log and "private or local" not in log, log[-2000:]
