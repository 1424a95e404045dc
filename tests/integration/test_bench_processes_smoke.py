"""bench.load's --processes path (issue 17) on a tiny load, so that it cannot rot: six short
jobs in poll mode on one bot on SQLite, then on two bots sharing one PostgreSQL database of
a throwaway cluster (started by bench/pg.py with pg_stat_statements preloaded) as shards 0
and 1 of 2. Checks that both columns came out whole, that each process received its
guild's commands, and that PostgreSQL's own statement count was read. Figures are
reported, never asserted."""

from __future__ import annotations

from bench.load import BenchConfig, run_benchmark
from bench.workload import PROFILES
from tests.pg import ClusterUnavailable, find_pg_bin, skip_or_fail


async def test_two_processes_on_postgresql_beside_one_on_sqlite() -> None:
    try:
        find_pg_bin()
    except ClusterUnavailable as exc:
        skip_or_fail(str(exc))
    config = BenchConfig(
        jobs=6,
        burst=0,
        ramp_s=1.0,
        modes=("poll",),
        naive=False,
        profile=PROFILES["tiny"],
        grace_s=20.0,
        channels=2,
        guilds=2,
        processes=2,
        bot_env={
            "MJ_POLL_INTERVAL_S": "0.3",
            "MJ_POLL_MAX_INTERVAL_S": "0.6",
            "DISCORD_EDIT_INTERVAL_S": "0.3",
        },
    )

    report = await run_benchmark(config, ["pytest", "test_bench_processes_smoke"])

    assert [run.name for run in report.runs] == ["poll", "poll-pg-x2"], report.text
    for run in report.runs:
        assert run.figures is not None, run.note
        assert run.figures.submitted == 6 and run.figures.lost == 0, report.text
        assert len(run.figures.completion_to_final()) == 6, report.text
    single, multi = report.runs
    assert len(single.windows) == 1 and single.statements is None
    assert len(multi.windows) == 2 and all(w.peak_rss_kb > 0 for w in multi.windows)
    assert multi.commands == [3, 3], report.text  # a guild on each shard, a channel each
    assert multi.statements is not None and multi.statements.source == "pg_stat_statements"
    assert multi.statements.total > 0 and multi.statements.top, report.text
    for row in ("1 on SQLite", "2 on PostgreSQL", "PostgreSQL statements per job", " MB"):
        assert row in report.text
