"""The local prompt check: refuse what the image service would refuse, before it costs.

A prompt the provider rejects is not free: PiAPI counts it toward a daily cap of failed
tasks, and a self-hosted proxy risks the Midjourney account itself. Everything here is
pure and synchronous, so it runs in the 3-second interaction window before anything is
acknowledged or sent:

- `check_prompt` — empty, too long, a banned word, a malformed `--` parameter;
- `BannedWords` — the server's banned-word matcher (defaults ± the server's own words);
- `check_midjourney_parameters` — Midjourney's `--flags` and their values;
- `check_image_link` — an image URL the provider can fetch.

Every problem is a `PromptProblem` whose message is a sentence fit for an ephemeral reply.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources
from urllib.parse import urlsplit

__all__ = [
    "PROBLEM_CODES",
    "BannedWords",
    "PromptProblem",
    "check_image_link",
    "check_midjourney_parameters",
    "check_prompt",
    "load_default_banned_words",
]

PROBLEM_CODES = frozenset(
    {
        "empty",
        "too_long",
        "banned_word",
        "bad_parameter",
        "unknown_parameter",
        "conflicting_parameters",
        "bad_link",
    }
)

MAX_LINK_LENGTH = 2048


@dataclass(frozen=True)
class PromptProblem:
    """Why a prompt is refused: `code` is one of `PROBLEM_CODES`, `message` is for the member."""

    code: str
    message: str


# --- showing the member's own text ------------------------------------------------------

_MARKDOWN = re.compile(r"([\\*_~|`>])")


def _shown(text: str, limit: int = 60) -> str:
    """`text` as it can be quoted in a Discord message: markdown escaped, clipped."""
    text = _strip_invisible(text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return _MARKDOWN.sub(r"\\\1", text)


# --- normalising text for matching ------------------------------------------------------

# Zero-width and other invisible characters a member may slip into a word. Every other
# "format" character (Unicode category Cf: bidi marks, word joiners, …) goes as well.
_INVISIBLE = frozenset("\u00ad\u200b\u200c\u200d\u2060\ufeff")

# Cyrillic letters that look exactly like Latin ones ("nudе" with a Cyrillic е).
_LOOKALIKES = {
    "а": "a",
    "в": "b",
    "е": "e",
    "к": "k",
    "м": "m",
    "н": "h",
    "о": "o",
    "р": "p",
    "с": "c",
    "т": "t",
    "у": "y",
    "х": "x",
    "і": "i",
    "ј": "j",
    "ѕ": "s",
}

_URL = re.compile(r"https?://\S+", re.IGNORECASE)


def _is_invisible(char: str) -> bool:
    return char in _INVISIBLE or unicodedata.category(char) == "Cf"


def _strip_invisible(text: str) -> str:
    if text.isascii():
        return text
    return "".join(c for c in text if not _is_invisible(c))


@lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    """One non-ASCII character as the matcher sees it: lowercase ASCII where possible."""
    if _is_invisible(char):
        return ""
    folded = unicodedata.normalize("NFKD", char).casefold()
    folded = unicodedata.normalize("NFKD", folded)
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return "".join(_LOOKALIKES.get(c, c) for c in folded)


_RUNS = re.compile(r"[\x00-\x7f]+|[^\x00-\x7f]")


def _fold(text: str) -> tuple[str, list[int] | None]:
    """`text` lowercased, accents and invisible characters removed, links blanked.

    Returns the folded text and, when its positions differ from the original's, the
    original index of each folded character (None: the same index). Links are blanked
    because their paths are random strings that happen to contain words, and the image
    behind a link is moderated by the provider, not by its address.
    """
    if "://" in text:
        text = _URL.sub(lambda m: " " * len(m.group()), text)  # keeps every position
    if text.isascii():
        return text.lower(), None  # the common case, at C speed
    pieces: list[str] = []
    origin: list[int] = []
    for run in _RUNS.finditer(text):
        chunk = run.group()
        if chunk[0] < "\x80":
            pieces.append(chunk.lower())
            origin.extend(range(run.start(), run.end()))
        elif folded := _fold_char(chunk):
            pieces.append(folded)
            origin.extend([run.start()] * len(folded))
    return "".join(pieces), origin


# --- the banned-word matcher ------------------------------------------------------------

# What a letter may be written as. Digits and symbols stand for the letters they look like.
_LEET: dict[str, str] = {
    "a": "a4@",
    "b": "b8",
    "e": "e3",
    "g": "g9",
    "i": "i1!|",
    "l": "l1|",
    "o": "o0",
    "s": "s5$",
    "t": "t7+",
    "z": "z2",
}
# Between the letters of a spelled-out word ("n u d e", "n.u.d.e", "n-u-d-e", "n_u_d_e"),
# and between the words of a phrase.
_SEPARATOR = r"[\s._\-]+"
# A match must not sit inside a longer word: no letter or digit right before or after it.
_BEFORE = r"(?<![^\W_])"
_AFTER = r"(?![^\W_])"
_MAX_ENTRY = 100


def _letter_class(char: str) -> str:
    chars = _LEET.get(char, char)
    if len(chars) == 1:
        return re.escape(chars)
    return "[" + "".join("\\" + c if c in "\\]^-[" else c for c in chars) + "]"


def _normalise_entry(entry: str) -> str:
    """A banned word or phrase as stored and compared: folded, single-spaced."""
    folded, _ = _fold(entry.strip())
    words = re.split(r"[\s._\-]+", folded)
    return " ".join(w for w in words if w)[:_MAX_ENTRY]


def _contiguous_tokens(entry: str) -> list[str]:
    """Tokens of the entry written as words: each run of one letter may be stretched
    ("nuuude"), but never shortened (so "ass" is not matched by "as").

    A run of k letters is exactly k characters of the letter's class followed by any
    number of the plain letter: `[s5$]{2}s*`. Only the plain letter repeats, never the
    look-alikes, so neighbouring runs cannot compete for the same characters ("1" is
    both i and l) and a line of "||||" or "1111" cannot make the regex backtrack
    without end.
    """
    tokens: list[str] = []
    for w, word in enumerate(entry.split(" ")):
        if w:
            tokens.append(_SEPARATOR)
        for run in re.finditer(r"(.)\1*", word):
            char = run.group(1)
            cls = _letter_class(char)
            count = len(run.group())
            exact = cls if count == 1 else f"{cls}{{{count}}}"
            tokens.append(exact + re.escape(char) + "*")
    return tokens


def _spaced_tokens(entry: str) -> list[str]:
    """Tokens of the entry spelled out letter by letter: "b l o o d", "b.l.o.o.d"."""
    tokens: list[str] = []
    for i, char in enumerate(entry.replace(" ", "")):
        if i:
            tokens.append(_SEPARATOR)
        tokens.append(_letter_class(char))
    return tokens


_Trie = dict[str, "_Trie"]
_END = ""  # a trie key that marks where an entry ends


def _trie_regex(sequences: Iterable[Sequence[str]]) -> str:
    """One regex alternation for many token sequences, sharing common prefixes.

    Python's `re` tries the branches of an alternation one by one; merging prefixes
    means it tests a handful of first letters at each word start instead of every
    entry, which keeps a long prompt against hundreds of words well under a millisecond.
    Backtracking still finds a shorter entry when a longer one fails its word boundary.
    """
    trie: _Trie = {}
    for tokens in sequences:
        node = trie
        for token in tokens:
            node = node.setdefault(token, {})
        node[_END] = {}

    def render(node: _Trie) -> str:
        branches = [token + render(child) for token, child in node.items() if token != _END]
        if not branches:
            return ""
        if _END in node:
            return "(?:" + "|".join(branches) + ")?"
        if len(branches) == 1:
            return branches[0]
        return "(?:" + "|".join(branches) + ")"

    return render(trie)


class BannedWords:
    """A compiled matcher for one set of banned words and phrases.

    Build it once per set (`build`) and reuse it: compiling is the costly part, `find`
    is one regex scan. Matching is whole-word, case- and accent-insensitive, blind to
    invisible characters, and sees through spelled-out words ("n u d e", "n.u.d.e"),
    stretched letters ("nuuude") and look-alike digits and symbols ("nud3", "@ss").
    Phrases match across any whitespace, dots, dashes or underscores. Links are not
    searched (see `_fold`).
    """

    def __init__(self, words: Iterable[str]) -> None:
        entries = {_normalise_entry(w) for w in words}
        self._words = frozenset(e for e in entries if re.search(r"[^\W_]", e))
        self._pattern: re.Pattern[str] | None = None
        if self._words:
            sequences: list[list[str]] = []
            for entry in sorted(self._words):
                sequences.append(_contiguous_tokens(entry))
                if len(entry.replace(" ", "")) > 1:
                    sequences.append(_spaced_tokens(entry))
            self._pattern = re.compile(_BEFORE + _trie_regex(sequences) + _AFTER)

    @classmethod
    def build(
        cls,
        extra: Iterable[str] = (),
        removed: Iterable[str] = (),
        include_defaults: bool = True,
    ) -> BannedWords:
        """The shipped defaults (unless `include_defaults` is False), plus `extra`, minus
        `removed`. Entries are compared after folding case, accents and spacing, so
        removing "Nude" lifts "nude"; a word both added and removed stays lifted."""
        words = set(load_default_banned_words()) if include_defaults else set()
        words |= {_normalise_entry(w) for w in extra}
        words -= {_normalise_entry(w) for w in removed}
        return cls(words)

    @property
    def words(self) -> frozenset[str]:
        """The normalised entries this matcher looks for."""
        return self._words

    def __len__(self) -> int:
        return len(self._words)

    def __repr__(self) -> str:
        return f"BannedWords({len(self._words)} entries)"

    def find(self, text: str) -> str | None:
        """The first banned fragment of `text` as the member wrote it (invisible
        characters left out), or None when there is none.

        A fragment made only of digits and symbols ("455", "$$") is never a match: the
        look-alike rules are for disguised words, not for seeds and numbers.
        """
        if self._pattern is None or not text:
            return None
        folded, origin = _fold(text)
        for match in self._pattern.finditer(folded):
            if not any(c.isalpha() for c in match.group()):
                continue
            start, end = match.span()
            if origin is not None:
                start, end = origin[start], origin[end - 1] + 1
            return _strip_invisible(text[start:end])
        return None


def load_default_banned_words() -> frozenset[str]:
    """The default list shipped in `bot/data/banned_words.txt` (one entry a line, `#`
    comments), normalised as `BannedWords` compares entries."""
    return _load_default_banned_words()


@lru_cache(maxsize=1)
def _load_default_banned_words() -> frozenset[str]:
    text = resources.files("bot").joinpath("data", "banned_words.txt").read_text("utf-8")
    words = set()
    for line in text.splitlines():
        entry = _normalise_entry(line.split("#", 1)[0])
        if entry:
            words.add(entry)
    return frozenset(words)


# --- Midjourney parameters --------------------------------------------------------------

# A validator gets the value tokens after a flag and returns what is wrong, or None.
_Validator = Callable[[list[str]], str | None]


@dataclass(frozen=True)
class _Param:
    canonical: str  # aliases share it: --s and --stylize are one parameter
    form: str  # the expected value, for messages: "a ratio like 16:9"
    validate: _Validator
    takes_value: bool = True
    value_optional: bool = False
    multi: bool = False  # several value tokens (--no text, --sref codes and links)


_INT = re.compile(r"^\d+$")
_NUMBER = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)$")
_RATIO = re.compile(r"^(\d+):(\d+)$")
_CODE = re.compile(r"^[A-Za-z0-9][\w.-]*(?:::-?\d+(?:\.\d+)?)?$")
_WORD = re.compile(r"^[A-Za-z0-9][\w-]*$")


def _one(tokens: list[str]) -> str | None:
    return tokens[0] if len(tokens) == 1 else None


def _int_range(lo: int, hi: int) -> _Validator:
    def validate(tokens: list[str]) -> str | None:
        value = _one(tokens)
        if value is None or not _INT.match(value) or not lo <= int(value) <= hi:
            return f"a whole number from {lo} to {hi}"
        return None

    return validate


def _number_range(lo: Decimal, hi: Decimal) -> _Validator:
    def validate(tokens: list[str]) -> str | None:
        value = _one(tokens)
        if value is None or not _NUMBER.match(value) or not lo <= Decimal(value) <= hi:
            return f"a number from {lo} to {hi}"
        return None

    return validate


def _numeric_choice(*choices: str) -> _Validator:
    allowed = {Decimal(c) for c in choices}

    def validate(tokens: list[str]) -> str | None:
        value = _one(tokens)
        try:
            ok = value is not None and _NUMBER.match(value) and Decimal(value) in allowed
        except InvalidOperation:
            ok = False
        return None if ok else "one of " + ", ".join(choices)

    return validate


def _word_choice(*choices: str) -> _Validator:
    def validate(tokens: list[str]) -> str | None:
        value = _one(tokens)
        return (
            None
            if value is not None and value.lower() in choices
            else "one of " + ", ".join(choices)
        )

    return validate


def _ratio(tokens: list[str]) -> str | None:
    expected = "a ratio of two whole numbers like 16:9, between 1:14 and 14:1"
    value = _one(tokens)
    match = _RATIO.match(value) if value is not None else None
    if match is None:
        return expected
    width, height = int(match.group(1)), int(match.group(2))
    if width <= 0 or height <= 0 or width > 14 * height or height > 14 * width:
        return expected
    return None


def _style(tokens: list[str]) -> str | None:
    value = _one(tokens)
    return None if value is not None and _WORD.match(value) else "a style name like raw"


def _is_http_link(token: str) -> bool:
    return check_image_link(token.split("::", 1)[0]) is None


def _refs(tokens: list[str]) -> str | None:
    # --sref: style codes, "random", or image links, each optionally weighted (::2).
    expected = "one or more style codes or https:// image links"
    if not tokens:
        return expected
    for token in tokens:
        if "://" in token:
            if not _is_http_link(token):
                return expected
        elif not _CODE.match(token):
            return expected
    return None


def _links(tokens: list[str]) -> str | None:
    expected = "one or more https:// image links"
    if not tokens or not all(_is_http_link(t) for t in tokens):
        return expected
    return None


def _link(tokens: list[str]) -> str | None:
    value = _one(tokens)
    return None if value is not None and _is_http_link(value) else "one https:// image link"


def _codes(tokens: list[str]) -> str | None:
    # --p alone uses the member's default profile; codes pick others.
    ok = all(_CODE.match(t) for t in tokens)
    return None if ok else "nothing, or profile codes"


def _text(tokens: list[str]) -> str | None:
    return None if tokens else "the words to leave out, like --no people"


def _flag(canonical: str, form: str, validate: _Validator, **kw: bool) -> _Param:
    return _Param(canonical, form, validate, **kw)


def _switch(canonical: str) -> _Param:
    return _Param(canonical, "nothing", lambda tokens: None, takes_value=False)


_VERSIONS = ("1", "2", "3", "4", "5", "5.1", "5.2", "6", "6.1", "7")

_PARAMS: dict[str, _Param] = {}
for _names, _param in (
    (("ar", "aspect"), _flag("ar", "a ratio like 16:9", _ratio)),
    (("v", "version"), _flag("v", "a version", _numeric_choice(*_VERSIONS))),
    (
        ("niji",),
        _flag("niji", "a niji version", _numeric_choice("4", "5", "6"), value_optional=True),
    ),
    (("style",), _flag("style", "a style name", _style)),
    (("stylize", "s"), _flag("stylize", "a number", _int_range(0, 1000))),
    (("chaos", "c"), _flag("chaos", "a number", _int_range(0, 100))),
    (("quality", "q"), _flag("quality", "a quality", _numeric_choice(".25", ".5", "1", "2", "4"))),
    (("seed",), _flag("seed", "a number", _int_range(0, 4294967295))),
    (("stop",), _flag("stop", "a number", _int_range(10, 100))),
    (("weird", "w"), _flag("weird", "a number", _int_range(0, 3000))),
    (("no",), _flag("no", "words", _text, multi=True)),
    (("iw",), _flag("iw", "a number", _number_range(Decimal(0), Decimal(3)))),
    (("sref",), _flag("sref", "style references", _refs, multi=True)),
    (("sw",), _flag("sw", "a number", _int_range(0, 1000))),
    (("sv",), _flag("sv", "a number", _int_range(1, 6))),
    (("cref",), _flag("cref", "image links", _links, multi=True)),
    (("cw",), _flag("cw", "a number", _int_range(0, 100))),
    (("oref",), _flag("oref", "an image link", _link)),
    (("ow",), _flag("ow", "a number", _int_range(1, 1000))),
    (("repeat", "r"), _flag("repeat", "a number", _int_range(1, 40))),
    (("zoom",), _flag("zoom", "a number", _number_range(Decimal(1), Decimal(2)))),
    (("exp",), _flag("exp", "a number", _int_range(0, 100))),
    (
        ("p", "personalize", "profile"),
        _flag("p", "profile codes", _codes, value_optional=True, multi=True),
    ),
    (("motion",), _flag("motion", "low or high", _word_choice("low", "high"))),
    (("bs",), _flag("bs", "a batch size", _numeric_choice("1", "2", "4"))),
    (("end",), _flag("end", "an image link", _link)),
    (("tile",), _switch("tile")),
    (("relax",), _switch("relax")),
    (("fast",), _switch("fast")),
    (("turbo",), _switch("turbo")),
    (("draft",), _switch("draft")),
    (("raw",), _switch("raw")),
    (("video",), _switch("video")),
    (("loop",), _switch("loop")),
    (("stealth",), _switch("stealth")),
    (("public",), _switch("public")),
):
    for _name in _names:
        _PARAMS[_name] = _param
del _names, _param, _name

_SPEEDS = ("fast", "relax", "turbo")
_FLAG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
# iOS and Android turn "--" into an em dash (and some keyboards into an en dash).
_EM_DASH = "—"
_EN_DASH = "–"


@dataclass(frozen=True)
class _Flag:
    name: str  # lowercased, as typed: "s" for --s
    param: _Param | None
    values: list[str]


def _flag_name(token: str) -> str | None:
    """The parameter name a token introduces ("" for a bare "--"), or None for text."""
    if token.startswith("--"):
        return token[2:]
    if token.startswith(_EM_DASH) and _FLAG_NAME.match(token[1:]):
        return token[1:]
    if token.startswith(_EN_DASH) and token[1:].lower() in _PARAMS:
        return token[1:]
    return None  # a lone dash in prose ("a castle — at dusk") is text


def _split_flags(prompt: str) -> tuple[list[_Flag], PromptProblem | None]:
    """The prompt's `--` flags with the tokens after each, or the first unreadable one."""
    flags: list[_Flag] = []
    for token in prompt.split():
        name = _flag_name(token)
        if name is None:
            if flags:
                flags[-1].values.append(token)
            continue
        if not name:
            return flags, PromptProblem(
                "bad_parameter",
                'There is a "--" with no parameter name after it; write parameters like --ar 16:9.',
            )
        lowered = name.lower()
        param = _PARAMS.get(lowered) if _FLAG_NAME.match(name) else None
        if param is None:
            return flags, _unknown(name)
        flags.append(_Flag(lowered, param, []))
    return flags, None


