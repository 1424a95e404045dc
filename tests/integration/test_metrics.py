"""/metrics and /healthz over real HTTP, served by the same server as the webhooks, with the
real engine and store behind them (the push harness of test_webhooks)."""

from __future__ import annotations

import re

from bot.domain import JobStatus
from tests.integration.test_webhooks import IMAGINE, PushHarness, ph  # noqa: F401 - fixture
from tests.unit.test_metrics import assert_valid_exposition


async def scrape(h: PushHarness) -> str:
    async with h.session.get(f"{h.base}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return await resp.text()


def sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = "^" + re.escape(name + (f"{{{wanted}}}" if wanted else "")) + r" (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_metrics_parse_and_their_counts_move(ph: PushHarness) -> None:  # noqa: F811
    before = await scrape(ph)
    assert_valid_exposition(before)
    assert sample(before, "mjbot_webhooks_total", outcome="accepted", provider="piapi") == 0

    job = await ph.submitted()
    during = await scrape(ph)
    assert_valid_exposition(during)
    assert sample(during, "mjbot_jobs", state="submitted") == 1
    assert sample(during, "mjbot_queue_length") == 0
    assert sample(during, "mjbot_provider_requests_total", method="submit", outcome="ok") == 1

    for _ in range(30):
        await ph.advance(1.0)
    assert (await ph.job(job)).status is JobStatus.COMPLETED
    await ph.post({"not": "a task"})

    after = await scrape(ph)
    assert_valid_exposition(after)
    assert sample(after, "mjbot_webhooks_total", outcome="accepted", provider="piapi") == 5
    assert sample(after, "mjbot_webhooks_total", outcome="malformed", provider="piapi") == 1
    assert sample(after, "mjbot_jobs", state="submitted") == 0
    assert sample(after, "mjbot_jobs", state="running") == 0


async def test_provider_errors_are_counted_by_code(ph: PushHarness) -> None:  # noqa: F811
    ph.fake.inject("POST", "/api/v1/task", "401", times=None)
    await ph.engine.submit(IMAGINE, requester_id="u1")
    await ph.engine.settle()
    text = await scrape(ph)
    assert sample(text, "mjbot_provider_requests_total", method="submit", outcome="error") == 1
    assert sample(text, "mjbot_provider_errors_total", code="auth") == 1


async def test_healthz_is_ok_while_the_engine_runs_and_the_gateway_is_up(
    ph: PushHarness,  # noqa: F811
) -> None:
    async with ph.session.get(f"{ph.base}/healthz") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["status"] == "ok"
    assert body["engine_running"] is True and body["gateway_connected"] is True
    assert body["jobs_active"] == 0


async def test_healthz_fails_after_the_gateway_is_down_for_a_minute(
    ph: PushHarness,  # noqa: F811
) -> None:
    ph.gateway.down()
    ph.clock.advance(30)
    async with ph.session.get(f"{ph.base}/healthz") as resp:
        assert resp.status == 200, "a short reconnect is not an outage"
        assert (await resp.json())["gateway_connected"] is False
    ph.clock.advance(31)
    async with ph.session.get(f"{ph.base}/healthz") as resp:
        assert resp.status == 503
        assert (await resp.json())["status"] == "unhealthy"
    ph.gateway.up()
    async with ph.session.get(f"{ph.base}/healthz") as resp:
        assert resp.status == 200


async def test_healthz_fails_when_the_engine_is_stopped(ph: PushHarness) -> None:  # noqa: F811
    await ph.engine.stop()
    async with ph.session.get(f"{ph.base}/healthz") as resp:
        assert resp.status == 503
        assert (await resp.json())["engine_running"] is False
