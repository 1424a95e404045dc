"""The load: which jobs, whose, where, and how each one unfolds at the fake provider.

The same seed gives the same jobs, so the bot and the naive client face the same load.
Every prompt carries a key (`bj00017`) by which the fakes' records are matched to jobs.
Jobs go round-robin over the load's channels (job n to channel n % channels), the same
rule for the bot and the naive client; which guild holds a channel is the world's affair
(bench/load.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tests.fakes.piapi import Profile

USERS = ("tester", "artist", "other", "owner", "admin")
DEFAULT_CHANNELS = 2  # the issue-6 load: #general and #art of one guild


@dataclass(frozen=True)
class ProfileRange:
    """Uniform ranges, in seconds, from which each job's life is drawn."""

    name: str
    pending_s: tuple[float, float]
    processing_s: tuple[float, float]
    step_s: tuple[float, float]

    def describe(self) -> str:
        def r(span: tuple[float, float]) -> str:
            return f"{span[0]:g}-{span[1]:g} s"

        return (
            f"{self.name}: pending {r(self.pending_s)}, processing {r(self.processing_s)}, "
            f"progress (with a new preview) every {r(self.step_s)}"
        )

    @property
    def longest_s(self) -> float:
        return self.pending_s[1] + self.processing_s[1]

    @property
    def shortest_s(self) -> float:
        return self.pending_s[0] + self.processing_s[0]


PROFILES = {
    # The profile: a few seconds pending, 20-60 s processing, progress every 3-5 s.
    "realistic": ProfileRange("realistic", (2.0, 5.0), (20.0, 60.0), (3.0, 5.0)),
    # For --quick smoke runs: the same shape, a quarter of the time.
    "short": ProfileRange("short", (1.0, 2.0), (6.0, 15.0), (1.5, 2.5)),
    # Issue 12's busy channels: every job lives exactly as long, so the jobs of a channel,
    # started over the 10 s ramp, also finish within 10 s of each other.
    "busy": ProfileRange("busy", (2.0, 2.0), (20.0, 20.0), (3.0, 5.0)),
    # For the test suite: a few seconds in all.
    "tiny": ProfileRange("tiny", (0.3, 0.6), (1.5, 2.5), (0.5, 0.8)),
}


@dataclass(frozen=True)
class JobSpec:
    n: int
    key: str
    prompt: str
    user: str
    channel: int  # index into the load's channels, 0 .. channels-1
    profile: Profile


def job_key(n: int) -> str:
    return f"bj{n:05d}"


def prompt_for(n: int) -> str:
    """The prompt of job n, for the bot and the naive client alike."""
    return f"a lighthouse at dusk, study {job_key(n)}"


def make_jobs(
    count: int,
    profile: ProfileRange,
    seed: int,
    *,
    first: int = 0,
    channels: int = DEFAULT_CHANNELS,
) -> list[JobSpec]:
    rng = random.Random(f"{seed}:{profile.name}:{first}")
    jobs = []
    for n in range(first, first + count):
        life = Profile(
            pending_s=round(rng.uniform(*profile.pending_s), 3),
            processing_s=round(rng.uniform(*profile.processing_s), 3),
            progress_step_s=round(rng.uniform(*profile.step_s), 3),
        )
        jobs.append(
            JobSpec(
                n=n,
                key=job_key(n),
                prompt=prompt_for(n),
                user=USERS[n % len(USERS)],
                channel=n % channels,
                profile=life,
            )
        )
    return jobs