def _unknown(name: str) -> PromptProblem:
    message = f'Midjourney has no parameter "--{_shown(name, 40)}".'
    # "--v6", "--ar16:9", "--s=250": a known flag run together with its value.
    match = re.match(r"^([A-Za-z]+)[=:]?(\S+)$", name)
    if match and match.group(1).lower() in _PARAMS:
        flag, value = match.group(1).lower(), match.group(2)
        param = _PARAMS[flag]
        if param.takes_value and param.validate([value]) is None:
            message += f" Did you mean --{flag} {_shown(value, 40)} (with a space)?"
    else:
        message += " Check its spelling, or leave it out."
    return PromptProblem("unknown_parameter", message)


def _value_problem(flag: _Flag) -> PromptProblem | None:
    param = flag.param
    assert param is not None
    shown_flag = f"--{flag.name}"
    if not param.takes_value:
        if flag.values:
            return _trailing_text(shown_flag, flag.values)
        return None
    values = flag.values
    if not values:
        if param.value_optional:
            return None
        expected = param.validate([])
        return PromptProblem("bad_parameter", f"{shown_flag} needs a value: {expected}.")
    if not param.multi and len(values) > 1:
        if param.validate(values[:1]) is None:
            return _trailing_text(shown_flag, values[1:])
        values = values[:1]
    expected = param.validate(values)
    if expected is None:
        return None
    got = _shown(" ".join(values), 40)
    return PromptProblem("bad_parameter", f'{shown_flag} needs {expected}, and "{got}" is not one.')


