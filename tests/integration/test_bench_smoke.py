"""The load benchmark (bench/load.py) on a tiny load, so that it cannot rot.

It runs every phase the real benchmark runs — the acknowledgement burst, the bot in poll
mode (and push mode when the build has it) and the naive reference — with five short jobs,
and checks that a whole table came out and that no job was lost. Timings, CPU and memory
are reported by the benchmark, never asserted here.
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
    "state-to-edit latency p99",
    "Discord 429s received",
)


async def test_the_benchmark_produces_a_complete_table_and_loses_no_job() -> None:
    config = BenchConfig(
        jobs=5,
        burst=5,
        burst_window_s=0.5,
        ramp_s=1.0,
        profile=PROFILES["tiny"],
        naive_poll_s=0.3,
        grace_s=20.0,
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
        assert run.figures is not None, run.note
        assert run.figures.submitted == 5, report.text
        assert run.figures.lost == 0, report.text
        assert run.figures.total_states > 0, report.text
    for row in ROWS:
        assert row in report.text
    assert "Phase A: acknowledgement latency" in report.text
