"""kill -9 at many points of a job's life, then a restart (DESIGN.md invariants 1, 2 and 4).

One FakeDiscord and one FakePiAPI live through the whole test; only the bot process dies.
Every job must end visibly (completed, or failed/timed out with a reason), no prompt may be
created twice at the provider, and no final result may be posted as two messages.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import BotProcess, World, buttons_of, open_world
from tests.e2e.test_imagine import GRID_ROWS
from tests.fakes.discord.models import MessageRecord
from tests.fakes.piapi import Profile, RequestRecord

CREATE = "/api/v1/task"
# Short lives on the provider's clock: pending 1 s, then 25/50/75 % every second, done at 5 s.
QUICK = Profile(pending_s=1.0, processing_s=4.0, progress_step_s=1.0)
FAILED_LINE = re.compile(r"(❌ Failed|⏱️ Timed out)\S*\s*\S+")
KILL_POINTS = (
    "submit_in_flight",  # the create request reached the provider; its answer never came back
    "after_submit",  # the create answer left the provider; maybe stored, maybe not
    "between_poll_and_edit",  # a poll saw new progress; the edit may not have gone out
    "during_final_upload",  # the result image is being fetched for the final upload
    "after_final_edit",  # the final edit landed; its delivery may not be recorded yet
    "random",  # anywhere: a random provider time and a random real delay
)
BOT_ENV = {"MJ_MAX_CONCURRENT_JOBS": "20", "MJ_POLL_INTERVAL_S": "0.05"}


async def poll_until(
    predicate: Callable[[], object],
    *,
    limit_s: float = 10.0,
    what: str = "",
    world: World | None = None,
) -> object:
    """Bounded wait on state the fake provider exposes (it has no change event)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + limit_s
    while True:
        result = predicate()
        if result:
            return result
        if loop.time() > give_up:
            logs = "\n".join(b.log()[-3000:] for b in world.bots[-2:]) if world else ""
            raise AssertionError(f"timed out waiting for {what}\nbot logs:\n{logs}")
        await asyncio.sleep(0.005)


def creates_for(world: World, prompt: str) -> list[RequestRecord]:
    """Create requests the provider acted on for this prompt (answered or not)."""
    return [
        r for r in world.piapi.created() if (r.json or {}).get("input", {}).get("prompt") == prompt
    ]


def create_requests_for(world: World, prompt: str) -> list[RequestRecord]:
    """Every create request that arrived for this prompt, whatever became of it."""
    return [
        r
        for r in world.piapi.requests
        if r.method == "POST"
        and r.path == CREATE
        and (r.json or {}).get("input", {}).get("prompt") == prompt
    ]


def is_final_grid(m: MessageRecord) -> bool:
    return bool(m.attachments) and buttons_of(m) == GRID_ROWS


def is_failure(m: MessageRecord) -> bool:
    return FAILED_LINE.search(m.content) is not None


def messages_for(world: World, prompt: str) -> list[MessageRecord]:
    return [m for m in world.channel_messages() if prompt in m.content]


def outcome(world: World, prompt: str) -> str:
    shown = messages_for(world, prompt)
    finals = [m for m in shown if is_final_grid(m)]
    failures = [m for m in shown if is_failure(m)]
    if len(creates_for(world, prompt)) > 1 or len(finals) > 1 or (finals and failures):
        return "duplicated"
    if finals:
        return "completed"
    if failures:
        return "failed_with_reason"
    return "lost"


@dataclass
class Cycle:
    point: str
    prompt: str