def _trailing_text(flag: str, tokens: list[str]) -> PromptProblem:
    text = _shown(" ".join(tokens), 40)
    return PromptProblem(
        "bad_parameter",
        f'"{text}" comes after {flag}; the description goes before the parameters, '
        "which end the prompt.",
    )


def check_midjourney_parameters(prompt: str) -> PromptProblem | None:
    """The first problem with the prompt's Midjourney parameters, or None.

    Parameters start with `--` (or an em dash, which phones make of `--`) after a space.
    Unknown names are `unknown_parameter`; a missing or malformed value, or text after a
    parameter that takes none, is `bad_parameter`; the same parameter twice (aliases
    included: --s and --stylize), two speeds, or --v with --niji is
    `conflicting_parameters`. Never raises.
    """
    flags, problem = _split_flags(prompt)
    if problem is not None:
        return problem
    seen: dict[str, str] = {}
    for flag in flags:
        if (problem := _value_problem(flag)) is not None:
            return problem
        assert flag.param is not None
        canonical = flag.param.canonical
        if canonical in seen:
            first = seen[canonical]
            also = f"--{first}" if first == flag.name else f"--{first} and --{flag.name}"
            what = f"--{first} appears twice" if first == flag.name else f"{also} are the same"
            return PromptProblem(
                "conflicting_parameters", f"{what}; give that parameter only once."
            )
        seen[canonical] = flag.name
    speeds = [seen[s] for s in _SPEEDS if s in seen]
    if len(speeds) > 1:
        named = " and ".join(f"--{s}" for s in speeds)
        return PromptProblem(
            "conflicting_parameters", f"{named} cannot be used together; choose one speed."
        )
    if "v" in seen and "niji" in seen:
        return PromptProblem(
            "conflicting_parameters",
            f"--{seen['v']} and --niji cannot be used together; --niji is its own model version.",
        )
    return None


