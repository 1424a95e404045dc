from __future__ import annotations

from bot.engine.fair_queue import FairQueue


def test_round_robin_between_requesters() -> None:
    q = FairQueue()
    for member in ("a", "b", "c"):
        for n in range(3):
            q.push(f"{member}{n}", member)
    assert q.order() == ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]
    served = [q.pop() for _ in range(9)]
    assert served == ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]
    assert q.pop() is None


def test_positions_follow_removals_and_late_arrivals() -> None:
    q = FairQueue()
    for n in range(3):
        q.push(f"a{n}", "a")
    q.push("b0", "b")
    assert q.positions() == {"a0": 1, "b0": 2, "a1": 3, "a2": 4}
    assert q.remove("a0")
    assert not q.remove("missing")
    assert q.positions() == {"a1": 1, "b0": 2, "a2": 3}
    assert q.pop() == "a1"
    q.push("c0", "c")
    assert q.order() == ["b0", "a2", "c0"]  # a newcomer joins the end of the ring


def test_push_front_keeps_the_job_first_in_its_lane() -> None:
    q = FairQueue()
    q.push("a1", "a")
    q.push("a0", "a", front=True)
    q.push("a0", "a")  # already queued: ignored
    assert q.order() == ["a0", "a1"]
    assert len(q) == 2
