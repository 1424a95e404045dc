"""Discord's session start limit as the fake models it (DISCORD_PROTOCOL.md §13).

`GET /gateway/bot` announces `max_concurrency`; Discord allows one IDENTIFY per bucket
(`shard_id % max_concurrency`) per 5 s for the whole bot, whichever process sends it. The
fake records every IDENTIFY with its time and bucket (`records`); with `enforce` on, one
that comes within 5 s of its bucket's previous is refused with op 9 (invalid session, not
resumable), as Discord answers an IDENTIFY sent too soon. Off by default, so tests that do
not look at spacing behave as before.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

IDENTIFY_INTERVAL_S = 5.0


@dataclass(frozen=True)
class IdentifyRecord:
    at: float  # the fake's clock
    shard: tuple[int, int] | None
    bucket: int
    too_soon: bool  # within 5 s of its bucket's previous admitted IDENTIFY
    refused: bool  # too soon, and the fake enforces the spacing


@dataclass
class IdentifySpacing:
    clock: Callable[[], float]
    max_concurrency: int = 1
    enforce: bool = False
    records: list[IdentifyRecord] = field(default_factory=list)

    def bucket_of(self, shard: tuple[int, int] | None) -> int:
        return (shard[0] if shard else 0) % max(1, self.max_concurrency)

    def admit(self, shard: tuple[int, int] | None) -> bool:
        """Record an IDENTIFY; False when it must be refused (too soon, enforcing)."""
        now = self.clock()
        bucket = self.bucket_of(shard)
        last = self.last_admitted(bucket)
        too_soon = last is not None and now - last < IDENTIFY_INTERVAL_S
        refused = too_soon and self.enforce
        self.records.append(IdentifyRecord(now, shard, bucket, too_soon, refused))
        return not refused

    def last_admitted(self, bucket: int) -> float | None:
        times = [r.at for r in self.records if r.bucket == bucket and not r.refused]
        return max(times) if times else None

    def gaps(self, bucket: int) -> list[float]:
        """Seconds between consecutive IDENTIFYs of `bucket`."""
        times = sorted(r.at for r in self.records if r.bucket == bucket)
        return [b - a for a, b in itertools.pairwise(times)]
