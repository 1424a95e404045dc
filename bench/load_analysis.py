"""What the fakes recorded during a load run, turned into per-job figures.

Everything is counted at the fakes, never taken from the client under test:

- the provider states a job went through come from the fake PiAPI's task (its profile and
  creation time): pending, processing at each progress step, then the outcome. A "distinct
  provider state" — and, by the benchmark's definition, a "distinct visible state" — is a
  distinct (status, progress, number of previews) the fake exposed;
- provider requests are the fake PiAPI's records of POST/GET on /api/v1/task for the job;
- edits are the PATCH requests the fake Discord received for the job's message (any
  status); which state an accepted edit shows is read from its body (progress percent,
  "Waiting to start"/"Queued", an uploaded file or buttons for the final state);
- state-to-edit latency is, for every state after pending, the time from the moment the
  fake started exposing it to the arrival at the fake Discord of the first accepted edit
  that shows it or a later state. Both fakes run on the same wall clock. In push mode,
  the part of it spent before the webhook post leaves the fake (its look-up tick and its
  sending queue, in the harness process) is reported apart as the webhook post lag;
- completion-to-final is, for every completed job, the time from the fake provider's end of
  the task (its `ended_at`) to the arrival at the fake Discord of the first accepted write
  that shows the result;
- message writes are every POST/PATCH/DELETE the fake Discord received on a message route
  (bot-token `/channels/{id}/messages[/{mid}]`, interaction-token `/webhooks/{app}/{token}`
  and its `/messages/…`), whoever's job it was; landed writes are those answered 2xx.
  Interaction callbacks are not message writes: Discord exempts them from the buckets;
- 429s per model are the fake's own counters (tests/fakes/discord/limits.py) since the
  mark; the invalid-request peak is the fake's, over the run's whole world.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.limits import DiscordLimits, LimitModel
from tests.fakes.piapi import FakePiAPI, FakeTask

KEY_RE = re.compile(r"\bbj(\d{5})\b")
PERCENT_RE = re.compile(r"(\d{1,3})%")
TASK_PATH_RE = re.compile(r"^/api/v1/task/([^/]+)$")
TOKEN_PATH_RE = re.compile(r"^/webhooks/\d+/([^/]+)(?:/messages/(@original|\d+))?$")
CALLBACK_PATH_RE = re.compile(r"^/interactions/(\d+)/([^/]+)/callback$")
CHANNEL_MESSAGE_RE = re.compile(r"^/channels/\d+/messages/(\d+)$")
CHANNEL_POST_RE = re.compile(r"^/channels/(\d+)/messages$")
MESSAGE_WRITE_RE = re.compile(
    r"^/channels/\d+/messages(?:/\d+)?$|^/webhooks/\d+/[^/]+(?:/messages/[^/]+)?$"
)
WRITE_METHODS = frozenset({"POST", "PATCH", "DELETE"})

State = tuple[str, int, int]  # (status, progress, previews)


def key_in(text: str) -> str | None:
    found = KEY_RE.search(text or "")
    return f"bj{found.group(1)}" if found else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def timeline(task: FakeTask) -> list[tuple[float, State]]:
    """The distinct states a fake task exposes over its life, with the time each began."""
    p = task.profile
    times = [task.created_at, task.started_at]
    if p.progress_step_s > 0:
        k = 1
        while task.started_at + k * p.progress_step_s < task.ended_at:
            times.append(task.started_at + k * p.progress_step_s)
            k += 1
    times.append(task.ended_at)
    states: list[tuple[float, State]] = []
    for t in times:
        probe = t + 1e-3  # just past the boundary, clear of float rounding in the fake
        status = task.status(probe)
        if status == "processing":
            progress, previews = task.progress(probe)
        else:
            progress, previews = (100 if status == "completed" else 0), 0
        state = (status, progress, previews)
        if not states or states[-1][1] != state:
            states.append((t, state))
    return states


@dataclass
class JobFigures:
    key: str
    task_id: str | None = None
    creates: int = 0
    provider_requests: int = 0
    states: list[tuple[float, State]] = field(default_factory=list)
    ack_s: float | None = None
    interaction: bool = False  # the job was asked for with a slash command
    channel_id: int | None = None  # where it was asked for, or where its message was posted
    acknowledged: bool = False  # ... and the bot's callback was accepted (within 3 s)
    edits: int = 0
    accepted_edits: int = 0
    edits_429: int = 0
    shown: list[tuple[float, int]] = field(default_factory=list)  # (arrival, state index)
    final_at: float | None = None
    latencies: list[float] = field(default_factory=list)
    # Push mode: from a state's start at the fake to its webhook post leaving the fake.
    push_lags: list[float] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.final_at is not None

    @property
    def completed_at(self) -> float | None:
        """When the fake provider ended the task with a result."""
        if self.states and self.states[-1][1][0] == "completed":
            return self.states[-1][0]
        return None

    @property
    def completion_to_final(self) -> float | None:
        done = self.completed_at
        if done is None or self.final_at is None:
            return None
        return max(0.0, self.final_at - done)


@dataclass
class RunFigures:
    jobs: dict[str, JobFigures]
    discord_429: int
    provider_other_requests: int  # not tied to a job: account info, image downloads
    unknown_discord_routes: int
    message_writes: int = 0  # POST/PATCH/DELETE on message routes, any status
    landed_writes: int = 0  # ... of which answered 2xx
    # 429s the fake's limit models gave, by model letter; empty when none were installed.
    refused: dict[str, int] = field(default_factory=dict)
    invalid_peak: int | None = None  # most invalid requests in any 10 minutes

    @property
    def attempts_per_landed_write(self) -> float | None:
        return self.message_writes / self.landed_writes if self.landed_writes else None

    def completion_to_final(self) -> list[float]:
        return [x for j in self.values() if (x := j.completion_to_final) is not None]

    def values(self) -> Iterable[JobFigures]:
        return self.jobs.values()

    @property
    def submitted(self) -> int:
        return sum(1 for j in self.values() if j.task_id)

    @property
    def lost(self) -> int:
        return sum(1 for j in self.values() if not j.finished)

    @property
    def unacknowledged(self) -> int:
        """Jobs given as commands whose interaction was never answered in time (bot runs)."""
        return sum(1 for j in self.values() if j.interaction and not j.acknowledged)

    @property
    def duplicate_submissions(self) -> int:
        return sum(max(0, j.creates - 1) for j in self.values())

    def total(self, attr: str) -> float:
        return float(sum(getattr(j, attr) for j in self.values()))

    @property
    def total_states(self) -> int:
        return sum(len(j.states) for j in self.values())

    def all_latencies(self) -> list[float]:
        return [x for j in self.values() for x in j.latencies]

    def all_push_lags(self) -> list[float]:
        return [x for j in self.values() for x in j.push_lags]

    def acks(self) -> list[float]:
        return [j.ack_s for j in self.values() if j.ack_s is not None]

    def in_flight_at(self, t: float) -> int:
        return sum(1 for j in self.values() if j.states and j.states[0][0] <= t < j.states[-1][0])

    def peak_in_flight(self) -> tuple[int, float]:
        """Most provider tasks pending or processing at once, and when."""
        events = sorted(
            [(j.states[0][0], 1) for j in self.values() if j.states]
            + [(j.states[-1][0], -1) for j in self.values() if j.states]
        )
        best, at, now = 0, 0.0, 0
        for t, delta in events:
            now += delta
            if now > best:
                best, at = now, t
        return best, at

    def plateau(self, fraction: float = 0.9) -> tuple[float, float] | None:
        """First to last moment with at least `fraction` of the peak in flight."""
        peak, _ = self.peak_in_flight()
        if peak == 0:
            return None
        events = sorted(
            [(j.states[0][0], 1) for j in self.values() if j.states]
            + [(j.states[-1][0], -1) for j in self.values() if j.states]
        )
        start = end = None
        now = 0
        for t, delta in events:
            before = now
            now += delta
            if now >= fraction * peak and start is None:
                start = t
            if before >= fraction * peak > now:
                end = t
        if start is None or end is None or end <= start:
            return None
        return start, end


def shown_index(body: Any, has_files: bool, states: list[tuple[float, State]]) -> int | None:
    """Which of the job's states an edit shows, from what it sent; None if unreadable."""
    if not states:
        return None
    if not isinstance(body, dict):
        body = {}
    last = len(states) - 1
    if has_files or body.get("attachments") or any(body.get("components") or []):
        return last if states[last][1][0] in ("completed", "failed") else None
    content = str(body.get("content") or "")
    percent = PERCENT_RE.search(content.split("**")[-1])  # past the prompt, which is in bold
    if percent is not None:
        value = int(percent.group(1))
        best = None
        for i, (_, (status, progress, _)) in enumerate(states):
            if status == "processing" and progress <= value:
                best = i
        return best
    if "Waiting to start" in content or "Queued" in content:
        return 0
    if "Running" in content:
        return 1 if len(states) > 1 else 0
    return None


