"""The bucket ledger and the write queue on a fake clock: what they learn from Discord's
headers and whom they let write (issue 12)."""

from __future__ import annotations

import asyncio

from bot.discord.rate_limits import BucketLedger, Level, Ticket, Write
from bot.discord.write_queue import Priority, WriteQueue


def progress_rank() -> tuple[Priority, float]:
    return Priority.PROGRESS, 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _headers(bucket: str, limit: int, remaining: int, reset_after: float) -> dict[str, str]:
    return {
        "X-RateLimit-Bucket": bucket,
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Scope": "user",
    }


def _token_write(ledger: BucketLedger, token: str, channel: int, guild: int) -> Write:
    ledger.register_interaction(token, channel, guild)
    return ledger.webhook_write("PATCH", token, message=True)


def test_classify_names_the_route_and_its_resources() -> None:
    ledger = BucketLedger()
    ledger.register_interaction("tok", 11, 22)
    edit = ledger.classify("PATCH", "http://x/api/v10/webhooks/1/tok/messages/@original")
    assert edit is not None
    assert edit.route == "PATCH /webhooks/{app}/{token}/messages/{id}"
    assert (edit.major, edit.channel_id, edit.guild_id, edit.bot_token) == (
        "tok",
        "11",
        "22",
        False,
    )
    post = ledger.classify("POST", "http://x/api/v10/channels/11/messages")
    assert post is not None and post.route == "POST /channels/{id}/messages"
    assert post.guild_id == "22" and post.bot_token
    assert ledger.classify("POST", "http://x/api/v10/interactions/5/tok/callback") is None
    assert ledger.classify("GET", "http://x/gateway") is None


def test_a_bucket_shared_by_tokens_of_one_channel_is_widened_to_the_channel() -> None:
    clock = Clock()
    ledger = BucketLedger(clock=clock)
    first = _token_write(ledger, "t1", 11, 22)
    ledger.settle(ledger.reserve(first), 200, _headers("chan", 5, 4, 5.0))
    assert ledger.describe() == {"chan": "own"}
    second = _token_write(ledger, "t2", 11, 22)
    # Its first write finds two used: t1's and its own. Only the channel explains it.
    ledger.settle(ledger.reserve(second), 200, _headers("chan", 5, 3, 4.9))
    assert ledger.describe() == {"chan": "channel"}
    # From now on both tokens count down one channel's bucket.
    for token in ("t3", "t4", "t5"):
        write = _token_write(ledger, token, 11, 22)
        assert ledger.wait_for(write)[0] == 0
        ledger.reserve(write)
    wait, blocking = ledger.wait_for(_token_write(ledger, "t6", 11, 22))
    assert wait is not None and 4.0 < wait <= 5.6  # a window and the way there
    assert blocking == (("chan", "c11"),)
    # Another channel of the same guild has its own.
    assert ledger.wait_for(_token_write(ledger, "t7", 12, 22))[0] == 0


def test_a_bucket_used_across_channels_of_a_guild_is_widened_to_the_guild() -> None:
    clock = Clock()
    ledger = BucketLedger(clock=clock)
    a = _token_write(ledger, "a", 11, 22)
    b = _token_write(ledger, "b", 12, 22)
    ledger.settle(ledger.reserve(a), 200, _headers("hooks", 5, 4, 1.0))
    ledger.settle(ledger.reserve(b), 200, _headers("hooks", 5, 3, 0.95))
    assert ledger.describe()["hooks"] == Level.GUILD.name.lower()


def test_no_widening_when_our_own_writes_explain_the_count() -> None:
    clock = Clock()
    ledger = BucketLedger(clock=clock)
    write = _token_write(ledger, "t1", 11, 22)
    for remaining in (4, 3, 2):
        ledger.settle(ledger.reserve(write), 200, _headers("tok", 5, remaining, 2.0))
    assert ledger.describe() == {"tok": "own"}


def test_an_empty_bucket_holds_writes_until_it_resets_and_a_429_is_learned() -> None:
    clock = Clock()
    seen: list[str] = []
    ledger = BucketLedger(clock=clock, on_rate_limited=seen.append)
    write = ledger.channel_write("PATCH", "11", message=True)
    ledger.settle(ledger.reserve(write), 200, _headers("chan", 5, 0, 3.0))
    assert ledger.wait_for(write)[0] == 3.0
    clock.now += 3.0
    assert ledger.wait_for(write)[0] == 0
    ticket = ledger.reserve(write)
    ledger.settle(ticket, 429, {**_headers("chan", 5, 0, 2.0), "X-RateLimit-Scope": "shared"})
    assert seen == ["shared"] and ledger.rate_limited == 1
    assert ledger.wait_for(write)[0] == 2.0


def test_released_room_is_given_back() -> None:
    clock = Clock()
    ledger = BucketLedger(clock=clock)
    write = ledger.channel_write("PATCH", "11", message=True)
    ledger.settle(ledger.reserve(write), 200, _headers("chan", 5, 1, 3.0))
    ticket = ledger.reserve(write)
    assert ledger.wait_for(write)[0] == 3.0
    ledger.release(ticket)
    assert ledger.wait_for(write)[0] == 0