# --- links and the whole prompt ---------------------------------------------------------


def check_image_link(url: str) -> PromptProblem | None:
    """Whether the provider can fetch `url`: http(s), a host, no spaces, ≤2048 chars."""
    url = url.strip()
    if not url:
        return PromptProblem("bad_link", "The image link is empty.")
    if len(url) > MAX_LINK_LENGTH:
        return PromptProblem(
            "bad_link", f"The image link is longer than {MAX_LINK_LENGTH} characters."
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme.lower() not in ("http", "https"):
        return PromptProblem("bad_link", "Image links must start with https:// (or http://).")
    if not host or any(c.isspace() for c in url):
        return PromptProblem(
            "bad_link", f'"{_shown(url, 60)}" is not a complete web address of an image.'
        )
    return None


def check_prompt(
    prompt: str, *, banned: BannedWords, max_length: int, allow_empty: bool = False
) -> PromptProblem | None:
    """The first reason to refuse `prompt`, or None: empty, too long, banned word, then
    Midjourney parameters.

    A prompt of invisible characters only is empty; so is one of parameters only
    (Midjourney needs something to draw). `allow_empty` is for inputs where an empty
    prompt is fine (a form that keeps the parent's prompt): then it passes.
    `max_length` counts the characters of the stripped prompt.
    """
    text = prompt.strip()
    visible = _strip_invisible(text).strip()
    if not visible:
        if allow_empty:
            return None
        return PromptProblem("empty", "The prompt is empty; describe what to draw.")
    if len(text) > max_length:
        return PromptProblem(
            "too_long",
            f"The prompt is {len(text):,} characters long; the most this server accepts "
            f"is {max_length:,}.",
        )
    if (fragment := banned.find(text)) is not None:
        return PromptProblem(
            "banned_word",
            f'The prompt contains "{_shown(fragment)}", which this server does not allow.',
        )
    if (problem := check_midjourney_parameters(text)) is not None:
        return problem
    if not allow_empty and _description_is_empty(text):
        return PromptProblem(
            "empty",
            "The prompt has only parameters; describe what to draw before them.",
        )
    return None


def _description_is_empty(text: str) -> bool:
    """Whether the prompt starts with a parameter, before any visible text."""
    for token in text.split():
        if _flag_name(token) is not None:
            return True
        if _strip_invisible(token):
            return False
    return True
