"""bot/speed.py: one speed per job from the option, the prompt's and the suffix's flags,
the parent's speed, the member's preference and the server's default (issue 13, item 2)."""

from __future__ import annotations

import pytest

from bot.domain import SpeedMode
from bot.speed import SpeedConflictError, decide_speed, split_speed_flags

FAST, RELAX, TURBO = SpeedMode.FAST, SpeedMode.RELAX, SpeedMode.TURBO


def test_flags_are_whole_words_in_any_dash_and_case() -> None:
    assert split_speed_flags("a cat --TURBO —fast –relax") == ([TURBO, FAST, RELAX], "a cat")
    assert split_speed_flags("a cat--fast --fastest") == ([], "a cat--fast --fastest")
    assert split_speed_flags(None) == ([], None)


@pytest.mark.parametrize(
    ("option", "pref", "default", "prompt", "suffix", "inherited", "expected"),
    [
        (None, None, "relax", "a cat", None, None, (RELAX, "a cat")),
        (None, "fast", "relax", "a cat", None, None, (FAST, "a cat")),
        (None, "fast", "relax", "a cat --turbo", None, None, (TURBO, "a cat")),
        (TURBO, "relax", "relax", "a cat --turbo --s 9", None, None, (TURBO, "a cat --s 9")),
        (None, "relax", "relax", "a cat", "--fast --s 5", None, (FAST, "a cat --s 5")),
        (None, None, "relax", "a cat --relax", "--fast", None, (RELAX, "a cat")),
        (None, None, "relax", "a cat", None, TURBO, (TURBO, "a cat")),
        (None, None, None, None, None, None, (FAST, None)),
        (None, "bogus", "relax", "x", None, None, (RELAX, "x")),
    ],
)
def test_precedence(
    option: SpeedMode | None,
    pref: str | None,
    default: str | None,
    prompt: str | None,
    suffix: str | None,
    inherited: SpeedMode | None,
    expected: tuple[SpeedMode, str | None],
) -> None:
    decision = decide_speed(option, pref, default, prompt, suffix=suffix, inherited=inherited)
    assert (decision.mode, decision.prompt) == expected


def test_a_follow_up_keeps_one_agreeing_flag_only_when_the_text_had_one() -> None:
    kept = decide_speed(None, None, "relax", "a dog --turbo", inherited=FAST, keep_flag=True)
    assert (kept.mode, kept.prompt) == (TURBO, "a dog --turbo")
    plain = decide_speed(None, None, "relax", "a dog", inherited=FAST, keep_flag=True)
    assert (plain.mode, plain.prompt) == (FAST, "a dog")


@pytest.mark.parametrize(
    ("option", "prompt", "suffix"),
    [
        (FAST, "a cat --relax", None),
        (None, "a cat --fast --turbo", None),
        (None, "x", "--fast --relax"),
    ],
)
def test_two_speeds_are_refused_with_a_sentence(
    option: SpeedMode | None, prompt: str, suffix: str | None
) -> None:
    with pytest.raises(SpeedConflictError, match="choose one speed"):
        decide_speed(option, None, "relax", prompt, suffix=suffix)


def test_the_same_flag_twice_is_one_speed() -> None:
    assert decide_speed(FAST, None, None, "a --fast --fast").prompt == "a"
