"""Invalid options through the fake Discord: an ephemeral answer with a reason, and not a
single request to the provider (DESIGN.md invariant 6). Complements
tests/e2e/test_imagine.py::test_bad_options_get_an_ephemeral_answer_and_no_provider_call,
which counts created tasks; this counts every request the provider received."""

from __future__ import annotations

from tests.e2e.conftest import World

BAD_OPTIONS = [
    {"prompt": "   "},
    {"prompt": "\u200b\u200b"},
    {"prompt": "x" * 1001},
    {"prompt": "a cat", "aspect_ratio": "wide"},
    {"prompt": "a cat", "aspect_ratio": "1:0"},
    {"prompt": "a cat", "aspect_ratio": "99:1"},
    {"prompt": "a cat", "aspect_ratio": "-3:2"},
    {"prompt": "a cat --ar 16x9"},
    {"prompt": "a cat --chaos 500"},
    {"prompt": "a cat --nosuchflag"},
    {"prompt": "--ar 1:1"},
    {"prompt": "a gory scene with blood"},
]


async def test_invalid_options_answer_privately_and_reach_no_provider(world: World) -> None:
    await world.start_bot(MJ_MAX_PROMPT_LENGTH="1000")
    after_start = len(world.piapi.requests)  # the start-up account check
    for options in BAD_OPTIONS:
        interaction = await world.discord.slash("imagine", options)
        await world.discord.wait_for(lambda i=interaction: i.responded, timeout=10)
        data = interaction.response_data or {}
        assert interaction.response_type == 4, (options, interaction.response_type)
        assert data.get("flags", 0) & 64, options  # ephemeral
        assert len(data.get("content", "").strip()) > 10, (options, data)
    await world.advance_piapi(1, settle=0.5)
    assert world.piapi.requests[after_start:] == []
    assert not [m for m in world.channel_messages() if m.content]  # nothing public posted
