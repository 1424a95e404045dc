"""Live progress under Discord's shared rate limits (issue 12), end to end: the real bot
process against the fake Discord with the limit models of tests/fakes/discord/limits.py.

The fake's buckets run on the real clock (Discord's windows are wall time); the provider
runs on the test's FakeClock, so a job moves on only when the test says so.
"""

from __future__ import annotations

import asyncio
import itertools
import re

from tests.e2e.conftest import World
from tests.e2e.test_imagine import is_final_grid
from tests.fakes.discord import BucketSpec, InteractionRecord, LimitModel
from tests.fakes.discord.models import MessageRecord

USERS = ("tester", "artist", "other", "owner", "admin")
PERCENT = re.compile(r"\(?(\d{1,3})%")


async def _imagine_many(world: World, count: int) -> list[InteractionRecord]:
    """`count` /imagine in one channel within about a second, from five members."""
    records = []
    for n in range(count):
        records.append(
            await world.discord.slash(
                "imagine", {"prompt": f"a lighthouse, study {n}"}, user=USERS[n % len(USERS)]
            )
        )
        await asyncio.sleep(0.05)
    await world.discord.wait_for(
        lambda: all(r.responded for r in records), timeout=10, what="every acknowledgement"
    )
    assert all(r.response_type == 5 for r in records)
    return records


def _message(world: World, record: InteractionRecord) -> MessageRecord | None:
    if record.original_message_id is None:
        return None
    return world.discord.messages.get(record.original_message_id)


def _finals(world: World, records: list[InteractionRecord]) -> int:
    return sum(1 for r in records if (m := _message(world, r)) is not None and is_final_grid(m))


async def _run_until_final(
    world: World, records: list[InteractionRecord], *, step_s: float, settle_s: float, rounds: int
) -> None:
    for _ in range(rounds):
        if _finals(world, records) == len(records):
            return
        await world.advance_piapi(step_s, settle=settle_s)
    await world.discord.wait_for(
        lambda: _finals(world, records) == len(records),
        timeout=30,
        what="every final",
    )


def _versions(world: World, message: MessageRecord) -> list[str]:
    return [str(v.get("content") or "") for v in message.history] + [message.content]


async def test_ten_jobs_in_one_channel_under_the_shared_channel_bucket(world: World) -> None:
    """(a): 5 writes per 5 s per channel, shared by interaction-token and bot-token writes."""
    world.discord.set_limit_models([LimitModel.CHANNEL_WRITES])
    await world.start_bot(MJ_MAX_CONCURRENT_JOBS="10")
    records = await _imagine_many(world, 10)
    await _run_until_final(world, records, step_s=3, settle_s=0.3, rounds=40)

    assert _finals(world, records) == 10
    assert world.discord.count_429 <= 2, world.discord.count_429
    for record in records:
        message = _message(world, record)
        assert message is not None
        bodies = [*message.history, message.payload(world.discord.base_url)]
        # No write repeated: consecutive versions of a message always differ.
        assert all(a != b for a, b in itertools.pairwise(bodies))


async def test_twelve_jobs_show_progress_before_their_final_under_channel_and_guild_buckets(
    world: World,
) -> None:
    """(a) + (b) at the default account concurrency (3 at once): every job's message shows
    at least one progress state before its final, because finals and first states do not
    starve progress and turns go round-robin."""
    # The channel's window at half Discord's length (5 per 2.5 s, the same share per
    # message) keeps the test short; the guild's webhook bucket is Discord's 5 per 1 s.
    world.discord.set_limit_models(
        [LimitModel.CHANNEL_WRITES, LimitModel.GUILD_WEBHOOKS],
        specs={LimitModel.CHANNEL_WRITES: BucketSpec(LimitModel.CHANNEL_WRITES, 5, 2.5)},
    )
    await world.start_bot()
    records = await _imagine_many(world, 12)
    # Every "thinking…" reply is replaced first (12 writes at 2 per second) before the
    # provider, whose clock the test holds, moves any job on.
    await world.discord.wait_for(
        lambda: all((m := _message(world, r)) is not None and m.content for r in records),
        timeout=20,
        what="every job's first state",
    )
    await _run_until_final(world, records, step_s=3, settle_s=1.0, rounds=120)

    assert world.discord.count_429 <= 2, world.discord.count_429
    for record in records:
        message = _message(world, record)
        assert message is not None and is_final_grid(message)
        shown = [int(p) for text in _versions(world, message)[:-1] for p in PERCENT.findall(text)]
        assert any(0 < p < 100 for p in shown), _versions(world, message)


async def test_a_waiting_edit_replaced_by_newer_states_is_sent_once(world: World) -> None:
    """With the channel's bucket empty, the states that come while the message waits are
    not queued: one edit, with the newest of them, goes out when the bucket refills."""
    window_s = 4.0
    world.discord.set_limit_models(
        [LimitModel.CHANNEL_WRITES],
        specs={LimitModel.CHANNEL_WRITES: BucketSpec(LimitModel.CHANNEL_WRITES, 2, window_s)},
    )
    await world.start_bot()
    [record] = await _imagine_many(world, 1)
    await world.discord.wait_for(
        lambda: (m := _message(world, record)) is not None and bool(m.history or m.content),
        timeout=5,
        what="the first state",
    )
    # Pending → processing 0 %, 25 %, 50 %, 75 % (the fake's default profile), quickly.
    for _ in range(4):
        await world.advance_piapi(6)
    message = _message(world, record)
    assert message is not None
    seen_while_waiting = _versions(world, message)
    await asyncio.sleep(window_s + 1.0)
    versions = _versions(world, message)
    later = versions[len(seen_while_waiting) :]
    assert len(later) == 1, versions
    assert "75%" in later[0], versions
    # The states in between were never sent.
    assert not any("50%" in text for text in versions), versions
    assert world.discord.count_429 == 0
