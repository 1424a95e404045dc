"""Tests of the fake PiAPI itself, over real HTTP on a FakeClock."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from bot.clock import FakeClock, SystemClock
from tests.fakes import images
from tests.fakes.piapi import (
    BANNED_MESSAGE,
    GRID_ACTIONS,
    OUTDATED_MESSAGE,
    UPSCALED_ACTIONS,
    FakePiAPI,
    Profile,
)

KEY = "test-key"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def fake(clock: FakeClock) -> AsyncIterator[FakePiAPI]:
    async with FakePiAPI(clock=clock, image_size=64) as server:
        yield server


@pytest.fixture
async def client(fake: FakePiAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=fake.base_url, headers={"x-api-key": KEY}, timeout=5.0
    ) as c:
        yield c


async def create(client: httpx.AsyncClient, task_type: str, **inp: Any) -> httpx.Response:
    return await client.post(
        "/api/v1/task", json={"model": "midjourney", "task_type": task_type, "input": inp}
    )


async def task(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    reply = await client.get(f"/api/v1/task/{task_id}")
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]


async def finished(
    client: httpx.AsyncClient, clock: FakeClock, task_type: str, **inp: Any
) -> dict[str, Any]:
    """Create a task, run the clock past its life and return it completed."""
    reply = await create(client, task_type, **inp)
    assert reply.status_code == 200, reply.text
    clock.advance(60)
    data = await task(client, reply.json()["data"]["task_id"])
    assert data["status"] == "completed", data
    return data


def png_size(content: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(content)) as image:
        assert image.format == "PNG"
        return image.size


# --- auth and envelope ----------------------------------------------------------------------


async def test_auth_required_with_exact_401_body(fake: FakePiAPI) -> None:
    async with httpx.AsyncClient(base_url=fake.base_url) as anon:
        for headers in ({}, {"x-api-key": "wrong"}):
            reply = await anon.get("/account/info", headers=headers)
            assert reply.status_code == 401
            assert reply.headers["content-type"] == "application/json"
            assert reply.json() == {"code": 401, "data": None, "message": "Invalid API key"}
        reply = await anon.get("/account/info", headers={"X-API-Key": KEY})  # any case
        assert reply.status_code == 200


async def test_account_info_and_credits_consumed(
    client: httpx.AsyncClient, clock: FakeClock, fake: FakePiAPI
) -> None:
    before = (await client.get("/account/info")).json()
    assert before["code"] == 200 and before["message"] == "success"
    data = before["data"]
    assert set(data) == {
        "account_id",
        "account_name",
        "credits",
        "equivalent_in_usd",
        "plan",
        "max_concurrent_task_count",
    }
    assert data["plan"] == "hya" and data["max_concurrent_task_count"] == 10
    await finished(client, clock, "imagine", prompt="a cat", process_mode="relax")
    after = (await client.get("/account/info")).json()["data"]
    assert data["credits"] - after["credits"] == 200_000


async def test_insufficient_credits(client: httpx.AsyncClient, fake: FakePiAPI) -> None:
    fake.initial_credits = 10
    reply = await create(client, "imagine", prompt="a cat")
    assert reply.status_code == 400 and "credits" in reply.json()["message"]


async def test_unknown_route_is_json_404(client: httpx.AsyncClient) -> None:
    reply = await client.get("/api/v1/nothing")
    assert reply.status_code == 404
    assert reply.headers["content-type"] == "application/json"
    assert reply.json()["data"] is None


# --- validation -----------------------------------------------------------------------------

MASK = base64.b64encode(images.single_png("mask", (16, 16))).decode()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"model": "niji", "task_type": "imagine", "input": {"prompt": "x"}}, "model"),
        ({"model": "midjourney", "task_type": "paint", "input": {}}, "task_type"),
        ({"model": "midjourney", "task_type": "imagine", "input": "x"}, "input"),
        ({"model": "midjourney", "task_type": "imagine", "input": {}}, "input.prompt"),
        ({"model": "midjourney", "task_type": "imagine", "input": {"prompt": "  "}}, "prompt"),
        (
            {"model": "midjourney", "task_type": "imagine", "input": {"prompt": "x" * 8193}},
            "too long",
        ),
        (
            {
                "model": "midjourney",
                "task_type": "imagine",
                "input": {"prompt": "x", "process_mode": "ludicrous"},
            },
            "process_mode",
        ),
        (
            {
                "model": "midjourney",
                "task_type": "imagine",
                "input": {"prompt": "x", "aspect_ratio": "16x9"},
            },
            "aspect_ratio",
        ),
        (
            {"model": "midjourney", "task_type": "upscale", "input": {"index": "1"}},
            "origin_task_id",
        ),
        (
            {"model": "midjourney", "task_type": "upscale", "input": {"origin_task_id": "a"}},
            "input.index",
        ),
        (
            {
                "model": "midjourney",
                "task_type": "upscale",
                "input": {"origin_task_id": "a", "index": 1},
            },
            "must be a string",
        ),
        (
            {"model": "midjourney", "task_type": "describe", "input": {"image_url": "ftp://x/y"}},
            "image_url",
        ),
        (
            {
                "model": "midjourney",
                "task_type": "blend",
                "input": {"image_urls": ["https://a/1.png"]},
            },
            "image_urls",
        ),
        (
            {
                "model": "midjourney",
                "task_type": "blend",
                "input": {"image_urls": ["https://a/1.png", "https://a/2.png"], "dimension": "x"},
            },
            "dimension",
        ),
        (
            {
                "model": "midjourney",
                "task_type": "inpaint",
                "input": {"origin_task_id": "a", "mask": "data:image/png;base64," + MASK},
            },
            "data:",
        ),
        (
            {
                "model": "midjourney",
                "task_type": "inpaint",
                "input": {
                    "origin_task_id": "a",
                    "mask": base64.b64encode(b"GIF89a").decode(),
                    "prompt": "x",
                },
            },
            "PNG",
        ),
        (
            {
                "model": "midjourney",
                "task_type": "inpaint",
                "input": {"origin_task_id": "a", "mask": MASK},
            },
            "input.prompt",
        ),
        (
            {
                "model": "midjourney",
                "task_type": "outpaint",
                "input": {"origin_task_id": "a", "zoom_ratio": 2},
            },
            "zoom_ratio",
        ),
        (
            {
                "model": "midjourney",
                "task_type": "outpaint",
                "input": {"origin_task_id": "a", "zoom_ratio": "2.5"},
            },
            "zoom_ratio",
        ),
        (
            {
                "model": "midjourney",
                "task_type": "pan",
                "input": {"origin_task_id": "a", "direction": "north"},
            },
            "direction",
        ),
        (
            {
                "model": "midjourney",
                "task_type": "reroll",
                "input": {"origin_task_id": "missing"},
            },
            "origin task not found",
        ),
    ],
)
async def test_create_validation(
    client: httpx.AsyncClient, fake: FakePiAPI, body: dict[str, Any], needle: str
) -> None:
    reply = await client.post("/api/v1/task", json=body)
    assert reply.status_code == 400, reply.text
    assert reply.headers["content-type"] == "application/json"
    payload = reply.json()
    assert payload["code"] == 400 and payload["data"] is None
    assert needle in payload["message"]
    assert fake.created() == []


async def test_non_json_body(client: httpx.AsyncClient) -> None:
    reply = await client.post("/api/v1/task", content=b"not json")
    assert reply.status_code == 400 and "JSON" in reply.json()["message"]


# --- lifecycle ------------------------------------------------------------------------------


async def test_imagine_lifecycle_hya(client: httpx.AsyncClient, clock: FakeClock) -> None:
    reply = await client.post(
        "/api/v1/task",
        json={
            "model": "midjourney",
            "task_type": "imagine",
            "input": {"prompt": "a red fox", "aspect_ratio": "1:1", "process_mode": "fast"},
            "config": {"service_mode": "", "webhook_config": {"endpoint": "", "secret": ""}},
        },
    )
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert body["code"] == 200 and body["message"] == "success"
    created = body["data"]
    task_id = created["task_id"]
    assert uuid.UUID(task_id).version == 4
    assert created["status"] == "pending" and created["meta"] == {}
    assert created["model"] == "midjourney" and created["task_type"] == "imagine"
    assert created["input"]["prompt"] == "a red fox"
    assert created["config"]["service_mode"] == "private"
    assert created["error"] == {"code": 0, "raw_message": "", "message": "", "detail": None}

    clock.advance(3)
    data = await task(client, task_id)
    assert data["status"] == "processing"
    assert data["output"]["progress"] == 0 and data["output"]["intermediate_image_urls"] == []
    assert data["meta"]["usage"] == {"type": "point", "frozen": 700_000, "consume": 0}
    assert data["meta"]["started_at"].endswith("Z")

    seen = []
    for _ in range(3):
        clock.advance(6)
        data = await task(client, task_id)
        seen.append(data["output"]["progress"])
        assert len(data["output"]["intermediate_image_urls"]) == len(seen)
    assert seen == [25, 50, 75]

    clock.advance(6)
    data = await task(client, task_id)
    out = data["output"]
    assert data["status"] == "completed" and out["progress"] == 100
    assert out["image_url"].startswith(client.base_url.join("/mj/").__str__())
    assert len(out["temporary_image_urls"]) == 4
    assert out["intermediate_image_urls"] is None
    assert out["actions"] == GRID_ACTIONS
    assert data["meta"]["usage"]["consume"] == 700_000
    assert {"created_at", "started_at", "ended_at"} <= set(data["meta"])


async def test_payg_hides_plan_gated_fields(clock: FakeClock) -> None:
    async with (
        FakePiAPI(clock=clock, plan="payg", image_size=64) as fake,
        httpx.AsyncClient(base_url=fake.base_url, headers={"x-api-key": KEY}) as client,
    ):
        task_id = (await create(client, "imagine", prompt="x")).json()["data"]["task_id"]
        clock.advance(15)
        out = (await task(client, task_id))["output"]
        assert out["progress"] == 0 and out["intermediate_image_urls"] is None
        clock.advance(20)
        data = await task(client, task_id)
        assert data["status"] == "completed"
        assert data["output"]["temporary_image_urls"] is None
        assert data["output"]["image_url"]
        info = (await client.get("/account/info")).json()["data"]
        assert info["plan"] == "payg"


async def test_every_task_type(client: httpx.AsyncClient, clock: FakeClock) -> None:
    grid = await finished(client, clock, "imagine", prompt="a ship --ar 16:9")
    gid = grid["task_id"]
    single = await finished(client, clock, "upscale", origin_task_id=gid, index="2")
    sid = single["task_id"]
    assert single["output"]["actions"] == [*UPSCALED_ACTIONS, "outpaint_1x"]  # 16:9
    assert single["output"]["temporary_image_urls"] is None

    for task_type, inp in [
        ("variation", {"origin_task_id": gid, "index": "3"}),
        ("reroll", {"origin_task_id": gid}),
        ("blend", {"image_urls": ["https://a/1.png", "http://b/2.png"], "dimension": "portrait"}),
        ("variation", {"origin_task_id": sid, "index": "high_variation"}),
        ("variation", {"origin_task_id": sid, "index": "low_variation", "prompt": "remix"}),
        ("inpaint", {"origin_task_id": sid, "mask": MASK, "prompt": "a hat"}),
        ("outpaint", {"origin_task_id": sid, "zoom_ratio": "2"}),
        ("outpaint", {"origin_task_id": sid, "zoom_ratio": "1.5"}),
        ("outpaint", {"origin_task_id": sid, "zoom_ratio": "1.7"}),
        ("outpaint", {"origin_task_id": sid, "zoom_ratio": "1"}),
        ("pan", {"origin_task_id": sid, "direction": "left"}),
    ]:
        data = await finished(client, clock, task_type, **inp)
        assert data["output"]["actions"] == GRID_ACTIONS, (task_type, inp)
        assert len(data["output"]["temporary_image_urls"]) == 4

    for index in ("subtle", "creative"):
        data = await finished(client, clock, "upscale", origin_task_id=sid, index=index)
        assert "upscale_subtle" in data["output"]["actions"]

    described = await finished(client, clock, "describe", image_url="https://x/cat.png")
    text = described["output"]["description"]
    assert [p[:3] for p in text.split("\n\n")] == ["1️⃣", "2️⃣", "3️⃣", "4️⃣"]
    assert described["output"]["image_url"] == ""

    reply = await create(client, "seed", origin_task_id=gid)
    seed_id = reply.json()["data"]["task_id"]
    clock.advance(1)  # seed is quick
    data = await task(client, seed_id)
    assert data["status"] == "completed" and data["output"]["seed"].isdigit()
    assert data["meta"]["usage"]["consume"] == 0


async def test_follow_ups_checked_against_actions(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    pending = (await create(client, "imagine", prompt="x")).json()["data"]["task_id"]
    reply = await create(client, "upscale", origin_task_id=pending, index="1")
    assert reply.status_code == 400 and "not completed" in reply.json()["message"]

    grid = (await finished(client, clock, "imagine", prompt="square"))["task_id"]
    single = (await finished(client, clock, "upscale", origin_task_id=grid, index="1"))["task_id"]
    refused = [
        ("upscale", {"origin_task_id": grid, "index": "subtle"}, "upscale_subtle"),
        ("variation", {"origin_task_id": grid, "index": "high_variation"}, "high_variation"),
        ("outpaint", {"origin_task_id": grid, "zoom_ratio": "2"}, "outpaint_2x"),
        ("pan", {"origin_task_id": grid, "direction": "up"}, "pan_up"),
        ("inpaint", {"origin_task_id": grid, "mask": MASK, "prompt": "x"}, "inpaint"),
        ("upscale", {"origin_task_id": single, "index": "1"}, "upscale1"),
        ("reroll", {"origin_task_id": single}, "reroll"),
        ("outpaint", {"origin_task_id": single, "zoom_ratio": "1"}, "outpaint_1x"),  # square
        ("upscale", {"origin_task_id": single, "index": "2x"}, "upscale_2x"),  # V5 only
        ("seed", {"origin_task_id": single}, "seed"),
    ]
    for task_type, inp, action in refused:
        reply = await create(client, task_type, **inp)
        assert reply.status_code == 400, (task_type, inp)
        assert action in reply.json()["message"]


async def test_outdated_parent_fails_after_creation(
    client: httpx.AsyncClient, clock: FakeClock, fake: FakePiAPI
) -> None:
    grid = (await finished(client, clock, "imagine", prompt="x"))["task_id"]
    clock.advance(3 * 3600)
    reply = await create(client, "upscale", origin_task_id=grid, index="1")
    assert reply.status_code == 200
    clock.advance(3)
    data = await task(client, reply.json()["data"]["task_id"])
    assert data["status"] == "failed"
    assert data["error"]["message"] == OUTDATED_MESSAGE and data["error"]["code"] != 0


async def test_banned_prompt_fails_after_pending(
    client: httpx.AsyncClient, clock: FakeClock, fake: FakePiAPI
) -> None:
    reply = await create(client, "imagine", prompt="a Banned thing")
    task_id = reply.json()["data"]["task_id"]
    assert reply.json()["data"]["status"] == "pending"
    clock.advance(3)
    data = await task(client, task_id)
    assert data["status"] == "failed" and data["error"]["message"] == BANNED_MESSAGE
    assert data["meta"]["usage"]["consume"] == 0
    assert fake.balance() == fake.initial_credits  # failures are refunded


async def test_scripted_profiles(
    client: httpx.AsyncClient, clock: FakeClock, fake: FakePiAPI
) -> None:
    fake.profile_for_prompt["doomed"] = Profile(
        outcome="failed", error_message="Failed to process your command", raw_message="raw"
    )
    fake.profile_for_prompt["stuck"] = Profile(stuck_at=50)
    fake.default_profile = Profile(pending_s=1, processing_s=4, progress_step_s=1)
    doomed = (await create(client, "imagine", prompt="doomed cat")).json()["data"]["task_id"]
    stuck = (await create(client, "imagine", prompt="stuck cat")).json()["data"]["task_id"]
    quick = (await create(client, "imagine", prompt="quick cat")).json()["data"]["task_id"]
    clock.advance(5)
    assert (await task(client, quick))["status"] == "completed"
    clock.advance(30)
    data = await task(client, doomed)
    assert data["status"] == "failed" and data["error"]["raw_message"] == "raw"
    clock.advance(10_000)
    data = await task(client, stuck)
    assert data["status"] == "processing" and data["output"]["progress"] == 50
    assert len(data["output"]["intermediate_image_urls"]) == 2


async def test_cancel_only_while_pending(client: httpx.AsyncClient, clock: FakeClock) -> None:
    first = (await create(client, "imagine", prompt="x")).json()["data"]["task_id"]
    reply = await client.delete(f"/api/v1/task/{first}")
    assert reply.status_code == 200
    assert reply.json() == {"code": 200, "message": f"task {first} canceled"}
    data = await task(client, first)
    assert data["status"] == "failed" and data["error"]["message"] == "task canceled"

    second = (await create(client, "imagine", prompt="x")).json()["data"]["task_id"]
    clock.advance(4)
    reply = await client.delete(f"/api/v1/task/{second}")
    assert reply.status_code == 400 and "pending" in reply.json()["message"]
    reply = await client.delete("/api/v1/task/nope")
    assert reply.status_code == 404


async def test_vanish(client: httpx.AsyncClient, fake: FakePiAPI) -> None:
    task_id = (await create(client, "imagine", prompt="x")).json()["data"]["task_id"]
    fake.vanish(task_id)
    reply = await client.get(f"/api/v1/task/{task_id}")
    assert reply.status_code == 404 and reply.json()["data"] is None


# --- legacy spellings -----------------------------------------------------------------------


async def test_legacy_fields_and_capitalised_status(clock: FakeClock) -> None:
    async with (
        FakePiAPI(clock=clock, legacy_fields=True, capitalised_status=True) as fake,
        httpx.AsyncClient(base_url=fake.base_url, headers={"x-api-key": KEY}) as client,
    ):
        fake.profile_for_prompt["fail"] = Profile(outcome="failed", error_message="boom")
        ok = (await create(client, "imagine", prompt="x")).json()["data"]
        assert ok["status"] == "Pending"
        bad = (await create(client, "imagine", prompt="fail")).json()["data"]["task_id"]
        clock.advance(9)
        data = await task(client, ok["task_id"])
        assert data["status"] == "Processing" and data["output"]["task_progress"] == 25
        assert "progress" not in data["output"]
        clock.advance(60)
        assert (await task(client, ok["task_id"]))["status"] == "Completed"
        data = await task(client, bad)
        assert data["status"] == "Failed" and data["output"]["error_messages"] == ["boom"]


# --- images ---------------------------------------------------------------------------------


async def test_images_are_real_pngs_without_auth(
    client: httpx.AsyncClient, clock: FakeClock, fake: FakePiAPI
) -> None:
    reply = await create(client, "imagine", prompt="x", aspect_ratio="2:1")
    task_id = reply.json()["data"]["task_id"]
    clock.advance(3 + 7)
    preview_url = (await task(client, task_id))["output"]["intermediate_image_urls"][-1]
    clock.advance(60)
    out = (await task(client, task_id))["output"]
    single = await finished(client, clock, "upscale", origin_task_id=task_id, index="4")

    async with httpx.AsyncClient() as anon:  # no key: images are public
        grid = await anon.get(out["image_url"])
        assert grid.status_code == 200 and grid.headers["content-type"] == "image/png"
        assert png_size(grid.content) == (64, 32)
        tiles = [(await anon.get(url)).content for url in out["temporary_image_urls"]]
        assert len(set(tiles)) == 4 and all(png_size(t) == (32, 16) for t in tiles)
        assert tiles[1] == images.crop_tile(grid.content, 2)
        assert png_size((await anon.get(preview_url)).content) == (64, 32)
        upscaled = await anon.get(single["output"]["image_url"])
        assert png_size(upscaled.content) == (64, 32)
        assert (await anon.get(f"{fake.base_url}/mj/{uuid.uuid4()}.png")).status_code == 404


def test_image_helpers_are_deterministic() -> None:
    assert images.grid_png("a") == images.grid_png("a")
    assert images.grid_png("a") != images.grid_png("b")
    grid = images.grid_png("a", (128, 96))
    assert png_size(grid) == (128, 96)
    assert len({images.crop_tile(grid, n) for n in range(1, 5)}) == 4
    assert png_size(images.single_png("a", (40, 50))) == (40, 50)
    assert images.preview_png("a", 1) != images.preview_png("a", 3)
    with pytest.raises(ValueError):
        images.crop_tile(grid, 5)


# --- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "kw"),
    [
        ("401", 401, {}),
        ("404_unknown_task", 404, {}),
        ("429", 429, {"retry_after": 7}),
        ("500", 500, {}),
        ("502", 502, {}),
        ("503", 503, {}),
    ],
)
async def test_status_faults_are_one_shot(
    client: httpx.AsyncClient, fake: FakePiAPI, fault: str, status: int, kw: dict[str, Any]
) -> None:
    fake.inject("GET", "/account/info", fault, **kw)
    reply = await client.get("/account/info")
    assert reply.status_code == status
    if fault == "429":
        assert reply.headers["retry-after"] == "7"
    if fault == "502":
        assert reply.headers["content-type"].startswith("text/html")
    else:
        assert reply.json()["code"] == status
    assert (await client.get("/account/info")).status_code == 200
    assert fake.requests[0].fault == fault and fake.requests[1].fault is None


async def test_fault_times_and_prefix(client: httpx.AsyncClient, fake: FakePiAPI) -> None:
    fake.inject("post", "/api/v1/task", "503", times=2)
    assert (await client.get("/account/info")).status_code == 200  # not matched
    assert (await create(client, "imagine", prompt="x")).status_code == 503
    assert (await create(client, "imagine", prompt="x")).status_code == 503
    assert (await create(client, "imagine", prompt="x")).status_code == 200
    assert len(fake.created()) == 1


async def test_error_fault_after_processing_still_creates(
    client: httpx.AsyncClient, fake: FakePiAPI
) -> None:
    fake.inject("POST", "/api/v1/task", "500", process=True)
    assert (await create(client, "imagine", prompt="x")).status_code == 500
    assert len(fake.created("imagine")) == 1  # the client can't know: a retry would duplicate


async def test_timeout_fault(client: httpx.AsyncClient, fake: FakePiAPI) -> None:
    fake.inject("POST", "/api/v1/task", "timeout", delay=0.3)
    with pytest.raises(httpx.ReadTimeout):
        await client.post(
            "/api/v1/task",
            json={"model": "midjourney", "task_type": "imagine", "input": {"prompt": "x"}},
            timeout=0.05,
        )
    await asyncio.sleep(0.4)  # the server carries on after the client gave up
    assert len(fake.created()) == 1


async def test_timeout_fault_does_not_block_stop(clock: FakeClock) -> None:
    fake = FakePiAPI(clock=clock)
    await fake.start()
    fake.inject("GET", "/account/info", "timeout")  # 30 s of real time
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        request = asyncio.create_task(client.get("/account/info", timeout=5))
        await asyncio.sleep(0.1)
        started = asyncio.get_running_loop().time()
        await fake.stop()
        assert asyncio.get_running_loop().time() - started < 2
        with pytest.raises(httpx.HTTPError):
            await request


async def test_malformed_fault(client: httpx.AsyncClient, fake: FakePiAPI) -> None:
    fake.inject("GET", "/api/v1/task/", "malformed")
    reply = await client.get("/api/v1/task/whatever")
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    assert reply.text.startswith('{"code":200,"data":')
    with pytest.raises(json.JSONDecodeError):
        reply.json()


async def test_reset_fault(client: httpx.AsyncClient, fake: FakePiAPI) -> None:
    fake.inject("POST", "/api/v1/task", "reset")
    with pytest.raises(httpx.RemoteProtocolError):
        await create(client, "imagine", prompt="x")
    assert fake.requests[-1].status is None and fake.created() == []
    fake.inject("POST", "/api/v1/task", "reset", process=True)
    with pytest.raises(httpx.RemoteProtocolError):
        await create(client, "imagine", prompt="x")
    assert len(fake.created()) == 1
    assert (await client.get("/account/info")).status_code == 200  # the server lives on


async def test_missing_and_unknown_fields(client: httpx.AsyncClient, fake: FakePiAPI) -> None:
    task_id = (await create(client, "imagine", prompt="x")).json()["data"]["task_id"]
    fake.inject("GET", "/api/v1/task/", "missing_fields")
    data = (await client.get(f"/api/v1/task/{task_id}")).json()["data"]
    assert data == {"task_id": task_id, "status": "pending"}
    fake.inject("GET", "/api/v1/task/", "unknown_fields")
    body = (await client.get(f"/api/v1/task/{task_id}")).json()
    assert "x_trace_id" in body and "x_unknown" in body["data"]
    assert "x_unknown_output" in body["data"]["output"]
    assert "x_unknown_error" in body["data"]["error"]
    assert body["data"]["task_id"] == task_id


def test_inject_rejects_unknown_fault() -> None:
    with pytest.raises(ValueError):
        FakePiAPI().inject("GET", "/", "explode")


# --- recording ------------------------------------------------------------------------------


async def test_requests_are_recorded_with_key_redacted(
    client: httpx.AsyncClient, fake: FakePiAPI
) -> None:
    await create(client, "imagine", prompt="x")
    await client.get("/account/info", params={"a": "1"})
    first, second = fake.requests
    assert first.method == "POST" and first.path == "/api/v1/task" and first.status == 200
    assert first.json["input"] == {"prompt": "x"} and first.task_id is not None
    assert first.headers["x-api-key"] == "<redacted>"
    assert KEY not in json.dumps(first.headers)
    assert second.query == {"a": "1"} and second.json is None
    assert [r.task_id for r in fake.created("imagine")] == [first.task_id]
    assert fake.created("upscale") == []


# --- control API ----------------------------------------------------------------------------


async def test_control_api(client: httpx.AsyncClient, clock: FakeClock, fake: FakePiAPI) -> None:
    async with httpx.AsyncClient(base_url=fake.base_url) as ctl:  # no key needed
        reply = await ctl.post("/_control/profile", json={"profile": {"pending_s": 1}})
        assert reply.status_code == 200 and fake.default_profile.pending_s == 1
        reply = await ctl.post(
            "/_control/profile", json={"prompt": "slow", "profile": {"processing_s": 100}}
        )
        assert fake.profile_for_prompt["slow"].processing_s == 100
        bad = await ctl.post("/_control/profile", json={"profile": {"nope": 1}})
        assert bad.status_code == 400

        task_id = (await create(client, "imagine", prompt="x")).json()["data"]["task_id"]
        reply = await ctl.post("/_control/advance", json={"seconds": 1})
        assert reply.json()["data"]["now"] == clock.time()
        assert (await task(client, task_id))["status"] == "processing"

        reply = await ctl.post(
            "/_control/inject", json={"method": "GET", "path_prefix": "/account", "fault": "500"}
        )
        assert reply.status_code == 200
        assert (await client.get("/account/info")).status_code == 500
        assert (await ctl.post("/_control/inject", json={"fault": "boom"})).status_code == 400

        recorded = (await ctl.get("/_control/requests")).json()["data"]
        assert [r["path"] for r in recorded] == [
            "/api/v1/task",
            f"/api/v1/task/{task_id}",
            "/account/info",
        ]
        tasks = (await ctl.get("/_control/tasks")).json()["data"]
        assert tasks[task_id]["status"] == "processing"
        assert (await ctl.post("/_control/vanish", json={"task_id": task_id})).status_code == 200
        assert (await client.get(f"/api/v1/task/{task_id}")).status_code == 404


async def test_control_advance_needs_fake_clock() -> None:
    async with (
        FakePiAPI(clock=SystemClock()) as fake,
        httpx.AsyncClient(base_url=fake.base_url) as ctl,
    ):
        reply = await ctl.post("/_control/advance", json={"seconds": 5})
        assert reply.status_code == 400 and "FakeClock" in reply.json()["message"]


async def test_cli_serves_until_interrupted() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.piapi",
        "--port",
        "0",
        "--api-key",
        "cli-key",
        "--plan",
        "payg",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        base_url = line.strip()
        assert base_url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=base_url) as client:
            reply = await client.get("/account/info", headers={"x-api-key": "cli-key"})
            assert reply.json()["data"]["plan"] == "payg"
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