def _refused_since(
    limits: DiscordLimits | None, before: dict[LimitModel, int] | None
) -> dict[str, int]:
    if limits is None:
        return {}
    return {m.value: limits.refused[m] - (before or {}).get(m, 0) for m in LimitModel}


def count_message_writes(discord: FakeDiscord, since_seq: int) -> tuple[int, int]:
    """(message write requests after the mark, those answered 2xx)."""
    writes = landed = 0
    for record in discord.requests:
        wrote = record.method in WRITE_METHODS and MESSAGE_WRITE_RE.match(record.path)
        if record.seq > since_seq and wrote:
            writes += 1
            landed += 1 if 200 <= record.status < 300 else 0
    return writes, landed


def analyse(
    discord: FakeDiscord,
    piapi: FakePiAPI,
    keys: Sequence[str],
    *,
    since_seq: int = 0,
    since_piapi: int = 0,
    limits: DiscordLimits | None = None,
    refused_before: dict[LimitModel, int] | None = None,
) -> RunFigures:
    """Per-job figures for `keys` from everything both fakes recorded after the marks."""
    jobs = {k: JobFigures(k) for k in keys}
    by_task: dict[str, JobFigures] = {}
    other = 0
    for record in piapi.requests[since_piapi:]:
        if record.method == "POST" and record.path == "/api/v1/task":
            body = record.json if isinstance(record.json, dict) else {}
            prompt = str((body.get("input") or {}).get("prompt") or "")
            job = jobs.get(key_in(prompt) or "")
            if job is None:
                other += 1
                continue
            job.provider_requests += 1
            if record.task_id:
                job.creates += 1
                if job.task_id is None:
                    job.task_id = record.task_id
                    by_task[record.task_id] = job
            continue
        match = TASK_PATH_RE.match(record.path)
        job = by_task.get(match.group(1)) if match else None
        if job is None:
            other += 1
        else:
            job.provider_requests += 1
    for job in jobs.values():
        if job.task_id and job.task_id in piapi.tasks:
            job.states = timeline(piapi.tasks[job.task_id])
    # The fake posts the state a task is in when it looks (every tick); how long after that
    # state began the post left is the part of state-to-edit latency spent in the harness.
    for delivery in piapi.webhooks.deliveries:
        job = by_task.get(delivery.task_id)
        if job is None or not job.states or delivery.duplicate:
            continue
        index = bisect.bisect_right([began for began, _ in job.states], delivery.at) - 1
        if index >= 1:
            job.push_lags.append(max(0.0, delivery.at - job.states[index][0]))

    by_token: dict[str, JobFigures] = {}
    by_message: dict[int, JobFigures] = {}
    for interaction in discord.interactions.values():
        if interaction.type != 2 or interaction.data.get("name") != "imagine":
            continue
        options = {o.get("name"): o.get("value") for o in interaction.data.get("options") or []}
        job = jobs.get(key_in(str(options.get("prompt") or "")) or "")
        if job is None:
            continue
        by_token[interaction.token] = job
        job.interaction = True
        job.channel_id = interaction.channel_id
        if interaction.original_message_id:
            by_message[interaction.original_message_id] = job

    for record in discord.requests:
        if record.seq <= since_seq:
            continue
        path = record.path
        if (callback := CALLBACK_PATH_RE.match(path)) is not None:
            job = by_token.get(callback.group(2))
            interaction = discord.interactions.get(int(callback.group(1)))
            if job is not None and interaction is not None and job.ack_s is None:
                job.ack_s = record.at - interaction.created_at
            if job is not None and 200 <= record.status < 300:
                job.acknowledged = True
            continue
        job = None
        is_edit = record.method == "PATCH"
        if (token := TOKEN_PATH_RE.match(path)) is not None:
            job = by_token.get(token.group(1))
        elif (message := CHANNEL_MESSAGE_RE.match(path)) is not None:
            job = by_message.get(int(message.group(1)))
        elif record.method == "POST" and (post := CHANNEL_POST_RE.match(path)):
            body = record.body if isinstance(record.body, dict) else {}
            job = jobs.get(key_in(str(body.get("content") or "")) or "")
            if job is not None and job.channel_id is None:
                job.channel_id = int(post.group(1))
            reply = record.reply if isinstance(record.reply, dict) else {}
            if job is not None and record.status == 200 and str(reply.get("id", "")).isdigit():
                by_message[int(reply["id"])] = job
            is_edit = False  # a new message, not an edit; it can still carry the final
            if job is not None and record.status == 200 and record.files:
                index = shown_index(record.body, True, job.states)
                if index is not None:
                    job.shown.append((record.at, index))
            continue
        if job is None or not is_edit:
            continue
        job.edits += 1
        if record.status == 429:
            job.edits_429 += 1
        if not 200 <= record.status < 300:
            continue
        job.accepted_edits += 1
        index = shown_index(record.body, bool(record.files), job.states)
        if index is not None:
            job.shown.append((record.at, index))

    for job in jobs.values():
        if not job.states:
            continue
        last = len(job.states) - 1
        done = [at for at, index in job.shown if index == last]
        if done and job.states[last][1][0] == "completed":
            job.final_at = min(done)
        shown = sorted(job.shown)
        for i in range(1, len(job.states)):
            began = job.states[i][0]
            first = next((at for at, index in shown if index >= i), None)
            if first is not None:
                job.latencies.append(max(0.0, first - began))
    writes, landed = count_message_writes(discord, since_seq)
    return RunFigures(
        jobs=jobs,
        discord_429=sum(1 for r in discord.requests if r.seq > since_seq and r.status == 429),
        provider_other_requests=other,
        unknown_discord_routes=len(discord.unknown_routes),
        message_writes=writes,
        landed_writes=landed,
        refused=_refused_since(limits, refused_before),
        invalid_peak=limits.invalid_peak if limits else None,
    )
