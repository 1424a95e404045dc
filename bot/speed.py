"""The speed a job runs at, decided once for every entry point.

A member can ask for a speed in four places: the command's `mode` option, a `--fast`,
`--relax` or `--turbo` in the prompt (or in a remix form's text), a speed flag in their
/prefs suffix, and their /prefs mode; the server's default comes last. `decide_speed`
turns all of them into one `SpeedMode` and a prompt whose flags agree with it, so that the
server's speed rules and fast quotas judge the speed the provider is actually asked for
(a flag left in the prompt would override the mode at Midjourney, unchecked and uncounted).

Precedence, most specific first: the option, the prompt's flag, the suffix's flag, (for
a follow-up) the parent job's speed, the member's preference, then the server's default.
The option and a prompt flag that disagree are refused, like two flags in one prompt: the
member asked for two speeds and should say which.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain import SpeedMode

__all__ = ["SpeedConflictError", "SpeedDecision", "decide_speed", "split_speed_flags"]

# "--" as typed, and the em and en dashes phones make of it (as bot/prompt_check.py reads).
_DASHES = ("--", "—", "–")
_SPEEDS = {m.value: m for m in SpeedMode}


class SpeedConflictError(ValueError):
    """Two different speeds were asked for; the message is a sentence for the member."""


@dataclass(frozen=True, slots=True)
class SpeedDecision:
    mode: SpeedMode
    prompt: str | None  # the prompt (with the suffix) to send, its flags agreeing with `mode`


def _flag_speed(token: str) -> SpeedMode | None:
    for dash in _DASHES:
        if token.startswith(dash):
            return _SPEEDS.get(token[len(dash) :].lower())
    return None


def split_speed_flags(text: str | None) -> tuple[list[SpeedMode], str | None]:
    """The speed flags in `text` (in order) and the text without them, spaces collapsed.
    Only whole words count, as at Midjourney: "cat--fast" is text."""
    if text is None:
        return [], None
    speeds: list[SpeedMode] = []
    words: list[str] = []
    for token in text.split():
        speed = _flag_speed(token)
        if speed is None:
            words.append(token)
        else:
            speeds.append(speed)
    return speeds, " ".join(words)


def _one(speeds: list[SpeedMode], where: str) -> SpeedMode | None:
    distinct = list(dict.fromkeys(speeds))
    if len(distinct) > 1:
        named = " and ".join(f"--{s.value}" for s in distinct)
        raise SpeedConflictError(f"{where} asks for {named}; choose one speed.")
    return distinct[0] if distinct else None


def _mode(value: str | SpeedMode | None) -> SpeedMode | None:
    if value is None or isinstance(value, SpeedMode):
        return value
    return _SPEEDS.get(str(value).lower())


def _with_suffix(prompt: str, suffix: str | None) -> str:
    """`prompt` with `suffix` appended, unless it already ends with it (/prefs suffix)."""
    prompt = prompt.strip()
    if not suffix or not suffix.strip() or prompt.endswith(suffix.strip()):
        return prompt
    return f"{prompt} {suffix.strip()}".strip()


def decide_speed(
    option: str | SpeedMode | None,
    member_pref: str | None,
    server_default: str | None,
    prompt: str | None,
    *,
    suffix: str | None = None,
    inherited: SpeedMode | None = None,
    keep_flag: bool = False,
) -> SpeedDecision:
    """The one speed of a job, and its prompt (suffix appended) carrying no other speed.

    `inherited` is a follow-up's parent speed (it runs there unless the member's text
    asks otherwise). `keep_flag`: the returned prompt keeps one flag naming the decided
    speed when the text had one (follow-ups, whose providers take the speed from the
    prompt only); otherwise every flag is removed and the provider is told the speed its
    own way (PiAPI `process_mode`, Legnext's appended flag, midjourney-proxy's filter).
    Raises SpeedConflictError when the member asked for two speeds.
    """
    typed, text = split_speed_flags(prompt)
    in_prompt = _one(typed, "The prompt")
    suffix_flags, suffix_text = split_speed_flags(suffix)
    in_suffix = _one(suffix_flags, "Your /prefs suffix")
    chosen = _mode(option)
    if chosen is not None and in_prompt is not None and chosen is not in_prompt:
        raise SpeedConflictError(
            f"You chose the **{chosen.value}** speed and the prompt says --{in_prompt.value}; "
            "choose one speed."
        )
    mode = (
        chosen
        or in_prompt
        or in_suffix
        or inherited
        or _mode(member_pref)
        or _mode(server_default)
        or SpeedMode.FAST
    )
    if text is None:
        return SpeedDecision(mode, None)
    cleaned = _with_suffix(text, suffix_text)
    if keep_flag and (in_prompt or in_suffix) and cleaned:
        cleaned = f"{cleaned} --{mode.value}"
    return SpeedDecision(mode, cleaned)
