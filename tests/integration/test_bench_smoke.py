"""The load benchmark (bench/load.py) on a tiny load, so that it cannot rot.

It runs every phase the real benchmark runs — the acknowledgement burst, the bot in poll
mode (and push mode when the build has it) and the naive reference — with six short jobs
spread over three channels in two guilds under Discord's (a)+(b)+(d) limits, and checks
that a whole table came out, with issue 12's figures, and that no job was lost. Timings,
CPU, memory and 429 counts are reported by the benchmark, never asserted here.
"""

from __future__ import annotations

from bench.load import BenchConfig, push_support, run_benchmark
from bench.workload import PROFILES

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
