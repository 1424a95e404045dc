"""A tiny metrics registry rendered in Prometheus' text format (version 0.0.4).

No dependency and no global state: the app creates one `Metrics` and hands it to the parts
that count (engine, publisher, webhook receiver). Counters and histograms are updated in
place; gauges may instead be read at render time through a callback, so that values the
engine already knows (jobs by state, queue length) are never kept twice.

    metrics = Metrics()
    metrics.webhooks.inc(provider="piapi", outcome="accepted")
    text = metrics.render()
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

LabelKey = tuple[tuple[str, str], ...]

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _key(labels: Mapping[str, object]) -> LabelKey:
    return tuple(sorted((k, str(v)) for k, v in labels.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels_text(key: LabelKey, extra: Iterable[tuple[str, str]] = ()) -> str:
    pairs = [*key, *extra]
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        if not _NAME.match(name):
            raise ValueError(f"bad metric name {name!r}")
        for label in labelnames:
            if not _LABEL.match(label) or label == "le":
                raise ValueError(f"bad label name {label!r}")
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)

    def _check(self, labels: Mapping[str, object]) -> LabelKey:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(labels)}")
        return _key(labels)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {_escape(self.help)}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    """A total that only goes up: incremented in place, or read at render time from
    `source` when another part already keeps the count (the lease keeper's takeovers)."""

    kind = "counter"

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        source: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(name, help_text, labelnames)
        self._values: dict[LabelKey, float] = {}
        self.source = source

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._check(labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: object) -> float:
        return self._current().get(_key(labels), 0.0)

    def total(self) -> float:
        return sum(self._current().values())

    def _current(self) -> dict[LabelKey, float]:
        if self.source is None:
            return dict(self._values)
        return {(): float(self.source())}

    def samples(self) -> list[str]:
        values = self._current()
        if not values and not self.labelnames:
            return [f"{self.name} 0"]
        return [f"{self.name}{_labels_text(k)} {_number(v)}" for k, v in sorted(values.items())]


class Gauge(_Metric):
    """A value set in place, or read at render time from `source` ({labels: value})."""

    kind = "gauge"

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        source: Callable[[], Mapping[LabelKey, float] | float] | None = None,
    ) -> None:
        super().__init__(name, help_text, labelnames)
        self._values: dict[LabelKey, float] = {}
        self.source = source

    def set(self, value: float, **labels: object) -> None:
        self._values[self._check(labels)] = float(value)

    def value(self, **labels: object) -> float:
        return self._current().get(_key(labels), 0.0)

    def _current(self) -> dict[LabelKey, float]:
        if self.source is None:
            return dict(self._values)
        read = self.source()
        if isinstance(read, Mapping):
            return dict(read)
        return {(): float(read)}

    def samples(self) -> list[str]:
        values = self._current()
        if not values and not self.labelnames:
            return [f"{self.name} 0"]
        return [f"{self.name}{_labels_text(k)} {_number(v)}" for k, v in sorted(values.items())]


class Histogram(_Metric):
    """Cumulative buckets with fixed upper bounds, plus _sum and _count."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        super().__init__(name, help_text)
        bounds = sorted(float(b) for b in buckets)
        if not bounds or bounds != sorted(set(bounds)):
            raise ValueError("buckets must be distinct numbers")
        self.bounds = [b for b in bounds if not math.isinf(b)]
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        value = max(0.0, float(value))
        self.sum += value
        self.count += 1
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                return
        self.counts[-1] += 1

    def samples(self) -> list[str]:
        lines = []
        running = 0
        for bound, count in zip([*self.bounds, math.inf], self.counts, strict=True):
            running += count
            lines.append(f'{self.name}_bucket{{le="{_number(bound)}"}} {running}')
        lines.append(f"{self.name}_sum {_number(self.sum)}")
        lines.append(f"{self.name}_count {self.count}")
        return lines


_M = TypeVar("_M", bound=_Metric)

EDIT_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0, 30.0)


class Metrics:
    """The bot's metrics. One instance per process, owned by the app."""

    def __init__(self) -> None:
        self._all: list[_Metric] = []
        self._add_engine_metrics()
        self._add_account_metrics()
        self._add_discord_metrics()
        self._add_lease_metrics()

    def _add_engine_metrics(self) -> None:
        self.jobs = self._add(Gauge("mjbot_jobs", "Jobs in flight by state.", ["state"]))
        self.queue_length = self._add(
            Gauge("mjbot_queue_length", "Jobs waiting in the bot for a provider slot.")
        )
        self.provider_requests = self._add(
            Counter(
                "mjbot_provider_requests_total",
                "Requests the engine made to the provider, by method and outcome.",
                ["method", "outcome"],
            )
        )
        self.provider_errors = self._add(
            Counter(
                "mjbot_provider_errors_total",
                "Provider errors by neutral error code.",
                ["code"],
            )
        )

    def _add_account_metrics(self) -> None:
        # Several provider accounts (MJ_ACCOUNTS_FILE): the same requests, per account, and
        # each account's slots and state (read from the pool at scrape time).
        self.account_requests = self._add(
            Counter(
                "mjbot_account_requests_total",
                "Requests the engine made to each provider account, by method and outcome.",
                ["account", "method", "outcome"],
            )
        )
        self.account_in_flight = self._add(
            Gauge("mjbot_account_in_flight", "Jobs holding a slot at each account.", ["account"])
        )
        self.account_limit = self._add(
            Gauge("mjbot_account_limit", "Jobs each account may run at once.", ["account"])
        )
        self.account_available = self._add(
            Gauge(
                "mjbot_account_available",
                "1 while an account takes new jobs, 0 while it is set aside.",
                ["account"],
            )
        )

    def _add_discord_metrics(self) -> None:
        self.webhooks = self._add(
            Counter(
                "mjbot_webhooks_total",
                "Webhook posts received, by provider and outcome.",
                ["provider", "outcome"],
            )
        )
        self.discord_edits = self._add(
            Counter("mjbot_discord_edits_total", "Edits (and sends) of job messages.")
        )
        self.edit_latency = self._add(
            Histogram(
                "mjbot_edit_latency_seconds",
                "From a job's state change to its Discord edit landing.",
                EDIT_LATENCY_BUCKETS,
            )
        )
        self.discord_rate_limited = self._add(
            Counter(
                "mjbot_discord_rate_limited_total",
                "429 answers from Discord, by the scope they name (user, shared, global); "
                "each is a write the bucket ledger let through too early, retried at reset.",
                ["bucket_scope"],
            )
        )
        self.discord_writes_waiting = self._add(
            Gauge(
                "mjbot_discord_writes_waiting",
                "Message writes waiting for room in each Discord bucket (by bucket id).",
                ["bucket"],
            )
        )

    def _add_lease_metrics(self) -> None:
        # Several processes on one PostgreSQL database (issue 17); read from the lease
        # keeper at scrape time, 0 without leases.
        self.leases_held = self._add(
            Gauge("mjbot_leases_held", "Job leases this process holds (PostgreSQL only).")
        )
        self.lease_takeovers = self._add(
            Counter(
                "mjbot_lease_takeovers_total",
                "Jobs taken over from another process's expired or released lease.",
            )
        )
        self.leases_lost = self._add(
            Counter(
                "mjbot_leases_lost_total",
                "Jobs dropped here because their lease was lost (a fenced write matched "
                "nothing, a renewal found it taken, or its local deadline passed).",
            )
        )

    def _add(self, metric: _M) -> _M:
        self._all.append(metric)
        return metric

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._all:
            lines.extend(metric.header())
            lines.extend(metric.samples())
        return "\n".join(lines) + "\n"
