"""Webhooks on any process, and cancels forwarded (issue 17): two real bot processes
(`python -m bot`) on one PostgreSQL, each with its own webhook receiver.

Jobs are started through process A, but the fake PiAPI posts their webhooks to process B
(A's WEBHOOK_PUBLIC_URL names B's receiver; both share WEBHOOK_SECRET, so both accept
the path and the header). B stores each post in the inbox and wakes A by NOTIFY; A
applies it and edits its messages. With A killed first, B takes the jobs over and
finishes them. A /job cancel that reaches B for a job A runs is cancelled by A.

Which process wrote to Discord is told by the Host header, as in test_multiprocess.py (A
writes to `localhost`, B to `127.0.0.1`). The safety poll (60 s, real time) never comes
due: the jobs finish on webhooks alone. Figures are printed (pytest -s).
"""

from __future__ import annotations

import asyncio
import re
import signal
import statistics
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.e2e.conftest import BotProcess, World
from tests.e2e.test_commands import private_text
from tests.e2e.test_imagine import is_final_grid
from tests.e2e.test_multiprocess import (
    JOBS,
    MEMBERS,
    db_rows,
    finals_written_by,
    owner_of,
    wait_owned_by,
    world,
    writes_from,
)
from tests.e2e.test_push import advance, free_port
from tests.fakes.discord.models import InteractionRecord, MessageRecord

__all__ = ["world"]  # test_multiprocess.py's world: each Discord request keeps its Host

SECRET = "a-webhook-secret-both-processes-share"


async def start_push_pair(world: World, pg_url: str) -> tuple[BotProcess, BotProcess, str]:
    """B first (its receiver gets every callback), then A, which takes the commands."""
    port_a, port_b = free_port(), free_port()
    b_url = f"http://127.0.0.1:{port_b}"
    common = {"DATABASE_URL": pg_url, "WEBHOOK_SECRET": SECRET, "WEBHOOK_PUBLIC_URL": b_url}
    b = await world.start_bot(
        **common, WEBHOOK_LISTEN=f"127.0.0.1:{port_b}", METRICS_LISTEN=f"127.0.0.1:{port_b}"
    )
    a = await world.start_bot(
        **common,
        WEBHOOK_LISTEN=f"127.0.0.1:{port_a}",
        DISCORD_API_BASE=world.env["DISCORD_API_BASE"].replace("127.0.0.1", "localhost"),
    )
    return a, b, b_url


async def start_jobs(
    world: World, pg_url: str, a: BotProcess, b_url: str
) -> list[InteractionRecord]:
    interactions = [
        await world.discord.slash("imagine", {"prompt": f"harbour {n}"}, user=MEMBERS[n])
        for n in range(JOBS)
    ]
    await world.discord.wait_for(
        lambda: len(world.piapi.created()) == JOBS, timeout=15, what="every job created"
    )
    for create in world.piapi.created():
        assert create.json["config"]["webhook_config"]["endpoint"].startswith(b_url)
    owners = await db_rows(pg_url, "SELECT DISTINCT owner FROM jobs")
    assert [o for (o,) in owners] == [owner_of(a, owners)]  # all run by A
    return interactions


async def run_to_the_end(world: World, interactions: list[InteractionRecord]) -> float:
    """Post every change to B until each job's completion went out, then wait for each
    message's final grid; returns the seconds from the completions' 200s to the last final."""
    for _ in range(12):
        await advance(world, 3, settle=0.0)
        if sum(completed(d.payload) for d in world.piapi.webhooks.deliveries) >= JOBS:
            break
        await asyncio.sleep(0.2)  # as test_push's rounds: the bots see each state
    posted = time.monotonic()
    for interaction in interactions:
        await world.wait_message(final_on(interaction), limit_s=30, what="the final grid")
    return time.monotonic() - posted


