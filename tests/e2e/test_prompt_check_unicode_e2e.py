"""Disguised banned words are refused by the real bot before anything is spent (issue 13,
item 4): ignorable code points and look-alike letters inside a default-list word, typed
into /imagine against the fake Discord and the fake PiAPI."""

from __future__ import annotations

from tests.e2e.conftest import World
from tests.e2e.test_commands import private_text

DISGUISED = [
    "a g\u034fore scene",  # combining grapheme joiner
    "a n\ufe0fude statue",  # variation selector 16
    "a bl\U000e0100ood moon",  # variation selector 17
    "a g\u2800ore scene",  # braille blank
    "a n\u17b4aked tree",  # Khmer inherent vowel
    "a c\u180borpse",  # Mongolian free variation selector
    "a g\u03bfre scene",  # Greek small omicron
    "a \u03bdisceral painting",  # Greek small nu
    "a \u0261ory scene",  # Latin small script g
    "n\u0131pples",  # dotless i
]


async def test_disguised_banned_words_are_refused_privately_and_cost_nothing(
    world: World,
) -> None:
    await world.start_bot()
    for text in DISGUISED:
        record = await world.discord.slash("imagine", {"prompt": text})
        answer = await private_text(world, record, r"does not allow")
        assert "\u034f" not in answer and "\u2800" not in answer, ascii(answer)
    # An ordinary word that holds a banned one still goes through.
    ok = await world.discord.slash("imagine", {"prompt": "a gorge at dusk, cumulus clouds"})
    await world.discord.wait_for(lambda: ok.responded, timeout=10, what="the ack")
    assert ok.response_type == 5, ok.response_data
    await world.discord.wait_for(lambda: world.piapi.created("imagine"), timeout=10)
    creates = world.piapi.created("imagine")
    assert len(creates) == 1, creates  # only the ordinary prompt reached the provider