class KillRun:
    def __init__(self, world: World, rng: random.Random) -> None:
        self.world = world
        self.rng = rng
        self.bot: BotProcess | None = None

    async def restart(self) -> None:
        first = self.bot is None
        self.bot = await self.world.start_bot(**BOT_ENV)
        if first:
            # Jobs left running by earlier kills must not hit the member's at-once limit.
            limits = await self.world.discord.slash(
                "settings limits",
                {"at_once": 1000, "per_day": 100000, "fast_per_day": 100000},
                user="admin",
            )
            await self.world.discord.wait_for(lambda: limits.responded, timeout=10)
            assert "Saved" in str(limits.response_data), limits.response_data

    def kill(self) -> None:
        assert self.bot is not None
        self.world.kill(self.bot)

    async def run_cycle(self, index: int, point: str) -> Cycle:
        world = self.world
        prompt = f"kill point {index} {point.replace('_', ' ')}"
        if point == "submit_in_flight":
            # The provider holds the reply; the task is created when the hold ends.
            world.piapi.inject("POST", CREATE, "timeout", delay=0.3)
        interaction = await world.discord.slash("imagine", {"prompt": prompt})
        await world.discord.wait_for(lambda: interaction.responded, timeout=10, what="the ack")
        assert interaction.response_type == 5, interaction.response_data  # the job started
        if point == "submit_in_flight":
            await poll_until(
                lambda: any(r.fault == "timeout" for r in create_requests_for(world, prompt)),
                what="the held create request",
            )
        elif point == "after_submit":
            await poll_until(
                lambda: any(r.status == 200 for r in create_requests_for(world, prompt)),
                what="the create answer",
                world=world,
            )
        elif point == "between_poll_and_edit":
            [create] = await self._created(prompt)
            world.clock.advance(1.0 + self.rng.choice([0.5, 1.5, 2.5]))
            now = world.clock.time()
            path = f"{CREATE}/{create.task_id}"
            await poll_until(
                lambda: any(
                    r.method == "GET" and r.path == path and r.at >= now and r.status == 200
                    for r in world.piapi.requests[-200:]
                ),
                what="a poll that saw new progress",
            )
        elif point == "during_final_upload":
            [create] = await self._created(prompt)
            world.clock.advance(10)
            image = f"/mj/{create.task_id}.png"
            await poll_until(
                lambda: any(r.path == image for r in world.piapi.requests[-200:]),
                what="the result download",
            )
        elif point == "after_final_edit":
            await self._created(prompt)
            world.clock.advance(10)
            await world.wait_message(
                lambda m: prompt in m.content and is_final_grid(m), what="the final grid"
            )
        else:
            world.clock.advance(self.rng.uniform(0, 6))
            await asyncio.sleep(self.rng.uniform(0, 0.4))
        self.kill()
        await self.restart()
        return Cycle(point, prompt)

    async def _created(self, prompt: str) -> list[RequestRecord]:
        await poll_until(
            lambda: creates_for(self.world, prompt),
            what=f"the create of {prompt!r}",
            world=self.world,
        )
        return creates_for(self.world, prompt)


