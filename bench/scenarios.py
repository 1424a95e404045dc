"""Issue 12's two benchmark loads, the floor of the first, and the verdicts on both.

- busy-channels: 300 jobs over 10 s in 10 channels of one guild, every job living exactly as
  long (the "busy" profile), so each channel's 30 jobs finish within about 10 s of each
  other. Under (a) a channel takes 5 message writes per 5 s, one a second: its 30 finals
  need about 30 s however they are paced, so the last of them cannot land sooner than
  about 20 s after its job ended. That is the floor the completion-to-final p99 is judged
  against; it is computed from the run's own completion times (see `final_floor`).
- many-servers: 2,000 jobs over 30 s in 400 channels (five each) of 100 guilds (four
  channels each), the realistic profile: the budget of a channel is ample, the bot's
  pacing must not cost latency.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bench.load_analysis import RunFigures, percentile
from tests.fakes.discord.limits import DEFAULT_SPECS, LimitModel

MAX_429 = 10
MAX_ATTEMPTS_PER_LANDED = 1.01
FLOOR_MARGIN = 1.25  # completion-to-final p99 within 25 % of the floor
MANY_FINAL_P99_S = 5.0
MANY_STATE_P50_S = 2.0


@dataclass(frozen=True)
class Scenario:
    name: str
    jobs: int
    ramp_s: float
    channels: int
    guilds: int
    profile: str
    summary: str


SCENARIOS = {
    "busy-channels": Scenario(
        "busy-channels",
        jobs=300,
        ramp_s=10.0,
        channels=10,
        guilds=1,
        profile="busy",
        summary="300 jobs over 10 s in 10 channels of one guild (30 a channel, finishing "
        "within about 10 s of each other)",
    ),
    "many-servers": Scenario(
        "many-servers",
        jobs=2000,
        ramp_s=30.0,
        channels=400,
        guilds=100,
        profile="realistic",
        summary="2,000 jobs over 30 s in 400 channels (5 a channel) of 100 guilds "
        "(4 channels each)",
    ),
}


# --- the floor ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Floor:
    sustained_p99: float | None  # finals at the bucket's sustained rate (the floor)
    burst_p99: float | None  # finals sent a whole window at a time, as the fake allows


def _paced(times: Sequence[float], limit: int, per: float, burst: bool) -> list[float]:
    """How late each final lands when only finals are sent, in completion order, as early as
    the channel's bucket allows: one per `per / limit` s, or `limit` per fixed window."""
    late = []
    previous = window = float("-inf")
    count = 0
    for done in sorted(times):
        at = max(done, previous if burst else previous + per / limit)
        if burst:
            if at - window >= per:
                window, count = at, 0
            if count >= limit:
                at, window, count = window + per, window + per, 0
            count += 1
        late.append(at - done)
        previous = at
    return late


def final_floor(figures: RunFigures, channel_of: Mapping[str, int]) -> Floor:
    """The completion-to-final p99 no client can beat under (a), from this run's own
    completion times: per channel, finals alone, sent as soon as the bucket allows."""
    spec = DEFAULT_SPECS[LimitModel.CHANNEL_WRITES]
    by_channel: dict[int, list[float]] = {}
    for job in figures.values():
        if job.completed_at is not None and job.key in channel_of:
            by_channel.setdefault(channel_of[job.key], []).append(job.completed_at)
    sustained: list[float] = []
    burst: list[float] = []
    for times in by_channel.values():
        sustained += _paced(times, spec.limit, spec.per, burst=False)
        burst += _paced(times, spec.limit, spec.per, burst=True)
    return Floor(percentile(sustained, 99), percentile(burst, 99))


# --- verdicts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunView:
    """What the verdicts need of one run."""

    name: str
    figures: RunFigures
    cpu_per_job: float | None
    wall_s: float = 0.0
    channels: int = 0  # the load's channels, for the budget it had


def budget_line(run: RunView) -> str | None:
    """How much of (a)'s budget the run's writes used: a bot that loses jobs with few 429s
    and a small share of the budget is holding its writes back, not being refused."""
    if not run.wall_s or not run.channels:
        return None
    spec = DEFAULT_SPECS[LimitModel.CHANNEL_WRITES]
    budget = run.channels * spec.limit / spec.per
    rate = run.figures.landed_writes / run.wall_s
    return (
        f"  landed message writes: {run.figures.landed_writes} in {run.wall_s:.0f} s "
        f"({rate:.1f}/s); (a) allows up to {budget:g}/s over {run.channels} channels "
        f"({rate / budget:.0%} used)"
    )


