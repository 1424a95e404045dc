"""Discord's rate limits as the load benchmark installs them on the fake Discord.

The models live in the fake (tests/fakes/discord/limits.py); the benchmark picks them by
letter, `--limits abd` by default:

- a: one bucket per channel shared by bot-token and interaction-token message writes, 5 per 5 s;
- b: one bucket per guild shared by every interaction-token write, 5 per 1 s;
- c: one bucket per interaction token, 5 per 2 s (what the benchmark modelled before issue 12);
- d: the global 50 requests per second for bot-token routes (interaction routes exempt).

Every answer on a limited route carries truthful X-RateLimit-* headers; past 10,000 invalid
requests (401, 403, non-shared 429) in 10 minutes the fake refuses everything, as Discord's
temporary ban does.
"""

from __future__ import annotations

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.limits import (
    DEFAULT_INVALID_LIMIT,
    DEFAULT_SPECS,
    INVALID_WINDOW_S,
    DiscordLimits,
    LimitModel,
    parse_models,
)

DEFAULT_LIMITS = "abd"

_WHAT = {
    LimitModel.CHANNEL_WRITES: "per channel, message writes of both tokens",
    LimitModel.GUILD_WEBHOOKS: "per guild, interaction-token writes",
    LimitModel.PER_TOKEN: "per interaction token",
    LimitModel.GLOBAL: "global, bot-token routes (interaction routes exempt)",
}


def models_for(letters: str) -> list[LimitModel]:
    """'abd' → the models; raises ValueError naming a letter that is not a model."""
    try:
        models = parse_models(letters)
    except ValueError:
        bad = [c for c in letters.lower() if c.isalpha() and c not in "abcd"]
        raise ValueError(f"unknown rate-limit model {bad[0]!r}: use letters of 'abcd'") from None
    return list(dict.fromkeys(models))  # once each, in the order given


def limits_text(letters: str) -> tuple[str, ...]:
    """What `install_discord_limits(…, letters)` puts on the fake, one line per model."""
    models = models_for(letters)
    if not models:
        return ("none",)
    lines = []
    for model in models:
        spec = DEFAULT_SPECS[model]
        lines.append(f"({model.value}) {spec.limit} per {spec.per:g} s {_WHAT[model]}")
    lines.append(
        f"ban after {DEFAULT_INVALID_LIMIT:,} invalid requests per {INVALID_WINDOW_S / 60:g} min"
    )
    return tuple(lines)


# What the default run installs, for the report's header.
LIMITS_TEXT = limits_text(DEFAULT_LIMITS)


def install_discord_limits(discord: FakeDiscord, letters: str = DEFAULT_LIMITS) -> DiscordLimits:
    """Put the models named by `letters` on `discord`; their counters are the run's figures."""
    return discord.set_limit_models(models_for(letters))