def completed(payload: Any) -> bool:
    data = payload.get("data") if isinstance(payload, dict) else None
    return isinstance(data, dict) and str(data.get("status", "")).lower() == "completed"


def final_on(interaction: InteractionRecord) -> Callable[[MessageRecord], bool]:
    return lambda m: m.id == interaction.original_message_id and is_final_grid(m)


async def check_once_each(
    world: World, pg_url: str, interactions: list[InteractionRecord], *, reads: int = 0
) -> None:
    """One create and one final each, every post answered 200, the inbox empty; `reads`:
    the task reads allowed (a job resumed after a takeover is read once)."""
    assert len(world.piapi.created()) == JOBS  # exactly one create per job
    deliveries = world.piapi.webhooks.deliveries
    assert deliveries and all(d.status == 200 for d in deliveries), deliveries
    task_reads = [r for r in world.piapi.requests if r.method == "GET" and "/task/" in r.path]
    assert len(task_reads) <= reads, [r.path for r in task_reads]
    finals = [m for m in world.channel_messages() if is_final_grid(m)]
    assert sorted(m.id for m in finals) == sorted(i.original_message_id or 0 for i in interactions)
    assert await db_rows(pg_url, "SELECT DISTINCT status FROM jobs") == [("completed",)]
    assert await db_rows(pg_url, "SELECT count(*) FROM webhook_inbox") == [(0,)]


async def webhook_outcomes(b_url: str) -> dict[str, int]:
    async with aiohttp.ClientSession() as session, session.get(f"{b_url}/metrics") as resp:
        text = await resp.text()
    found = re.findall(r'mjbot_webhooks_total\{outcome="(\w+)",provider="piapi"\} (\d+)', text)
    return {outcome: int(n) for outcome, n in found}


def inbox_latencies_ms(bot: BotProcess) -> list[float]:
    """Post stored at B → applied at A, as A logs it (the database's clock against A's)."""
    found = re.findall(r"forwarded by another process applied \(\w+, (\d+) ms", bot.log())
    return [float(ms) for ms in found]


async def test_webhooks_landing_on_another_process_finish_every_job_through_its_owner(
    world: World, pg_url: str
) -> None:
    a, b, b_url = await start_push_pair(world, pg_url)
    started = world.discord.requests[-1].seq  # both synced their commands
    interactions = await start_jobs(world, pg_url, a, b_url)
    last_final_s = await run_to_the_end(world, interactions)
    await check_once_each(world, pg_url, interactions)
    # A ran every job to its end and wrote every final; B wrote nothing to Discord.
    assert finals_written_by(world, "localhost") == JOBS
    assert writes_from(world, "127.0.0.1", started) == []
    assert "taken over" not in a.log() + b.log()
    outcomes = await webhook_outcomes(b_url)
    assert outcomes.get("forwarded") == len(world.piapi.webhooks.deliveries), outcomes
    latencies = inbox_latencies_ms(a)
    assert len(latencies) == len(world.piapi.webhooks.deliveries)
    print(
        f"\n{len(latencies)} webhooks through the inbox: stored at B -> applied at A "
        f"median {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms; "
        f"completions posted -> last final on Discord {last_final_s:.2f} s"
    )


async def test_webhooks_for_a_killed_owner_s_jobs_are_taken_over_and_finished(
    world: World, pg_url: str
) -> None:
    a, b, b_url = await start_push_pair(world, pg_url)
    interactions = await start_jobs(world, pg_url, a, b_url)
    world.kill(a)
    kill_seq = world.discord.requests[-1].seq
    killed = time.monotonic()
    await advance(world, 9, settle=0.0)  # the first callbacks after the kill land on B
    await wait_owned_by(pg_url, b, limit_s=10)
    took = time.monotonic() - killed
    last_final_s = await run_to_the_end(world, interactions)
    await check_once_each(world, pg_url, interactions, reads=JOBS)
    assert writes_from(world, "localhost", kill_seq) == []
    assert (
        finals_written_by(world, "127.0.0.1") == JOBS and finals_written_by(world, "localhost") == 0
    )
    assert len(re.findall(r"job \w+: taken over from", b.log())) == JOBS
    outcomes = await webhook_outcomes(b_url)
    print(
        f"\nkill -9, then callbacks to B: every job B's {took:.2f}s after the kill;"
        f" completions posted -> last final {last_final_s:.2f} s; B's webhook outcomes {outcomes}"
    )