async def finish_all(world: World, cycles: list[Cycle], *, limit_s: float = 60) -> None:
    """Move the provider past every job's end and wait (bounded) until each shows an end."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + limit_s
    while loop.time() < give_up:
        world.clock.advance(10)
        if all(outcome(world, c.prompt) != "lost" for c in cycles):
            # Give a re-delivery after a restart its chance to show up as a duplicate.
            await asyncio.sleep(1.0)
            return
        await asyncio.sleep(0.25)


def table(cycles: list[Cycle], world: World) -> tuple[str, Counter[tuple[str, str]]]:
    counts: Counter[tuple[str, str]] = Counter()
    for c in cycles:
        counts[(c.point, outcome(world, c.prompt))] += 1
    columns = ("completed", "failed_with_reason", "lost", "duplicated")
    lines = [f"{'kill point':<24}{'runs':>5}" + "".join(f"{c:>20}" for c in columns)]
    for point in KILL_POINTS:
        runs = sum(1 for c in cycles if c.point == point)
        lines.append(
            f"{point:<24}{runs:>5}" + "".join(f"{counts[(point, col)]:>20}" for col in columns)
        )
    total = [sum(counts[(p, col)] for p in KILL_POINTS) for col in columns]
    lines.append(f"{'total':<24}{len(cycles):>5}" + "".join(f"{n:>20}" for n in total))
    return "\n".join(lines), counts


def _check(world: World, cycles: list[Cycle]) -> None:
    report, _ = table(cycles, world)
    print("\n" + report)
    problems = []
    for c in cycles:
        result = outcome(world, c.prompt)
        if result in ("lost", "duplicated"):
            shown = [
                (m.id, m.content[:80], bool(m.attachments)) for m in messages_for(world, c.prompt)
            ]
            problems.append((c.point, c.prompt, result, len(creates_for(world, c.prompt)), shown))
        # The provider never saw a second create for one prompt, whatever the outcome.
        assert len(create_requests_for(world, c.prompt)) <= 1, c
    logs = "\n".join(b.log()[-3000:] for b in world.bots[-2:])
    assert not problems, f"{problems}\n{logs}"


async def test_each_kill_point_once(tmp_path: Path) -> None:
    """Every kill point once, in order: the quick version of the randomised run below."""
    async with open_world(tmp_path) as world:
        world.piapi.default_profile = QUICK
        run = KillRun(world, random.Random(7))
        await run.restart()
        cycles = [await run.run_cycle(i, point) for i, point in enumerate(KILL_POINTS)]
        await finish_all(world, cycles)
        _check(world, cycles)
        # The job whose create answer was lost is failed, never sent again.
        held = next(c for c in cycles if c.point == "submit_in_flight")
        assert outcome(world, held.prompt) == "failed_with_reason"
        assert len(create_requests_for(world, held.prompt)) == 1


KILL_RUNS = int(os.environ.get("KILL_POINT_RUNS", "50"))


@pytest.mark.slow
async def test_randomised_kill_points(tmp_path: Path) -> None:
    seed = int(os.environ.get("KILL_POINT_SEED", random.SystemRandom().randrange(1 << 32)))
    print(f"\nkill-point seed: {seed} (rerun with KILL_POINT_SEED={seed})")
    rng = random.Random(seed)
    async with open_world(tmp_path) as world:
        world.piapi.default_profile = QUICK
        run = KillRun(world, rng)
        await run.restart()
        # Every point at least 5 times, the rest drawn at random; the order shuffled.
        points = [p for p in KILL_POINTS for _ in range(5)]
        points += [rng.choice(KILL_POINTS) for _ in range(max(0, KILL_RUNS - len(points)))]
        rng.shuffle(points)
        cycles: list[Cycle] = []
        for i, point in enumerate(points):
            cycles.append(await run.run_cycle(i, point))
        await finish_all(world, cycles, limit_s=45)
        print(f"seed {seed}: {len(cycles)} kills and restarts")
        _check(world, cycles)


async def _stored_job_id(db: Path, prompt: str) -> str | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT id FROM jobs WHERE json_extract(data, '$.operation.prompt') = ?", (prompt,)
        ).fetchone()
    return row[0] if row else None


async def test_kill_between_job_insert_and_delivery_claim_still_shows_the_end(
    tmp_path: Path,
) -> None:
    async with open_world(tmp_path) as world:
        world.piapi.default_profile = QUICK
        bot = await world.start_bot(**BOT_ENV)
        prompt = "a job without its delivery row"
        interaction = await world.discord.slash("imagine", {"prompt": prompt})
        await world.discord.wait_for(lambda: interaction.responded, timeout=10)
        await poll_until(lambda: creates_for(world, prompt), what="the create", world=world)
        world.kill(bot)
        # The state a kill -9 leaves when it lands between the two separate transactions.
        db = tmp_path / "bot.db"
        job_id = await _stored_job_id(db, prompt)
        assert job_id is not None
        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM deliveries WHERE job_id = ?", (job_id,))
        await world.start_bot(**BOT_ENV)
        world.clock.advance(10)
        # The command's own message shows how the job ended: its grid, or (when the kill
        # also caught the submission in flight) the reason it was not sent again.
        await world.wait_message(
            lambda m: (
                m.id == interaction.original_message_id and (is_final_grid(m) or is_failure(m))
            ),
            limit_s=8,
            what="the job's end on the command's message",
        )


async def test_a_kill_while_imagine_stores_its_job_leaves_nothing_thinking(
    tmp_path: Path,
) -> None:
    """/imagine stores its job before it acknowledges: a kill while the store waits leaves
    no public "thinking" message behind (Discord tells the member the bot did not answer),
    and a kill after the acknowledgement finds the job stored (the test above)."""
    async with open_world(tmp_path) as world:
        bot = await world.start_bot(**BOT_ENV)
        db = tmp_path / "bot.db"
        # Another writer holds the database: reads (prefs, policy) pass, the insert waits.
        blocker = sqlite3.connect(db, isolation_level=None, timeout=1)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            interaction = await world.discord.slash("imagine", {"prompt": "never stored"})
            await asyncio.sleep(0.5)  # the bot is now waiting for the write lock
            assert not interaction.responded, interaction.response_data  # no ack before the store
            world.kill(bot)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert await _stored_job_id(db, "never stored") is None
        await world.start_bot(**BOT_ENV)
        world.clock.advance(10)
        ok = await world.discord.slash("imagine", {"prompt": "stored after the restart"})
        await world.discord.wait_for(lambda: ok.responded, timeout=10, what="the next ack")
        assert ok.response_type == 5
        assert interaction.original_message_id is None
        assert not [
            m
            for m in world.discord.messages.values()
            if m.loading and m.id != ok.original_message_id
        ]
        assert not create_requests_for(world, "never stored")


async def test_a_slow_store_answers_privately_in_time_then_posts_the_job(
    tmp_path: Path,
) -> None:
    """The store is held past the 3-second window: the member hears privately at once
    (nothing public is left thinking), and the job gets its own message once stored."""
    async with open_world(tmp_path) as world:
        world.piapi.default_profile = QUICK
        await world.start_bot(**BOT_ENV)
        db = tmp_path / "bot.db"
        blocker = sqlite3.connect(db, isolation_level=None, timeout=1)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            interaction = await world.discord.slash("imagine", {"prompt": "a slow save"})
            await world.discord.wait_for(lambda: interaction.responded, timeout=10)
            assert interaction.response_type == 4, interaction.response_data
            data = interaction.response_data or {}
            assert data.get("flags", 0) & 64 and "taking longer" in data.get("content", "")
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await poll_until(lambda: creates_for(world, "a slow save"), what="the create", world=world)
        world.clock.advance(10)
        await world.wait_message(
            lambda m: "a slow save" in m.content and is_final_grid(m) and not m.ephemeral,
            what="the job's own message with its grid",
        )