def _check(
    label: str, value: float | None, limit: float | None, unit: str = "", digits: int = 2
) -> str:
    def show(x: float) -> str:
        return f"{x:.{digits}f} {unit}".rstrip() if unit or x != int(x) else f"{x:.0f}"

    if value is None or limit is None:
        return f"  {label}: no figure - MISS"
    if value <= limit:
        return f"  {label}: {show(value)} (target <= {show(limit)}) PASS"
    over = value - limit
    share = f", {over / limit:.1%} over" if limit else ""
    return f"  {label}: {show(value)} (target <= {show(limit)}) MISS by {show(over)}{share}"


def _common(run: RunView) -> list[str]:
    f = run.figures
    return [
        _check("Discord 429s in the run", f.discord_429, MAX_429),
        _check("jobs lost", f.lost, 0),
    ]


def _busy(run: RunView, naive: RunView | None, floor: Floor) -> list[str]:
    f = run.figures
    p99 = percentile(f.completion_to_final(), 99)
    target = floor.sustained_p99 * FLOOR_MARGIN if floor.sustained_p99 is not None else None
    lines = [
        *_common(run),
        _check("write attempts per landed write", f.attempts_per_landed_write,
               MAX_ATTEMPTS_PER_LANDED, digits=3),
        _check("completion-to-final p99 within 25 % of the floor", p99, target, "s"),
    ]  # fmt: skip
    if naive is None:
        lines.append("  completion-to-final p99 below the naive client's: no naive run - MISS")
        lines.append("  CPU per job <= the naive client's: no naive run - MISS")
        return lines
    naive_p99 = percentile(naive.figures.completion_to_final(), 99)
    lines.append(_check("completion-to-final p99 <= the naive client's", p99, naive_p99, "s"))
    lines.append(_check("CPU per job <= the naive client's", run.cpu_per_job,
                        naive.cpu_per_job, "s", digits=4))  # fmt: skip
    return lines


def _many(run: RunView, naive: RunView | None, floor: Floor) -> list[str]:
    f = run.figures
    return [
        *_common(run),
        _check("completion-to-final p99", percentile(f.completion_to_final(), 99),
               MANY_FINAL_P99_S, "s"),
        _check("state-to-edit p50", percentile(f.all_latencies(), 50), MANY_STATE_P50_S, "s"),
    ]  # fmt: skip


_JUDGES: dict[str, Callable[[RunView, RunView | None, Floor], list[str]]] = {
    "busy-channels": _busy,
    "many-servers": _many,
}


def floor_lines(floor: Floor) -> list[str]:
    spec = DEFAULT_SPECS[LimitModel.CHANNEL_WRITES]

    def s(x: float | None) -> str:
        return "-" if x is None else f"{x:.1f} s"

    return [
        f"floor: under (a) a channel takes {spec.limit} message writes per {spec.per:g} s, "
        f"one a second. Sending nothing but each channel's finals, each as soon as its job "
        f"ends and the bucket allows, the completion-to-final p99 of this run's own "
        f"completion times would be {s(floor.sustained_p99)} (the issue's floor: about 30 "
        f"finals need about 30 s, their jobs ended within about 10 s); a client sending a "
        f"whole window's {spec.limit} at once could reach {s(floor.burst_p99)}. Progress "
        "edits only add to it.",
    ]


def verdicts(
    scenario: str, ours: Sequence[RunView], naive: RunView | None, floor: Floor
) -> list[str]:
    """The issue's targets for `scenario`, judged for each of our runs."""
    judge = _JUDGES[scenario]
    lines = [f"Verdicts against issue 12's targets for {scenario}:"]
    if scenario == "busy-channels":
        lines += floor_lines(floor)
    for run in ours:
        lines.append(f"{run.name}:")
        lines += judge(run, naive, floor)
        if (budget := budget_line(run)) is not None:
            lines.append(budget)
    if not ours:
        lines.append("  no run of the bot to judge - MISS")
    return lines