def test_the_global_limit_holds_bot_token_routes_only() -> None:
    clock = Clock()
    ledger = BucketLedger(clock=clock, global_per_s=3)
    bot_route = ledger.classify("GET", "http://x/api/v10/channels/11/messages/12/x")
    assert bot_route is not None
    ledger.settle(ledger.reserve(bot_route), 200, {})  # an answer without bucket headers
    for _ in range(2):
        ledger.reserve(bot_route)
    assert ledger.wait_for(bot_route) == (1.25, (("global", "*"),))  # a second and the way
    token_route = _token_write(ledger, "t", 11, 22)
    assert ledger.wait_for(token_route)[0] == 0
    clock.now += 1.25
    assert ledger.wait_for(bot_route)[0] == 0


def test_an_unknown_route_sends_one_probe_until_its_first_answer() -> None:
    ledger = BucketLedger(clock=Clock())
    write = ledger.channel_write("POST", "11", message=False)
    ticket = ledger.reserve(write)
    assert ledger.wait_for(write) == (None, ())
    ledger.settle(ticket, 200, _headers("post", 5, 4, 5.0))
    assert ledger.wait_for(write)[0] == 0


async def test_turns_go_finals_first_then_round_robin_within_a_class() -> None:
    clock = Clock()
    ledger = BucketLedger(clock=clock)
    queue = WriteQueue(ledger)
    write = ledger.channel_write("PATCH", "11", message=True)
    ledger.settle(ledger.reserve(write), 200, _headers("chan", 5, 0, 5.0))
    order: list[str] = []

    async def ask(name: str, priority: Priority, last_write: float = 0.0) -> None:
        ticket = await queue.turn(name, lambda: (write,), lambda: (priority, last_write))
        order.append(name)
        ledger.settle(ticket, 200, _headers("chan", 5, 4, 5.0))

    # "old" wrote long ago, "recent" just now: among progress, the older goes first.
    tasks = [
        asyncio.create_task(ask("cosmetic", Priority.COSMETIC)),
        asyncio.create_task(ask("recent", Priority.PROGRESS, clock.now)),
        asyncio.create_task(ask("old", Priority.PROGRESS, clock.now - 100)),
        asyncio.create_task(ask("final", Priority.FINAL)),
    ]
    await asyncio.sleep(0)
    assert order == [] and queue.waiting() == 4
    clock.now += 5.0
    ledger._notify(frozenset())  # the bucket's reset time came: the queue looks again
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=2)
    assert order == ["final", "old", "recent", "cosmetic"]


async def test_a_new_turn_of_one_owner_replaces_its_waiting_one() -> None:
    clock = Clock()
    ledger = BucketLedger(clock=clock)
    queue = WriteQueue(ledger)
    write = ledger.channel_write("PATCH", "11", message=True)
    ledger.settle(ledger.reserve(write), 200, _headers("chan", 5, 0, 5.0))
    first = asyncio.create_task(queue.turn("job", lambda: (write,), progress_rank))
    await asyncio.sleep(0)
    second = asyncio.create_task(queue.turn("job", lambda: (write,), progress_rank))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert first.cancelled()
    assert queue.waiting() == 1
    clock.now += 5.0
    ledger._notify(frozenset())
    ticket = await asyncio.wait_for(second, timeout=2)
    assert ticket.keys == (("chan", "c11"),)


def test_busy_channels_of_one_guild_never_widen_a_per_channel_bucket() -> None:
    """Four channels of a guild each fill their own 5-per-5 s bucket, and answers come
    late (the server's window lags ours): the bucket stays per channel, never wider."""
    clock = Clock()
    ledger = BucketLedger(clock=clock)
    for channel in ("11", "12", "13", "14"):
        ledger.register_channel(channel, "22")
    for window in range(3):
        for channel in ("11", "12", "13", "14"):
            write = ledger.channel_write("PATCH", channel, message=True)
            tickets = [ledger.reserve(write) for _ in range(5)]
            for n, ticket in enumerate(tickets):
                # Late answers: the server saw last window's last request in this one.
                used = min(5, n + 1 + (1 if window else 0))
                ledger.settle(ticket, 200, _headers("chan", 5, 5 - used, 4.9 - n * 0.01))
        clock.now += 5.0
    assert ledger.describe() == {"chan": "own"}
    assert ledger.widened == 0


async def test_a_full_first_choice_gives_the_turn_to_the_alternative() -> None:
    """An interaction's message whose guild webhook bucket is empty is edited by the bot's
    own channel edit, which that bucket does not limit."""
    clock = Clock()
    ledger = BucketLedger(clock=clock)
    queue = WriteQueue(ledger)
    by_token = _token_write(ledger, "t1", 11, 22)
    by_channel = ledger.channel_write("PATCH", "11", message=True)
    ledger.settle(ledger.reserve(by_token), 200, _headers("hooks", 5, 0, 1.0))
    ticket = await asyncio.wait_for(
        queue.turn("job", lambda: (by_token, by_channel), progress_rank),
        timeout=2,
    )
    assert ticket.write is by_channel


