"""Jobs waiting in the bot for a provider slot, served round-robin between members.

Each requester has their own FIFO; `pop()` takes the head of the next requester in
turn, so one member's burst never starves the others.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable


class FairQueue:
    def __init__(self) -> None:
        self._lanes: OrderedDict[str, deque[str]] = OrderedDict()
        self._owner: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._owner)

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._owner

    def push(self, job_id: str, requester: str, *, front: bool = False) -> None:
        if job_id in self._owner:
            return
        lane = self._lanes.get(requester)
        if lane is None:
            lane = self._lanes[requester] = deque()
        if front:
            lane.appendleft(job_id)
        else:
            lane.append(job_id)
        self._owner[job_id] = requester

    def pop(self) -> str | None:
        if not self._lanes:
            return None
        requester, lane = next(iter(self._lanes.items()))
        job_id = lane.popleft()
        del self._owner[job_id]
        # The requester goes to the back of the ring (or leaves it when their lane is empty).
        del self._lanes[requester]
        if lane:
            self._lanes[requester] = lane
        return job_id

    def pop_where(self, fits: Callable[[str], bool], *, limit: int = 1000) -> str | None:
        """The first job in round-robin order that `fits` (several provider accounts: the
        head of a lane may wait for a full account while a later job can go elsewhere).

        Each lane is looked at from its head; a member's job may pass their own earlier
        one, never another member's turn. At most `limit` jobs are looked at."""
        looked = 0
        for requester, lane in self._lanes.items():
            for job_id in lane:
                if looked >= limit:
                    return None
                looked += 1
                if fits(job_id):
                    self._take(requester, lane, job_id)
                    return job_id
        return None

    def _take(self, requester: str, lane: deque[str], job_id: str) -> None:
        lane.remove(job_id)
        del self._owner[job_id]
        # Served: the requester goes to the back of the ring (or leaves it when empty).
        del self._lanes[requester]
        if lane:
            self._lanes[requester] = lane

    def remove(self, job_id: str) -> bool:
        requester = self._owner.pop(job_id, None)
        if requester is None:
            return False
        lane = self._lanes[requester]
        lane.remove(job_id)
        if not lane:
            del self._lanes[requester]
        return True

    def order(self) -> list[str]:
        """Job ids in the order `pop()` would serve them."""
        lanes = [list(lane) for lane in self._lanes.values()]
        result: list[str] = []
        depth = 0
        while True:
            row = [lane[depth] for lane in lanes if depth < len(lane)]
            if not row:
                return result
            result.extend(row)
            depth += 1

    def positions(self) -> dict[str, int]:
        """1-based queue position of every waiting job."""
        return {job_id: i + 1 for i, job_id in enumerate(self.order())}
