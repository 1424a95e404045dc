"""The metrics registry and its Prometheus text rendering (format 0.0.4)."""

from __future__ import annotations

import re

import pytest

from bot.metrics import Counter, Gauge, Histogram, Metrics

SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? '
    r"(-?[0-9.eE+-]+|\+Inf|-Inf|NaN)$"
)
COMMENT = re.compile(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*$")


def assert_valid_exposition(text: str) -> None:
    assert text.endswith("\n")
    for line in text.rstrip("\n").split("\n"):
        assert SAMPLE.match(line) or COMMENT.match(line), f"not a valid line: {line!r}"


def test_a_fresh_registry_renders_every_metric_with_help_and_type() -> None:
    text = Metrics().render()
    assert_valid_exposition(text)
    for name, kind in [
        ("mjbot_jobs", "gauge"),
        ("mjbot_queue_length", "gauge"),
        ("mjbot_provider_requests_total", "counter"),
        ("mjbot_provider_errors_total", "counter"),
        ("mjbot_webhooks_total", "counter"),
        ("mjbot_discord_edits_total", "counter"),
        ("mjbot_edit_latency_seconds", "histogram"),
        ("mjbot_discord_rate_limited_total", "counter"),
    ]:
        assert f"# TYPE {name} {kind}\n" in text
    assert "mjbot_discord_edits_total 0\n" in text


def test_counters_with_labels_add_up_and_escape_values() -> None:
    counter = Counter("x_total", "help", ["outcome"])
    counter.inc(outcome="ok")
    counter.inc(2, outcome="ok")
    counter.inc(outcome='we"ird\\')
    lines = counter.samples()
    assert 'x_total{outcome="ok"} 3' in lines
    assert 'x_total{outcome="we\\"ird\\\\"} 1' in lines
    assert counter.value(outcome="ok") == 3
    with pytest.raises(ValueError):
        counter.inc(-1, outcome="ok")
    with pytest.raises(ValueError):
        counter.inc(code="x")


def test_histogram_buckets_are_cumulative_with_sum_and_count() -> None:
    h = Histogram("lat_seconds", "help", [0.5, 1, 2])
    for value in (0.1, 0.5, 0.7, 3.0):
        h.observe(value)
    lines = h.samples()
    assert lines == [
        'lat_seconds_bucket{le="0.5"} 2',
        'lat_seconds_bucket{le="1"} 3',
        'lat_seconds_bucket{le="2"} 3',
        'lat_seconds_bucket{le="+Inf"} 4',
        "lat_seconds_sum 4.3",
        "lat_seconds_count 4",
    ]


def test_gauges_read_their_source_at_render_time() -> None:
    state = {"n": 1}
    gauge = Gauge("q", "help", source=lambda: float(state["n"]))
    assert gauge.samples() == ["q 1"]
    state["n"] = 5
    assert gauge.samples() == ["q 5"]
    labelled = Gauge("jobs", "help", ["state"], source=lambda: {(("state", "running"),): 2.0})
    assert labelled.samples() == ['jobs{state="running"} 2']


def test_discord_429s_are_counted_by_scope() -> None:
    from bot.discord.rate_limits import BucketLedger, Write

    metrics = Metrics()
    ledger = BucketLedger(
        on_rate_limited=lambda scope: metrics.discord_rate_limited.inc(bucket_scope=scope)
    )
    write = Write("PATCH /channels/{id}/messages/{id}", "1", "1")
    headers = {
        "X-RateLimit-Bucket": "b1",
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset-After": "2.0",
        "X-RateLimit-Scope": "user",
    }
    ledger.settle(ledger.reserve(write), 429, headers)
    ledger.settle(ledger.reserve(write), 200, {**headers, "X-RateLimit-Remaining": "3"})
    assert metrics.discord_rate_limited.total() == 1
    assert 'mjbot_discord_rate_limited_total{bucket_scope="user"} 1\n' in metrics.render()