def test_greedy_writes_never_overfill_a_window_that_starts_when_discord_says() -> None:
    """Discord's window starts at the first request to arrive after the last one ended,
    which the client cannot see. Writing as fast as the ledger allows, with answers that
    come late and name the bucket only sometimes, no window ever holds more than 5."""
    import random

    rng = random.Random(7)
    clock = Clock()
    ledger = BucketLedger(clock=clock)
    write = ledger.channel_write("PATCH", "11", message=True)
    window_start, count, refused, sent = -1e9, 0, 0, 0
    pending: list[tuple[float, object, bool, float, int]] = []  # answers on the way back
    end = clock.now + 60.0
    while clock.now < end:
        wait, _ = ledger.wait_for(write)
        if wait == 0:
            ticket = ledger.reserve(write)
            sent += 1
            arrive = clock.now + rng.uniform(0.0, 0.08)
            if arrive - window_start >= 5.0:
                window_start, count = arrive, 0
            ok = count < 5
            count += ok
            refused += not ok
            left, reset_after = 5 - count, window_start + 5.0 - arrive
            pending.append((arrive + rng.uniform(0.0, 0.08), ticket, ok, reset_after, left))
        clock.now += 0.01
        for answer in [p for p in pending if p[0] <= clock.now]:
            pending.remove(answer)
            _, ticket, ok, reset_after, left = answer
            assert isinstance(ticket, Ticket)
            # Half the answers name another bucket of the route, which was tighter then
            # (not the first: a bucket no answer has named yet cannot be kept to).
            headers = (
                _headers("chan", 5, left, reset_after)
                if ticket.probe or rng.random() < 0.5
                else _headers("other", 50, 40, 1.0)
            )
            ledger.settle(ticket, 200 if ok else 429, headers)
    assert refused == 0
    assert sent >= 50  # and still close to 5 per window: 60 s allow at most 60


async def test_the_alternative_may_use_the_channel_bucket_its_first_choice_shares() -> None:
    """Token edits are in the channel's bucket and the guild's; channel edits only in the
    channel's. With the guild's empty and the channel's not, the channel edit goes."""
    clock = Clock()
    ledger = BucketLedger(clock=clock)
    queue = WriteQueue(ledger)
    by_token = _token_write(ledger, "t1", 11, 22)
    by_channel = ledger.channel_write("PATCH", "11", message=True)
    ledger.settle(ledger.reserve(by_channel), 200, _headers("chan", 5, 4, 5.0))
    ledger.settle(ledger.reserve(by_token), 200, _headers("chan", 5, 3, 4.9))
    ledger.settle(ledger.reserve(by_token), 200, _headers("hooks", 5, 0, 1.0))
    assert {b for b, _ in ledger.keys(by_token)} == {"chan", "hooks"}
    assert ledger.wait_for(by_token)[0] > 0
    ticket = await asyncio.wait_for(
        queue.turn("job", lambda: (by_token, by_channel), progress_rank), timeout=2
    )
    assert ticket.write is by_channel


async def test_writes_waiting_are_counted_per_bucket_for_metrics() -> None:
    clock = Clock()
    ledger = BucketLedger(clock=clock)
    queue = WriteQueue(ledger)
    write = ledger.channel_write("PATCH", "11", message=True)
    ledger.settle(ledger.reserve(write), 200, _headers("chan", 5, 0, 5.0))
    waiting = [
        asyncio.create_task(queue.turn(n, lambda: (write,), progress_rank)) for n in range(3)
    ]
    await asyncio.sleep(0)
    assert queue.waiting_by_bucket() == {"chan": 3}
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    assert queue.waiting_by_bucket() == {}


def test_quiet_resources_are_forgotten() -> None:
    from bot.discord import rate_limits

    clock = Clock()
    ledger = BucketLedger(clock=clock)
    for n in range(rate_limits.PRUNE_EVERY):
        write = _token_write(ledger, f"token-{n}", 11, 22)
        ledger.settle(ledger.reserve(write), 200, _headers("tok", 5, 4, 2.0))
    assert len(ledger._states) >= 1
    clock.now += 60.0
    late = _token_write(ledger, "late", 11, 22)
    for _ in range(rate_limits.PRUNE_EVERY):
        ledger.reserve(late)
    assert list(ledger._states) == [("tok", "mlate")]


def test_a_429_leaves_more_room_for_the_way_to_discord() -> None:
    clock = Clock()
    ledger = BucketLedger(clock=clock)
    write = ledger.channel_write("PATCH", "11", message=True)
    ledger.settle(ledger.reserve(write), 200, _headers("chan", 5, 4, 5.0))
    before = ledger._span(ledger._buckets["chan"])
    ledger.settle(ledger.reserve(write), 429, _headers("chan", 5, 0, 4.0))
    after = ledger._span(ledger._buckets["chan"])
    assert after > before
    for _ in range(10):
        ledger.settle(ledger.reserve(write), 429, _headers("chan", 5, 0, 4.0))
    assert ledger._span(ledger._buckets["chan"]) <= 5.0 * 1.2 + 0.125 + 1e-9