async def owner_with_one_job(
    world: World, pg_url: str
) -> tuple[BotProcess, InteractionRecord, str]:
    """Process A (its Discord writes tagged by host) running one slow job it owns."""
    base_a = world.env["DISCORD_API_BASE"].replace("127.0.0.1", "localhost")
    a = await world.start_bot(DATABASE_URL=pg_url, DISCORD_API_BASE=base_a)
    pending = await world.discord.slash("imagine", {"prompt": "a slow one"})
    await world.discord.wait_for(lambda: len(world.piapi.created()) == 1, timeout=15)
    [(job_id, owner)] = await db_rows(pg_url, "SELECT id, owner FROM jobs")
    assert owner == owner_of(a, [(owner,)])
    return a, pending, str(job_id)


async def test_a_cancel_reaching_another_process_is_applied_by_the_job_s_owner(
    world: World, pg_url: str
) -> None:
    a, pending, job_id = await owner_with_one_job(world, pg_url)
    b = await world.start_bot(DATABASE_URL=pg_url)  # the newest: it takes the commands now
    before_b = world.discord.requests[-1].seq
    asked = time.monotonic()
    cancel = await world.discord.slash("job cancel", {"id": job_id})
    await private_text(world, cancel, r"is cancelled")
    answered_s = time.monotonic() - asked
    assert any(r.method == "DELETE" for r in world.piapi.requests)  # A asked the provider
    assert await db_rows(pg_url, "SELECT status FROM jobs") == [("cancelled",)]
    assert "cancel forwarded by another process applied" in a.log()
    await world.wait_message(
        lambda m: m.id == pending.original_message_id and "Cancelled" in m.content,
        what="the job's own message to say it was cancelled",
    )
    # The job's message was edited by its owner A; B answered only its own interaction.
    message_edits_by_b = [
        r
        for r in writes_from(world, "127.0.0.1", before_b)
        if str(pending.original_message_id) in r.path
    ]
    assert message_edits_by_b == [] and "taken over" not in b.log()
    print(f"\n/job cancel through B for A's job: answered 'cancelled' after {answered_s:.2f}s")


async def test_a_cancel_the_frozen_owner_cannot_confirm_is_recorded_and_applied_later(
    world: World, pg_url: str
) -> None:
    a, pending, job_id = await owner_with_one_job(world, pg_url)
    await world.start_bot(DATABASE_URL=pg_url)  # B, the newest: it takes the commands
    a.proc.send_signal(signal.SIGSTOP)  # alive, lease live, but answering nothing
    try:
        cancel = await world.discord.slash("job cancel", {"id": job_id})
        await private_text(world, cancel, r"did not confirm .* recorded and will be applied")
        assert await db_rows(pg_url, "SELECT status FROM jobs") == [("submitted",)]
        assert await db_rows(pg_url, "SELECT kind FROM webhook_inbox") == [("cancel",)]
    finally:
        a.proc.send_signal(signal.SIGCONT)
    # A wakes to the NOTIFY waiting on its connection and applies the recorded cancel.
    await world.wait_message(
        lambda m: m.id == pending.original_message_id and "Cancelled" in m.content,
        what="the job's own message to say it was cancelled",
    )
    assert await db_rows(pg_url, "SELECT status FROM jobs") == [("cancelled",)]
    assert await db_rows(pg_url, "SELECT count(*) FROM webhook_inbox") == [(0,)]
    assert "cancel forwarded by another process applied" in a.log()
