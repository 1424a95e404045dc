"""The local prompt check: banned words (and their disguises), Midjourney parameters,
image links, and the combined check — all before anything reaches a provider."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.prompt_check import (
    PROBLEM_CODES,
    BannedWords,
    PromptProblem,
    check_image_link,
    check_midjourney_parameters,
    check_prompt,
    load_default_banned_words,
)

DEFAULTS = BannedWords.build()
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]


def problem_code(prompt: str, **kw: object) -> str | None:
    problem = check_prompt(prompt, banned=DEFAULTS, max_length=6000, **kw)  # type: ignore[arg-type]
    return problem.code if problem is not None else None


# --- the default list ---------------------------------------------------------------------


def test_default_list_ships_with_the_package_and_is_moderate() -> None:
    words = load_default_banned_words()
    assert 60 <= len(words) <= 120
    assert all(w == w.lower().strip() and w for w in words)
    for expected in ("blood", "gore", "nude", "naked", "cocaine", "heroin", "blood bath"):
        assert expected in words
    assert not any(w.startswith("#") for w in words)  # comments are not entries
    assert len(DEFAULTS) == len(words)


# --- matching -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a gory scene with blood", "gory"),
        ("BLOOD moon", "BLOOD"),
        ("b l o o d on snow", "b l o o d"),
        ("b.l.o.o.d on snow", "b.l.o.o.d"),
        ("n-u-d-e statue", "n-u-d-e"),
        ("n_u_d_e statue", "n_u_d_e"),
        ("n. u. d. e", "n. u. d. e"),
        ("a nuuude statue", "nuuude"),
        ("a nüde statue", "nüde"),
        ("a ｎｕｄｅ statue", "ｎｕｄｅ"),  # fullwidth letters
        ("a nudе statue", "nudе"),  # Cyrillic е
        ("b\u200blood moon rising", "blood"),  # shown without the invisible character
        ("co\u00adcaine", "cocaine"),
        ("nud3 figure", "nud3"),
        ("h3r0in", "h3r0in"),
        ("c0ca1ne", "c0ca1ne"),
        ("an @ss", "@ss"),
        ("a$$ hat", "a$$"),
        ("5exy", "5exy"),
        ("a blood bath", "blood bath"),  # the phrase; "blood" alone would also do
        ("gore, everywhere", "gore"),
        ("(nude)", "nude"),
        ("self-harm", "self-harm"),
        ("self  harm", "self  harm"),
        ("rule34 fanart", "rule34"),
        ("rule 34 fanart", "rule 34"),
        ("||nude||", "nude"),
    ],
)
def test_finds_banned_words_as_written(text: str, fragment: str) -> None:
    assert DEFAULTS.find(text) == fragment


@pytest.mark.parametrize(
    "text",
    [
        "a classic class act",  # "ass" inside words
        "bass guitar and glass assistant, passage of grass",
        "a heroine with sussex essex embassy",  # "heroin", "sex"
        "analysis of a cocktail in scunthorpe",
        "the as sassy",  # "as" is not "ass"
        "a bloodhound in a gorge",
        "a lighthouse at dusk --ar 16:9 --seed 455 --s 750",  # digits alone are no word
        "--seed 5553 --c 7",
        "https://cdn.example/nude.png a quiet harbour",  # links are not searched
        "https://s.mj.run/b-l-o-o-d a fox",
        "",
        "     ",
    ],
)
def test_benign_text_is_not_matched(text: str) -> None:
    assert DEFAULTS.find(text) is None


def test_server_additions_and_removals() -> None:
    custom = BannedWords.build(extra=["Dragon", "red  panda", "  "], removed=["NUDE", "blood"])
    assert custom.find("a dragon") == "dragon"
    assert custom.find("a red\npanda") == "red\npanda"
    assert custom.find("a red-panda") == "red-panda"
    assert custom.find("a nude statue") is None
    assert custom.find("blood moon") is None
    assert custom.find("bloody moon") == "bloody"  # only the exact entry was lifted
    assert "dragon" in custom.words and "red panda" in custom.words
    assert "" not in custom.words


def test_without_defaults_and_empty() -> None:
    only = BannedWords.build(extra=["kite"], include_defaults=False)
    assert only.words == frozenset({"kite"})
    assert only.find("a nude kite") == "kite"
    empty = BannedWords.build(include_defaults=False)
    assert len(empty) == 0 and empty.find("nude blood") is None


def test_added_and_removed_word_stays_lifted() -> None:
    assert BannedWords.build(extra=["kite"], removed=["kite"]).find("a kite") is None


def test_repeated_letters_never_shorten_a_word() -> None:
    matcher = BannedWords(["ass", "kill"])
    assert matcher.find("as") is None
    assert matcher.find("kil") is None
    assert matcher.find("asssss") == "asssss"
    assert matcher.find("killll") == "killll"


def test_spaced_form_needs_every_letter_separated() -> None:
    matcher = BannedWords(["anal"])
    assert matcher.find("a n a l") == "a n a l"
    assert matcher.find("an al") is None  # "an allegory" must not be "anal"
    assert matcher.find("an allegory") is None


def test_spelled_out_letters_make_words_too() -> None:
    # Single letters with spaces are how "xxx" and "s e x" are disguised; accepted cost.
    assert DEFAULTS.find("x  x  x") == "x  x  x"


def test_first_banned_fragment_is_reported() -> None:
    assert DEFAULTS.find("gore then nude") == "gore"


def test_invalid_regex_characters_in_entries_are_literal() -> None:
    matcher = BannedWords(["c++ code", "a(b"])
    assert matcher.find("write c++ code now") is not None
    assert matcher.find("a(b") == "a(b"
    assert matcher.find("ab") is None


def test_long_prompt_speed_is_reported() -> None:
    rng = random.Random(7)
    vocabulary = [
        "lighthouse",
        "dusk",
        "cinematic",
        "lighting",
        "ultra",
        "detailed",
        "painting",
        "castle",
        "mountains",
        "harbour",
        "misty",
        "watercolor",
        "portrait",
        "of",
        "an",
        "old",
        "sailor",
        "golden",
        "hour",
        "volumetric",
        "fog",
    ]
    prompt = " ".join(rng.choice(vocabulary) for _ in range(1200))[:6000]
    big = BannedWords.build(extra=[f"madeupword{i}" for i in range(400)])
    assert len(big) >= 500
    for matcher, name in ((DEFAULTS, "defaults"), (big, "500 words")):
        assert matcher.find(prompt) is None
        rounds = 50
        started = time.perf_counter()
        for _ in range(rounds):
            matcher.find(prompt)
        elapsed = (time.perf_counter() - started) / rounds
        print(f"\nbanned-word scan, 6000 chars, {name}: {elapsed * 1e3:.3f} ms")
    started = time.perf_counter()
    BannedWords.build(extra=[f"madeupword{i}" for i in range(400)])
    print(f"building a 500-word matcher: {(time.perf_counter() - started) * 1e3:.1f} ms")


@pytest.mark.parametrize(
    "junk",
    [
        *("1" * 6000, "|" * 6000, "$" * 6000, "@$$ " * 1500, "s$5" * 2000, "| " * 3000),
        *(". " * 3000, "nu" + "u" * 5998, "é" * 6000, "\u200b" * 6000, "i1l|" * 1500),
    ],
)
def test_pathological_input_is_scanned_in_linear_time(junk: str) -> None:
    # Look-alike characters belong to several letters ("1" is i and l); if they could
    # repeat, runs of them would make the regex backtrack for minutes. Printed, not
    # asserted: a regression shows as a test that takes minutes.
    started = time.perf_counter()
    assert DEFAULTS.find(junk) is None
    print(f"\n{junk[:6]!r}…: {(time.perf_counter() - started) * 1e3:.2f} ms")


# --- matching, by property ---------------------------------------------------------------

BANNED_SAMPLE = sorted(w for w in load_default_banned_words() if " " not in w)
SAFE_CONTEXT = st.text(alphabet="bcfhjkmpqrvwyz ,", max_size=40)


@st.composite
def disguised(draw: st.DrawFn) -> tuple[str, str]:
    word = draw(st.sampled_from(BANNED_SAMPLE))
    separator = draw(st.sampled_from(["", " ", ".", "-", "_", ". "]))
    letters = [c.upper() if draw(st.booleans()) else c for c in word]
    with_invisible = [
        c + (draw(st.sampled_from(INVISIBLE)) if draw(st.booleans()) else "") for c in letters
    ]
    return word, separator.join(with_invisible)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(disguised(), SAFE_CONTEXT, SAFE_CONTEXT)
def test_disguised_banned_words_still_match(case: tuple[str, str], before: str, after: str) -> None:
    _, written = case
    text = f"{before} {written} {after}"
    found = DEFAULTS.find(text)
    assert found is not None, text
    # The fragment is the member's own text, minus invisible characters.
    visible = "".join(c for c in text if c not in INVISIBLE)
    assert found in visible


SAFE_ALPHABET = "bcdfghjkmnpqrvwyz .,?-_\n"


def test_no_default_entry_can_be_spelled_with_the_safe_alphabet() -> None:
    # What makes the next test meaningful: every entry needs a letter (or a digit or
    # symbol standing for one) that the safe alphabet lacks.
    for word in load_default_banned_words():
        assert set(word.replace(" ", "")) - set(SAFE_ALPHABET), word


@settings(max_examples=300)
@given(st.text(alphabet=SAFE_ALPHABET, max_size=300))
def test_text_from_a_safe_alphabet_never_matches(text: str) -> None:
    assert DEFAULTS.find(text) is None


BENIGN_WORDS = [
    "class",
    "glass",
    "assistant",
    "passage",
    "bass",
    "heroine",
    "heroines",
    "sussex",
    "essex",
    "analysis",
    "cocktail",
    "scunthorpe",
    "therapist",
    "grape",
    "shitake",
    "assassin",
    "classic",
    "compass",
    "embassy",
    "harass",
    "mass",
    "lighthouse",
    "dusk",
    "snow",
    "fox",
    "kite",
    "castle",
    "nudibranch",
    "bloodhound",
    "gorge",
    "sextant",
    "sexton",
    "methane",
    "method",
    "cumulus",
    "cucumber",
    "circumstance",
    "titan",
    "title",
    "petite",
    "corpsman",
    "crackle",
    "tortoise",
    "dominate",
    "assess",
    "cassette",
    "nudge",
]


@settings(max_examples=300)
@given(
    st.lists(st.sampled_from(BENIGN_WORDS), max_size=30),
    st.sampled_from([" ", ", ", "\n", "  "]),
)
def test_real_words_containing_banned_ones_never_match(words: list[str], sep: str) -> None:
    assert DEFAULTS.find(sep.join(words)) is None


@given(st.text(max_size=400))
def test_find_never_raises_and_returns_text_from_the_input(text: str) -> None:
    found = DEFAULTS.find(text)
    if found is not None:
        assert found
        assert all(c in text for c in found)


# --- parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt",
    [
        "a lighthouse at dusk",
        "a lighthouse --ar 16:9",
        "a lighthouse --aspect 2:3 --v 6.1 --s 250 --c 20 --q .5 --seed 4294967295",
        "a lighthouse --ar 14:1 --stop 10 --tile --weird 3000 --iw 2.5",
        "a lighthouse --ar 1:14 --v 5.2 --style raw --relax",
        "a lighthouse --niji 6 --style cute",
        "a lighthouse --niji",
        "a lighthouse --v 7 --draft --p",
        "a lighthouse --v 7 --p abc123 def456 --exp 25",
        "a lighthouse --no people cars, boats --zoom 1.5",
        "a lighthouse --sref 123456 https://cdn.example/a.png::2 --sw 300 --sv 4",
        "a lighthouse --sref random",
        "a lighthouse --cref https://cdn.example/a.png https://cdn.example/b.png --cw 50 --v 6.1",
        "a lighthouse --oref https://cdn.example/a.png --ow 200",
        "a lighthouse --repeat 40 --fast",
        "a lighthouse --r 1 --turbo --raw",
        "a lighthouse —ar 16:9 —v 6",  # phones turn -- into an em dash
        "a lighthouse –ar 16:9",  # or an en dash
        "a castle — at dusk, a road—long",  # dashes in prose are not parameters
        "a cat --q 1.0 --v 6.0",
        "https://cdn.example/a--b.png a cat",  # -- inside a link
        "a cat --video --motion high --loop",
        "a cat --AR 16:9",
    ],
)
def test_valid_parameters_pass(prompt: str) -> None:
    assert check_midjourney_parameters(prompt) is None


@pytest.mark.parametrize(
    ("prompt", "code", "needle"),
    [
        ("a kite --ar 16x9", "bad_parameter", "--ar"),
        ("a kite --ar", "bad_parameter", "--ar needs a value"),
        ("a kite --ar 0:1", "bad_parameter", "--ar"),
        ("a kite --ar 15:1", "bad_parameter", "1:14 and 14:1"),
        ("a kite --ar 1.5:1", "bad_parameter", "--ar"),
        ("a kite --v 8", "bad_parameter", "--v"),
        ("a kite --version 5.3", "bad_parameter", "--version"),
        ("a kite --niji 3", "bad_parameter", "--niji"),
        ("a kite --q 3", "bad_parameter", "--q"),
        ("a kite --s 1001", "bad_parameter", "--s"),
        ("a kite --stylize -5", "bad_parameter", "--stylize"),
        ("a kite --c 101", "bad_parameter", "--c"),
        ("a kite --w 3001", "bad_parameter", "--w"),
        ("a kite --seed 4294967296", "bad_parameter", "--seed"),
        ("a kite --seed abc", "bad_parameter", '"abc"'),
        ("a kite --stop 9", "bad_parameter", "--stop"),
        ("a kite --iw 3.5", "bad_parameter", "--iw"),
        ("a kite --zoom 2.5", "bad_parameter", "--zoom"),
        ("a kite --zoom", "bad_parameter", "--zoom"),
        ("a kite --repeat 41", "bad_parameter", "--repeat"),
        ("a kite --no", "bad_parameter", "--no"),
        ("a kite --cref ftp://x/a.png", "bad_parameter", "--cref"),
        ("a kite --sref file:///etc/passwd", "bad_parameter", "--sref"),
        ("a kite --motion fast", "bad_parameter", "--motion"),
        ("a kite --ar 16:9 in the snow", "bad_parameter", '"in the snow" comes after --ar'),
        ("a kite --tile please", "bad_parameter", "--tile"),
        ("a kite -- ar 16:9", "bad_parameter", '"--"'),
        ("a kite —ar 16x9", "bad_parameter", "--ar"),
        ("a kite --foo 1", "unknown_parameter", '"--foo"'),
        ("a kite --v6", "unknown_parameter", "Did you mean --v 6"),
        ("a kite --ar16:9", "unknown_parameter", "Did you mean --ar 16:9"),
        ("a kite —dramatic", "unknown_parameter", "--dramatic"),
        ("a kite --> a bird", "unknown_parameter", "--"),
        ("a kite --fast --relax", "conflicting_parameters", "--fast and --relax"),
        ("a kite --turbo --relax", "conflicting_parameters", "choose one speed"),
        ("a kite --v 6 --niji 6", "conflicting_parameters", "--niji"),
        ("a kite --ar 1:1 --ar 2:3", "conflicting_parameters", "--ar appears twice"),
        ("a kite --s 100 --stylize 200", "conflicting_parameters", "--s and --stylize"),
        ("a kite --ar 1:1 —ar 2:3", "conflicting_parameters", "--ar"),
    ],
)
def test_parameter_problems(prompt: str, code: str, needle: str) -> None:
    problem = check_midjourney_parameters(prompt)
    assert problem is not None, prompt
    assert problem.code == code, problem
    assert needle in problem.message, problem.message
    assert problem.message.endswith((".", "?")), problem.message


@given(st.text(max_size=200))
def test_parameter_check_never_raises_on_any_text(text: str) -> None:
    problem = check_midjourney_parameters(text)
    assert problem is None or problem.code in PROBLEM_CODES


FLAG_WORDS = st.sampled_from(
    [
        *("--ar", "--v", "--niji", "--s", "--q", "--seed", "--no", "--sref", "--p", "--zoom"),
        *("—ar", "--fast", "--relax", "--", "—", "16:9", "6.1", "-5", "1e9", ".5", "raw", "::2"),
        *("a", "https://x.example/a.png", "http://", "99999999999999999999", "NaN", "Infinity"),
    ]
)


@given(st.lists(FLAG_WORDS, max_size=12))
def test_parameter_check_never_raises_on_parameter_soup(words: list[str]) -> None:
    problem = check_midjourney_parameters("a kite " + " ".join(words))
    assert problem is None or problem.code in PROBLEM_CODES


# --- links --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["https://cdn.example/a.png", "http://cdn.example/a.png?x=1", " https://a.b/c "]
)
def test_good_links(url: str) -> None:
    assert check_image_link(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ftp://cdn.example/a.png",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "cdn.example/a.png",
        "https://",
        "https:///a.png",
        "https://cdn.example/a b.png",
        "https://[::1",
        "https://cdn.example/" + "a" * 2040,
    ],
)
def test_bad_links(url: str) -> None:
    problem = check_image_link(url)
    assert problem is not None and problem.code == "bad_link", url
    assert problem.message


# --- the whole prompt ---------------------------------------------------------------------


def test_check_prompt_order_and_messages() -> None:
    assert problem_code("a lighthouse at dusk --ar 16:9") is None
    assert problem_code("") == "empty"
    assert problem_code("   \n ") == "empty"
    assert problem_code("\u200b\u200d\ufeff") == "empty"  # invisible only
    assert problem_code("--ar 16:9") == "empty"  # parameters, nothing to draw
    assert problem_code("", allow_empty=True) is None
    assert problem_code("\u200b", allow_empty=True) is None
    assert problem_code("https://cdn.example/a.png --ar 16:9") is None  # an image is enough
    assert check_prompt("x" * 11, banned=DEFAULTS, max_length=10) == PromptProblem(
        "too_long",
        "The prompt is 11 characters long; the most this server accepts is 10.",
    )
    assert check_prompt("  y" * 3 + "  ", banned=DEFAULTS, max_length=7) is None  # stripped
    # A banned word is reported before a parameter problem.
    assert problem_code("blood --ar 16x9") == "banned_word"
    assert problem_code("a kite --ar 16x9") == "bad_parameter"


def test_banned_word_message_names_the_word_as_written() -> None:
    problem = check_prompt("a b l o o d moon", banned=DEFAULTS, max_length=100)
    assert problem == PromptProblem(
        "banned_word", 'The prompt contains "b l o o d", which this server does not allow.'
    )
    # Markdown in the member's own text is escaped, so it shows as they wrote it.
    problem = check_prompt("n_u_d_e", banned=DEFAULTS, max_length=100)
    assert problem is not None and '"n\\_u\\_d\\_e"' in problem.message


def test_every_problem_code_is_documented() -> None:
    documented = {
        "empty",
        "too_long",
        "banned_word",
        "bad_parameter",
        "unknown_parameter",
        "conflicting_parameters",
        "bad_link",
    }
    assert documented == PROBLEM_CODES
