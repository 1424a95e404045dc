"""The load benchmark (bench/load.py) on a tiny load, so that it cannot rot.

It runs every phase the real benchmark runs — the acknowledgement burst, the bot in poll
mode (and push mode when the build has it) and the naive reference — with six short jobs
spread over three channels in two guilds under Discord's (a)+(b)+(d) limits, and checks
that a whole table came out, with issue 12's figures, and that no job was lost. Timings,
CPU, memory and 429 counts are reported by the benchmark, never asserted here. The pure
parts it judges by (the floor of busy-channels, the verdicts, the guilds' layout) are
checked on figures made by hand.
"""

from __future__ import annotations

import pytest

from bench.load import BenchConfig, build_guilds, push_support, run_benchmark
from bench.load_analysis import JobFigures, RunFigures
from bench.scenarios import Floor, RunView, final_floor, verdicts
from bench.workload import PROFILES
from tests.fakes.discord.models import FakeUser, default_users

ROWS = (
    "jobs lost (no final message)",
    "CPU seconds per job",
    "peak RSS (VmHWM)",
    "provider requests per state",
    "edits per visible state",
    "Discord edits per job",
    "state-to-edit latency p50",
    "state-to-edit latency p99",
    "Discord 429s received",
    "  429s from (a) channel writes",
    "  429s from (b) guild webhooks",
    "  429s from (d) global",
    "message write attempts per landed write",
    "invalid requests per 10 min, peak",
    "completion-to-final p50",
    "completion-to-final p99",
)


async def test_the_benchmark_produces_a_complete_table_and_loses_no_job() -> None:
    config = BenchConfig(
        jobs=6,
        burst=5,
        burst_window_s=0.5,
        ramp_s=1.0,
        profile=PROFILES["tiny"],
        naive_poll_s=0.3,
        grace_s=20.0,
        channels=3,
        guilds=2,
        limits="abd",
        scenario="busy-channels",  # its verdicts on this load: printed, not asserted
        bot_env={
            "MJ_POLL_INTERVAL_S": "0.3",
            "MJ_POLL_MAX_INTERVAL_S": "0.6",
            "DISCORD_EDIT_INTERVAL_S": "0.3",
        },
    )

    report = await run_benchmark(config, ["pytest", "test_bench_smoke"])

    assert report.ack is not None
    assert len(report.ack.acks()) == 5, report.text
    expected = ["poll", "push", "naive"] if push_support() is None else ["poll", "naive"]
    assert [run.name for run in report.runs] == expected, report.text
    for run in report.runs:
        figures = run.figures
        assert figures is not None, run.note
        assert figures.submitted == 6, report.text
        assert figures.lost == 0, report.text
        assert figures.total_states > 0, report.text
        # Issue 12's figures were measured, not left empty.
        assert figures.landed_writes > 0, report.text
        assert figures.message_writes >= figures.landed_writes, report.text
        assert sorted(figures.refused) == ["a", "b", "c", "d"], report.text
        assert figures.invalid_peak is not None, report.text
        assert len(figures.completion_to_final()) == 6, report.text
        # The jobs went round-robin over the three channels, for the naive client too.
        assert len({job.channel_id for job in figures.values()}) == 3, report.text
    assert "round-robin over 3 channel(s) in 2 guild(s)" in "\n".join(report.header)
    for row in ROWS:
        assert row in report.text
    assert "Phase A: acknowledgement latency" in report.text
    assert "Verdicts against issue 12's targets for busy-channels:" in report.text
    assert "completion-to-final p99 <= the naive client's" in report.text
    assert "landed message writes:" in report.text


def test_the_floor_is_what_one_write_a_second_per_channel_allows_finals_alone() -> None:
    # 30 jobs in one channel ending a third of a second apart, 30 more in another.
    jobs = {}
    channel_of = {}
    for n in range(60):
        key = f"bj{n:05d}"
        ended = 100.0 + (n % 30) / 3
        jobs[key] = JobFigures(key, states=[(ended - 22.0, ("pending", 0, 0)),
                                            (ended, ("completed", 100, 0))])  # fmt: skip
        channel_of[key] = n // 30
    figures = RunFigures(jobs=jobs, discord_429=0, provider_other_requests=0,
                         unknown_discord_routes=0)  # fmt: skip

    floor = final_floor(figures, channel_of)

    # One a second: the 30th final lands 29 s after the first job ended, 19.33 s after its own.
    assert floor.sustained_p99 == pytest.approx(29 - 29 / 3)
    # Five at a time, windows at 100, 105, ..., 125: the sixth window's first, the 26th job
    # (ended at 108.33), waits longest.
    assert floor.burst_p99 == pytest.approx(25 - 25 / 3)


def test_the_load_spreads_channels_round_robin_over_guilds_with_the_same_members() -> None:
    users = default_users()
    bot = FakeUser(1, "midjourney_bot", "Midjourney Bot", bot=True)

    guilds, places = build_guilds(users, bot, channels=10, guilds=4)

    assert len(guilds) == 4 and len(places) == 10
    assert [guilds.index(g) for g, _ in places] == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    ids = [c.id for g in guilds for c in g.channels] + [g.id for g in guilds]
    assert len(ids) == len(set(ids))
    for guild, chan in places:
        assert guild.channel(chan.id) is chan and chan.guild_id == guild.id and not chan.nsfw
        assert {m.user.username for m in guild.members} >= {"admin", "tester", "midjourney_bot"}
    assert places[0][1].name == "general" and places[4][1].name == "art"
    with pytest.raises(ValueError, match="guilds"):
        build_guilds(users, bot, channels=2, guilds=3)


def test_verdicts_say_pass_or_by_how_much_a_target_is_missed() -> None:
    def run(name: str, late: float, refused: int) -> RunView:
        job = JobFigures("bj00000", states=[(0.0, ("pending", 0, 0)),
                                            (10.0, ("completed", 100, 0))])  # fmt: skip
        job.final_at, job.latencies = 10.0 + late, [late]
        figures = RunFigures(jobs={job.key: job}, discord_429=refused,
                             provider_other_requests=0, unknown_discord_routes=0)  # fmt: skip
        figures.landed_writes = 30
        return RunView(name, figures, 0.01, wall_s=60.0, channels=4)

    floor = Floor(None, None)
    good = verdicts("many-servers", [run("poll", 1.0, 3)], None, floor)
    assert [line.endswith("PASS") for line in good[2:]] == [True] * 4 + [False], good
    bad = verdicts("many-servers", [run("poll", 8.0, 40)], None, floor)
    assert "  Discord 429s in the run: 40 (target <= 10) MISS by 30, 300.0% over" in bad
    assert "  completion-to-final p99: 8.00 s (target <= 5.00 s) MISS by 3.00 s, 60.0% over" in bad
    assert "  state-to-edit p50: 8.00 s (target <= 2.00 s) MISS by 6.00 s, 300.0% over" in bad
    budget = "  landed message writes: 30 in 60 s (0.5/s); (a) allows up to 4/s over 4 channels"
    assert budget + " (12% used)" in bad
