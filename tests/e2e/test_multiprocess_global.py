"""Discord's global limit is per bot, shared by all its processes (issue 17 follow-up).

Two real bot processes (`python -m bot`) on one PostgreSQL, shards 0 and 1 of 2, against the
fake Discord with its limits on as the load benchmark installs them (bench/discord_limits.py:
(a) 5 per 5 s per channel, (b) 5 per 1 s per guild for interaction-token writes, (d) the
global 50 per second for bot-token routes, interaction routes exempt). A burst of jobs in
many channels of many guilds wants more writes than the guilds' interaction buckets carry,
so each process edits by channel (a bot-token route) as fast as the global limit lets it.

With the share on (the default) each process paces at floor(50 x 0.96 / 2) = 24/s: the fake
refuses no request for the global limit. With DISCORD_GLOBAL_SHARE=false each paces as if
alone (50/s) and the two together are refused: the same burst shows global 429s, so this
test can fail. The harness is bench.load's (its world, its bot processes, its figures); the
figures are printed (pytest -s).
"""

from __future__ import annotations

from dataclasses import replace

from bench.load import BenchConfig, RunResult, phase_processes
from bench.pg import PgServer
from bench.workload import PROFILES
from tests.fakes.discord.limits import LimitModel

GLOBAL = LimitModel.GLOBAL.value
CONFIG = BenchConfig(
    jobs=400,
    burst=0,
    ramp_s=4.0,
    modes=("poll",),
    naive=False,
    profile=PROFILES["short"],
    grace_s=60.0,
    channels=160,
    guilds=16,  # 8 a shard: each process takes the commands of its own guilds
    limits="abd",
    processes=2,
    bot_env={
        "MJ_POLL_INTERVAL_S": "0.5",
        "MJ_POLL_MAX_INTERVAL_S": "1.0",
        "DISCORD_EDIT_INTERVAL_S": "0.5",
    },
)


async def burst(pg_url: str, *, share: bool) -> RunResult:
    env = {**CONFIG.bot_env, "DISCORD_GLOBAL_SHARE": "true" if share else "false"}
    run = await phase_processes(replace(CONFIG, bot_env=env), "poll", PgServer(pg_url))
    assert run.figures is not None, run.note
    return run


def describe(label: str, run: RunResult) -> str:
    figures = run.figures
    assert figures is not None
    refused = ", ".join(f"({k}) {v}" for k, v in sorted(figures.refused.items()))
    return (
        f"{label}: {figures.submitted} jobs, {figures.lost} lost, commands per process "
        f"{run.commands}; 429s at the fake: {refused}"
    )


async def test_two_processes_keep_to_the_bot_s_one_global_limit(pg_url: str) -> None:
    shared = await burst(pg_url, share=True)
    alone = await burst(pg_url, share=False)
    print("\n" + describe("share on", shared) + "\n" + describe("share off", alone))
    for run in (shared, alone):
        assert run.figures is not None
        assert run.figures.submitted == CONFIG.jobs and run.figures.lost == 0, run.note
        assert all(n > 0 for n in run.commands), run.commands  # both processes had work
    assert shared.figures is not None and alone.figures is not None
    assert shared.figures.refused[GLOBAL] == 0
    assert alone.figures.refused[GLOBAL] > 0  # the same burst, each process as if alone
