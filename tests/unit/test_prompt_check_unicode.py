"""The prompt check against Unicode disguises (issue 13, item 4): characters Unicode says
are ignorable (Default_Ignorable_Code_Point, not only category Cf), blank-looking symbols,
and look-alike letters folded to their UTS #39 skeleton. Word boundaries stay as they
were: words that merely contain a banned one still pass.

Hypothesis runs derandomized (tests/conftest.py), so every run sees the same examples.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.prompt_check import (
    BannedWords,
    _prototypes,
    check_prompt,
    load_default_banned_words,
)

DEFAULTS = BannedWords.build()
DEFAULT_WORDS = sorted(load_default_banned_words())

# A sample of Default_Ignorable_Code_Point (DerivedCoreProperties.txt) outside category Cf,
# the format characters the old check already knew, and blank-looking symbols.
IGNORABLE_NOT_CF = [
    "\u034f",  # COMBINING GRAPHEME JOINER
    "\u115f",  # HANGUL CHOSEONG FILLER
    "\u1160",  # HANGUL JUNGSEONG FILLER
    "\u17b4",  # KHMER VOWEL INHERENT AQ
    "\u17b5",  # KHMER VOWEL INHERENT AA
    "\u180b",  # MONGOLIAN FREE VARIATION SELECTOR ONE
    "\u180c",
    "\u180d",
    "\u180f",  # MONGOLIAN FREE VARIATION SELECTOR FOUR (Unicode 14)
    "\u3164",  # HANGUL FILLER
    "\ufe00",  # VARIATION SELECTOR-1
    "\ufe0f",  # VARIATION SELECTOR-16
    "\uffa0",  # HALFWIDTH HANGUL FILLER
    "\U0001d173",  # MUSICAL SYMBOL BEGIN BEAM (Cf, but a reminder of the range)
    "\U000e0100",  # VARIATION SELECTOR-17
    "\U000e01ef",  # VARIATION SELECTOR-256
    "\U000e0fff",  # reserved, default ignorable
]
FORMAT = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u2061", "\U000e0041"]
BLANK_LOOKING = ["\u2800"]  # BRAILLE PATTERN BLANK: not DI, but draws as nothing
IGNORABLE = IGNORABLE_NOT_CF + FORMAT + BLANK_LOOKING


def _confusables_by_letter() -> dict[str, list[str]]:
    """Every non-ASCII character whose UTS #39 prototype is one ASCII letter or digit,
    grouped by that prototype in lowercase: "o" → [Greek ο, Cyrillic о, Armenian օ, …]."""
    by_letter: dict[str, list[str]] = defaultdict(list)
    for source, target in _prototypes().items():
        if len(target) == 1 and target.isascii() and target.isalnum():
            by_letter[target.lower()].append(source)
    return {letter: sorted(chars) for letter, chars in by_letter.items()}


CONFUSABLES = _confusables_by_letter()


def refused(prompt: str) -> str | None:
    problem = check_prompt(prompt, banned=DEFAULTS, max_length=6000)
    return problem.code if problem is not None else None


# --- the examples from the issue ------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "go\u034fre",  # combining grapheme joiner
        "gor\ufe0fe",  # variation selector 16
        "g\U000e0100ore",  # variation selector 17
        "go\u2800re",  # braille blank
        "nu\u17b4de",  # Khmer inherent vowel
        "na\u180bked",  # Mongolian free variation selector
        "g\u03bfre",  # Greek small omicron
        "\u03bdisceral",  # Greek small nu, for v
        "\u0261ore",  # Latin small script g
        "nud\u0131ty",  # dotless i
        "\u039dUDE",  # Greek capital nu, for N
        "bl\u03bf\u03bfd",
        "c\u043erpse",  # Cyrillic o, as before
        "h\u0435r\u043e\u0456n",
    ],
)
def test_disguises_from_the_issue_are_refused(written: str) -> None:
    prompt = f"a {written} scene"
    assert DEFAULTS.find(prompt) is not None, ascii(written)
    assert refused(prompt) == "banned_word"


def test_the_fragment_shown_is_the_members_own_text_without_the_invisible_parts() -> None:
    problem = check_prompt("a g\u034fo\u2800re scene", banned=DEFAULTS, max_length=6000)
    assert problem is not None
    assert '"gore"' in problem.message, problem.message
    problem = check_prompt("a g\u03bfre scene", banned=DEFAULTS, max_length=6000)
    assert problem is not None and '"g\u03bfre"' in problem.message  # the look-alike as typed


def test_ignorable_only_prompt_is_empty() -> None:
    assert refused("\u034f\ufe0f\U000e0100\u2800\u17b4") == "empty"


def test_the_confusables_table_covers_what_the_issue_names() -> None:
    table = _prototypes()
    assert table["\u03bf"] == "o" and table["\u03bd"] == "v"
    assert table["\u0261"] == "g" and table["\u0131"] == "i"
    # Only non-ASCII sources: plain ASCII is never folded ("l00k" is the digit rules' job).
    assert all(not c.isascii() for c in table)
    assert len(CONFUSABLES) >= 30 and all(CONFUSABLES[c] for c in "abcdegilmnoprstuvxy")


# --- by property: every default word, disguised ---------------------------------------


@st.composite
def disguised_text(draw: st.DrawFn, word: str) -> str:
    """`word` with some letters swapped for look-alikes and ignorables slipped between."""
    out: list[str] = []
    for char in word:
        options = CONFUSABLES.get(char)
        if options and draw(st.booleans()):
            char = draw(st.sampled_from(options))
        out.append(char)
        if draw(st.integers(0, 2)) == 0:
            out.append(draw(st.sampled_from(IGNORABLE)))
    return "".join(out)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.large_base_example,
        HealthCheck.data_too_large,
    ],
)
@given(st.data())
def test_every_default_word_disguised_is_still_refused(data: st.DataObject) -> None:
    misses = []
    for word in DEFAULT_WORDS:
        written = data.draw(disguised_text(word), label=word)
        prompt = f"a {written} scene"
        if refused(prompt) != "banned_word":
            misses.append(ascii(written))
    assert misses == []


@pytest.mark.parametrize("word", DEFAULT_WORDS)
def test_every_default_word_with_every_ignorable_and_its_first_confusables(word: str) -> None:
    # Exhaustive over the ignorable sample (the property above samples it).
    for mark in IGNORABLE:
        written = word[:1] + mark + word[1:] if len(word) > 1 else word + mark
        assert refused(f"an image of {written}") == "banned_word", ascii(written)
    for i, char in enumerate(word):
        for look_alike in CONFUSABLES.get(char, [])[:8]:
            written = word[:i] + look_alike + word[i + 1 :]
            assert DEFAULTS.find(f"an image of {written}") is not None, ascii(written)


# --- ordinary words that contain banned ones ------------------------------------------

ORDINARY = [
    *("gorge", "gorgeous", "category", "allegory", "gregory", "georgette"),
    *("class", "classroom", "bass", "bassoon", "brass", "grass", "mass", "massive", "assume"),
    *("assets", "assistant", "passenger", "passion", "compass", "embassy", "lasso", "sassafras"),
    *("cucumber", "document", "accumulate", "cumulus", "cumin", "circumstance", "incumbent"),
    *("cumbersome", "scum", "method", "methane", "methyl", "methodology", "something"),
    *("prometheus", "sextet", "sextant", "sexton", "sussex", "essex", "middlesex"),
    *("sexagenarian", "heroine", "heroines", "heroism", "arsenal", "arsenic", "parsec"),
    *("sparse", "coarse", "hoarse", "labial", "petite", "titan", "bloodhound", "corpsman"),
    *("nudibranch", "nudge", "therapist", "scunthorpe", "analysis", "cocktail", "grape"),
    *("shitake", "assassin", "harass", "nakedness", "classic", "brassiere", "crackle"),
    *("tortoise", "dominate", "cassette", "assess", "cadence", "carnation", "orgeat"),
    *("sexism", "hornet", "amass", "metho", "gored"),
    *("café", "naïve", "façade", "über", "jalapeño", "crème brûlée", "smörgåsbord"),
]


def test_ordinary_words_are_not_refused() -> None:
    wrongly = [w for w in ORDINARY if refused(f"a {w} at dusk") is not None]
    assert wrongly == []


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(ORDINARY), min_size=1, max_size=12), st.data())
def test_ordinary_words_disguised_the_same_way_still_pass(
    words: list[str], data: st.DataObject
) -> None:
    # Folding maps a disguised ordinary word back to itself, which passes: the new rules
    # change what a character reads as, never where a word starts or ends.
    written = [data.draw(disguised_text(w)) for w in words]
    assert refused(" ".join(written)) is None, ascii(written)


def test_folding_keeps_word_boundaries() -> None:
    # An ignorable between two words does not glue them into a banned one, and a banned
    # word glued to letters by an ignorable is still inside a longer word.
    assert DEFAULTS.find("as\u034fs") is not None  # "ass" with a joiner: the same word
    assert DEFAULTS.find("cl\u034fass") is None  # "class": still one longer word
    assert DEFAULTS.find("g\u03bfrge") is None  # "gorge" with a Greek o


def test_every_table_entry_folds_to_its_prototype() -> None:
    # The table's own promise, checked against the folding the matcher uses.
    from bot.prompt_check import _fold_char

    wrong = []
    for source, target in _prototypes().items():
        decomposed = unicodedata.normalize("NFKD", target)
        expected = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
        if len(target) == 1 and target.isalpha() and _fold_char(source) != expected:
            wrong.append((hex(ord(source)), _fold_char(source), expected))
    assert wrong == []
