"""Tests of the fake Legnext and fake Vtrix themselves, over real HTTP on a FakeClock."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from bot.clock import FakeClock, SystemClock
from tests.fakes.legnext import (
    BANNED_MESSAGE,
    VTRIX_ERROR_TEXTS,
    FakeLegnext,
    FakeVtrix,
    Profile,
    vtrix_code,
)

KEY = "test-key"
ROOT = Path(__file__).resolve().parents[2]
MASK = {"areas": [{"width": 512, "height": 512, "points": [0, 0, 100, 0, 100, 100, 0, 100]}]}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def legnext(clock: FakeClock) -> AsyncIterator[FakeLegnext]:
    async with FakeLegnext(clock=clock, image_size=64) as fake:
        yield fake


@pytest.fixture
async def vtrix(clock: FakeClock) -> AsyncIterator[FakeVtrix]:
    async with FakeVtrix(clock=clock, image_size=64) as fake:
        yield fake


@pytest.fixture
async def lx(legnext: FakeLegnext) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=legnext.base_url, headers={"x-api-key": KEY}, timeout=5.0
    ) as c:
        yield c


@pytest.fixture
async def vx(vtrix: FakeVtrix) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=vtrix.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=5.0
    ) as c:
        yield c


async def lcreate(client: httpx.AsyncClient, op: str, **params: Any) -> httpx.Response:
    return await client.post(f"/v1/{op}", json=params)


async def ljob(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    reply = await client.get(f"/v1/job/{job_id}")
    assert reply.status_code == 200, reply.text
    return reply.json()


async def lfinished(
    client: httpx.AsyncClient, clock: FakeClock, op: str, **params: Any
) -> dict[str, Any]:
    reply = await lcreate(client, op, **params)
    assert reply.status_code == 200, reply.text
    clock.advance(60)
    job = await ljob(client, reply.json()["job_id"])
    assert job["status"] == "completed", job
    return job


async def vcreate(client: httpx.AsyncClient, op: str, **params: Any) -> httpx.Response:
    return await client.post(
        "/model/v1/generation",
        json={"model": f"midjourney_{op}", "input": [{"params": params}]},
    )


async def vtask(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    reply = await client.get(f"/model/v1/generation/task/{task_id}")
    assert reply.status_code == 200, reply.text
    return reply.json()


async def vfinished(
    client: httpx.AsyncClient, clock: FakeClock, op: str, **params: Any
) -> dict[str, Any]:
    reply = await vcreate(client, op, **params)
    assert reply.status_code == 200, reply.text
    clock.advance(60)
    task = await vtask(client, reply.json()["id"])
    assert task["status"] == "completed", task
    return task


def png_size(content: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(content)) as image:
        assert image.format == "PNG"
        return image.size


# --- Legnext ----------------------------------------------------------------------------------


async def test_legnext_auth(legnext: FakeLegnext) -> None:
    async with httpx.AsyncClient(base_url=legnext.base_url) as anon:
        for headers in ({}, {"x-api-key": "wrong"}, {"Authorization": f"Bearer {KEY}"}):
            reply = await anon.post("/v1/diffusion", json={"text": "x"}, headers=headers)
            assert reply.status_code == 401
            assert reply.json() == {
                "code": 401,
                "message": "Invalid API key",
                "raw_message": "Invalid API key",
                "detail": None,
            }
    assert legnext.requests[0].headers.get("x-api-key") in (None, "<redacted>")
    assert legnext.created() == []


async def test_legnext_diffusion_lifecycle(
    lx: httpx.AsyncClient, legnext: FakeLegnext, clock: FakeClock
) -> None:
    reply = await lcreate(lx, "diffusion", text="a cat --ar 2:1")
    assert reply.status_code == 200
    job = reply.json()
    assert job["status"] == "pending" and job["task_type"] == "diffusion"
    assert job["meta"]["usage"] == {"type": "point", "frozen": 20, "consume": 0}
    assert job["error"] == {"code": 0, "raw_message": "", "message": "", "detail": None}
    assert "progress" not in job
    job_id = job["job_id"]
    assert legnext.running_task_count() == 1

    clock.advance(3 + 12)
    running = await ljob(lx, job_id)
    assert running["status"] == "processing" and running["progress"] == 50

    clock.advance(60)
    done = await ljob(lx, job_id)
    assert done["status"] == "completed" and "progress" not in done
    out = done["output"]
    assert out["image_url"] == f"{legnext.base_url}/cdn/{job_id}.png"
    assert out["image_urls"] == [f"{legnext.base_url}/cdn/{job_id}_{i}.png" for i in range(4)]
    assert out["seed"].isdigit()
    assert out["available_actions"]["edit"] == [0, 1, 2, 3]
    assert out["available_actions"]["enhance"] == []  # not a --draft
    assert done["meta"]["usage"]["consume"] == 20
    assert {"created_at", "started_at", "ended_at"} <= set(done["meta"])
    assert legnext.running_task_count() == 0 and legnext.total_cost() == 20

    async with httpx.AsyncClient() as cdn:
        grid = (await cdn.get(out["image_url"])).content
        tiles = [(await cdn.get(u)).content for u in out["image_urls"]]
    assert png_size(grid) == (64, 32)
    assert all(png_size(t) == (32, 16) for t in tiles)
    assert len(set(tiles)) == 4


async def test_legnext_follow_ups_and_allow_list(
    lx: httpx.AsyncClient, legnext: FakeLegnext, clock: FakeClock
) -> None:
    grid = await lfinished(lx, clock, "diffusion", text="a cat --v 7 --draft")
    gid = grid["job_id"]
    assert grid["output"]["available_actions"]["enhance"] == [0, 1, 2, 3]
    up = await lfinished(lx, clock, "upscale", jobId=gid, imageNo=2, type=0)
    assert up["output"]["image_urls"] == [f"{legnext.base_url}/cdn/{up['job_id']}_0.png"]
    assert up["output"]["available_actions"]["upscale"] == []
    assert "reroll" not in up["output"]["available_actions"]
    # The upscale really is tile 3 of the grid, scaled up.
    async with httpx.AsyncClient() as cdn:
        single = (await cdn.get(up["output"]["image_url"])).content
    assert png_size(single) == (64, 64)

    for op, params in [
        ("variation", {"jobId": gid, "imageNo": 1, "type": 1, "remixPrompt": "a dog"}),
        ("remix", {"jobId": gid, "imageNo": 0, "remixPrompt": "a dog", "mode": 1}),
        ("reroll", {"jobId": gid}),
        ("outpaint", {"jobId": up["job_id"], "imageNo": 0, "scale": 1.5}),
        ("pan", {"jobId": up["job_id"], "imageNo": 0, "direction": 3, "scale": 1.5}),
        ("inpaint", {"jobId": gid, "imageNo": 3, "mask": MASK, "remixPrompt": "a hat"}),
        ("inpaint", {"jobId": gid, "imageNo": 3, "mask": {"url": "https://m.example/m.png"}}),
        ("enhance", {"jobId": gid, "imageNo": 0}),
        (
            "edit",
            {
                "jobId": gid,
                "imageNo": 2,
                "canvas": {"width": 1024, "height": 512},
                "imgPos": {"width": 512, "height": 512, "x": 256, "y": 0},
                "remixPrompt": "a cat in space",
            },
        ),
    ]:
        job = await lfinished(lx, clock, op, **params)
        assert len(job["output"]["image_urls"]) == 4, op
    assert [r.op for r in legnext.created()][:2] == ["diffusion", "upscale"]
    assert len(legnext.created("inpaint")) == 2

    # Refused: upscale of an upscale; enhance of a non-draft; a restricted allow-list.
    again = await lcreate(lx, "upscale", jobId=up["job_id"], imageNo=0, type=1)
    assert again.status_code == 400 and "not available" in again.json()["message"]
    plain = await lfinished(lx, clock, "diffusion", text="a cat")
    enhance = await lcreate(lx, "enhance", jobId=plain["job_id"], imageNo=0)
    assert enhance.status_code == 400 and "--draft" in enhance.json()["message"]
    legnext.available_actions_override["edit"] = [0]
    restricted = await lfinished(lx, clock, "diffusion", text="a fox")
    assert restricted["output"]["available_actions"]["edit"] == [0]


@pytest.mark.parametrize(
    ("op", "params", "needle"),
    [
        ("diffusion", {}, "text is required"),
        ("diffusion", {"text": "x" * 8193}, "length"),
        ("diffusion", {"text": "x", "callback": "ftp://x"}, "callback"),
        ("upscale", {"imageNo": 0, "type": 0}, "jobId is required"),
        ("upscale", {"jobId": "nope", "type": 0}, "imageNo is required"),
        ("upscale", {"jobId": "nope", "imageNo": 4, "type": 0}, "imageNo must be"),
        ("upscale", {"jobId": "nope", "imageNo": 0, "type": 4}, "type must be"),
        ("upscale", {"jobId": "nope", "imageNo": 0, "type": 0}, "not found"),
        ("variation", {"jobId": "x", "imageNo": 0, "type": 2}, "type must be"),
        ("remix", {"jobId": "x", "imageNo": 0}, "remixPrompt is required"),
        ("remix", {"jobId": "x", "imageNo": 0, "remixPrompt": "a", "mode": 2}, "mode"),
        ("outpaint", {"jobId": "x", "imageNo": 0, "scale": 2.5}, "scale"),
        ("outpaint", {"jobId": "x", "imageNo": 0}, "scale is required"),
        ("pan", {"jobId": "x", "imageNo": 0, "direction": 4, "scale": 1.5}, "direction"),
        ("pan", {"jobId": "x", "imageNo": 0, "direction": 0, "scale": 3.5}, "scale"),
        ("inpaint", {"jobId": "x", "imageNo": 0}, "mask is required"),
        ("inpaint", {"jobId": "x", "imageNo": 0, "mask": {"areas": []}}, "areas"),
        (
            "inpaint",
            {
                "jobId": "x",
                "imageNo": 0,
                "mask": {"areas": [{"width": 100, "height": 600, "points": [0, 0, 1, 1, 2, 2]}]},
            },
            "500 to 4096",
        ),
        ("edit", {"jobId": "x", "imageNo": 0, "remixPrompt": "a"}, "canvas is required"),
        (
            "edit",
            {"jobId": "x", "imageNo": 0, "remixPrompt": "a", "canvas": {"width": 9, "height": 9}},
            "imgPos is required",
        ),
        (
            "edit",
            {
                "jobId": "x",
                "imageNo": 0,
                "remixPrompt": "a",
                "canvas": {"width": 100, "height": 100},
                "imgPos": {"width": 60, "height": 60, "x": 50, "y": 0},
            },
            "inside the canvas",
        ),
        ("describe", {"imgUrl": "file:///etc/passwd"}, "imgUrl"),
    ],
)
async def test_legnext_validation(
    lx: httpx.AsyncClient, op: str, params: dict[str, Any], needle: str
) -> None:
    reply = await lcreate(lx, op, **params)
    assert reply.status_code == 400, reply.text
    body = reply.json()
    assert body["code"] == 400 and body["detail"] is None
    assert needle in body["message"] and body["raw_message"] == body["message"]


async def test_legnext_follow_up_needs_a_completed_job_and_a_real_image(
    lx: httpx.AsyncClient, clock: FakeClock
) -> None:
    reply = await lcreate(lx, "diffusion", text="a cat")
    gid = reply.json()["job_id"]
    early = await lcreate(lx, "upscale", jobId=gid, imageNo=0, type=0)
    assert early.status_code == 400 and "not completed" in early.json()["message"]
    clock.advance(60)
    up = await lfinished(lx, clock, "upscale", jobId=gid, imageNo=0, type=0)
    beyond = await lcreate(lx, "variation", jobId=up["job_id"], imageNo=1, type=0)
    assert beyond.status_code == 400 and "out of range" in beyond.json()["message"]
    missing = await lx.get("/v1/job/unknown")
    assert missing.status_code == 404 and missing.json()["message"] == "job not found"


async def test_legnext_failure_and_describe(
    lx: httpx.AsyncClient, legnext: FakeLegnext, clock: FakeClock
) -> None:
    reply = await lcreate(lx, "diffusion", text="a banned thing")
    clock.advance(60)
    failed = await ljob(lx, reply.json()["job_id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] != 0 and failed["error"]["message"] == BANNED_MESSAGE
    assert failed["meta"]["usage"]["consume"] == 0

    legnext.profile_for_prompt["slow"] = Profile(pending_s=1, processing_s=100, progress_step_s=10)
    slow = await lcreate(lx, "diffusion", text="a slow cat")
    clock.advance(30)
    assert (await ljob(lx, slow.json()["job_id"]))["progress"] == 20

    described = await lfinished(lx, clock, "describe", imgUrl="https://img.example/a.png")
    out = described["output"]
    assert len(out["prompts"]) == 4 and out["finalPrompt"].startswith("1. ")
    assert out["image_urls"] == []


# --- Vtrix ------------------------------------------------------------------------------------


async def test_vtrix_auth_and_balance(vtrix: FakeVtrix, vx: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(base_url=vtrix.base_url) as anon:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"x-api-key": KEY}):
            reply = await anon.post(
                "/model/v1/generation", json={"model": "midjourney_diffusion"}, headers=headers
            )
            assert reply.status_code == 401 and reply.json() == {"message": "invalid api key"}
    vtrix.balance_usd = Decimal("0.05")
    assert (await vcreate(vx, "diffusion", text="a cat")).status_code == 200
    poor = await vcreate(vx, "diffusion", text="a dog")
    assert poor.status_code == 403 and poor.json() == {"message": "insufficient balance"}


async def test_vtrix_lifecycle_wrapped_and_flat(
    vtrix: FakeVtrix, vx: httpx.AsyncClient, clock: FakeClock
) -> None:
    reply = await vcreate(vx, "diffusion", text="a cat")
    task = reply.json()
    assert task["id"].startswith("task_") and task["status"] == "pending"
    assert task["progress"] == 0.0 and "output" not in task and "usage" not in task
    clock.advance(3 + 6)
    running = await vtask(vx, task["id"])
    assert running["status"] == "processing" and running["progress"] == 0.25
    clock.advance(60)
    done = await vtask(vx, task["id"])
    assert done["status"] == "completed" and done["progress"] == 1.0
    content = done["output"][0]["content"]
    assert len(content) == 4 and all(c["type"] == "image" for c in content)
    job_id = content[0]["jobId"]
    assert all(c["jobId"] == job_id for c in content)
    assert content[2]["url"] == f"{vtrix.base_url}/cdn/{job_id}_2.png"
    assert done["usage"] == {"cost": "0.04", "discount": 0}
    assert vtrix.total_cost() == Decimal("0.04")

    flat = await vx.post(
        "/model/v1/generation",
        json={"model": "midjourney_upscale", "jobId": job_id, "imageNo": 1, "type": 0},
    )
    assert flat.status_code == 200, flat.text
    clock.advance(60)
    up = await vtask(vx, flat.json()["id"])
    assert len(up["output"][0]["content"]) == 1
    assert [r.op for r in vtrix.created()] == ["diffusion", "upscale"]
    assert vtrix.created("upscale")[0].task_id == flat.json()["id"]
    assert set(vtrix.tasks) == {task["id"], flat.json()["id"]}


async def test_vtrix_unsupported_models(vx: httpx.AsyncClient) -> None:
    for model in ("midjourney_reroll", "midjourney_describe", "flux", None):
        reply = await vx.post("/model/v1/generation", json={"model": model, "input": []})
        assert reply.status_code == 400 and reply.json()["code"] == 400
    missing = await vx.get("/model/v1/generation/task/task_nope")
    assert missing.status_code == 404 and missing.json() == {"message": "task not found"}


EDIT_OK = {
    "jobId": "JOB",
    "imageNo": 0,
    "canvas": {"width": 1024, "height": 1024},
    "imgPos": {"width": 512, "height": 512, "x": 256, "y": 256},
    "remixPrompt": "a cat",
}


@pytest.mark.parametrize(
    ("change", "eee"),
    [
        ({"jobId": None}, 1),
        ({"imageNo": None}, 2),
        ({"imageNo": 7}, 3),
        ({"remixPrompt": None}, 4),
        ({"remixPrompt": "x" * 8193}, 5),
        ({"canvas": None}, 6),
        ({"imgPos": None}, 7),
        ({"callback": "not a url"}, 8),
        ({"imgPos": {"width": 512, "height": 512, "x": 600, "y": 0}}, 20),
    ],
)
async def test_vtrix_edit_validation_codes(
    vx: httpx.AsyncClient, vtrix: FakeVtrix, clock: FakeClock, change: dict[str, Any], eee: int
) -> None:
    grid = await vfinished(vx, clock, "diffusion", text="a cat")
    params = {**EDIT_OK, "jobId": grid["output"][0]["content"][0]["jobId"], **change}
    params = {k: v for k, v in params.items() if v is not None}
    reply = await vcreate(vx, "edit", **params)
    assert reply.status_code == 400
    body = reply.json()
    assert body["code"] == 4_007_000 + eee == vtrix_code("edit", eee)
    assert isinstance(body["message"], str) and body["message"]
    assert vtrix.created("edit") == []
    vtrix.code_as_string = True
    again = (await vcreate(vx, "edit", **params)).json()
    assert again["code"] == f"{4_007_000 + eee:09d}"


async def test_vtrix_fail_with_code_and_error_styles(
    vx: httpx.AsyncClient, vtrix: FakeVtrix, clock: FakeClock
) -> None:
    grid = await vfinished(vx, clock, "diffusion", text="a cat")
    job_id = grid["output"][0]["content"][0]["jobId"]
    vtrix.fail_with_code_for_prompt["BOOM"] = 4007098
    reply = await vcreate(vx, "edit", **{**EDIT_OK, "jobId": job_id, "remixPrompt": "BOOM cat"})
    task_id = reply.json()["id"]
    clock.advance(2)
    assert (await vtask(vx, task_id))["status"] == "pending"
    clock.advance(60)
    failed = await vtask(vx, task_id)
    assert failed["status"] == "failed" and "output" not in failed
    assert failed["error"] == {"code": 4007098, "error_message": VTRIX_ERROR_TEXTS[98]}
    vtrix.error_style, vtrix.code_as_string = "generic", True
    assert (await vtask(vx, task_id))["error"] == {
        "code": "004007098",
        "message": "Generation failed",
    }
    vtrix.error_style = "string"
    assert (await vtask(vx, task_id))["error"] == "Generation failed"
    assert vtrix.total_cost() == Decimal("0.04")  # failed tasks are not charged

    vtrix.error_style, vtrix.code_as_string = "mj", False
    banned = await vfinished_failed(vx, clock, "a banned cat")
    assert banned["error"]["code"] == vtrix_code("diffusion", 98)
    assert BANNED_MESSAGE in banned["error"]["error_message"]


async def vfinished_failed(vx: httpx.AsyncClient, clock: FakeClock, text: str) -> dict[str, Any]:
    reply = await vcreate(vx, "diffusion", text=text)
    clock.advance(60)
    task = await vtask(vx, reply.json()["id"])
    assert task["status"] == "failed"
    return task


async def test_vtrix_alt_status_words_and_wrapped_replies(
    vx: httpx.AsyncClient, vtrix: FakeVtrix, clock: FakeClock
) -> None:
    vtrix.alt_status_words = True
    vtrix.wrap_replies = True
    reply = (await vcreate(vx, "diffusion", text="a cat")).json()
    assert reply["code"] == 0 and reply["data"]["status"] == "queued"
    task_id = reply["data"]["id"]
    clock.advance(10)
    assert (await vtask(vx, task_id))["data"]["status"] == "in_progress"
    clock.advance(60)
    assert (await vtask(vx, task_id))["data"]["status"] == "done"


# --- shared: records, faults, control API, CLI --------------------------------------------------


@pytest.mark.parametrize("backend", ["legnext", "vtrix"])
async def test_records_and_faults(backend: str, clock: FakeClock) -> None:
    fake_cls = FakeLegnext if backend == "legnext" else FakeVtrix
    headers = {"x-api-key": KEY} if backend == "legnext" else {"Authorization": f"Bearer {KEY}"}
    path = "/v1/diffusion" if backend == "legnext" else "/model/v1/generation"
    body: dict[str, Any] = (
        {"text": "a cat"}
        if backend == "legnext"
        else {"model": "midjourney_diffusion", "input": [{"params": {"text": "a cat"}}]}
    )
    async with (
        fake_cls(clock=clock, image_size=32) as fake,
        httpx.AsyncClient(base_url=fake.base_url, headers=headers, timeout=5.0) as c,
    ):
        clock.advance(5)
        fake.inject("POST", path, "429", retry_after=7)
        fake.inject("POST", path, "500")
        fake.inject("POST", path, "503", retry_after=2)
        fake.inject("POST", path, "401")
        fake.inject("POST", path, "malformed")
        r429 = await c.post(path, json=body)
        assert r429.status_code == 429 and r429.headers["retry-after"] == "7"
        assert (await c.post(path, json=body)).status_code == 500
        r503 = await c.post(path, json=body)
        assert r503.status_code == 503 and r503.headers["retry-after"] == "2"
        assert (await c.post(path, json=body)).status_code == 401
        malformed = await c.post(path, json=body)
        assert malformed.status_code == 200
        with pytest.raises(ValueError):
            malformed.json()
        fake.inject("POST", path, "reset", process=True)
        with pytest.raises(httpx.TransportError):
            await c.post(path, json=body)
        fake.inject("POST", path, "timeout", delay=0.05)
        slow = await c.post(path, json=body)
        assert slow.status_code == 200
        fake.inject("GET", "/", "400_code", code=4007003)
        coded = await c.get("/anything")
        assert coded.status_code == 400 and coded.json()["code"] == 4007003

        statuses = [r.status for r in fake.requests]
        assert statuses == [429, 500, 503, 401, 200, None, 200, 400]
        assert all(r.at == clock.time() for r in fake.requests)
        assert fake.requests[0].body == body and fake.requests[0].method == "POST"
        created = fake.created("diffusion")
        assert len(created) == 2  # the reset one (processed) and the slow one
        assert created[0].fault == "reset" and created[0].task_id in fake.tasks
        assert fake.running_task_count() == 2
        with pytest.raises(ValueError):
            fake.inject("POST", path, "explode")


@pytest.mark.parametrize("backend", ["legnext", "vtrix"])
async def test_control_api(backend: str, clock: FakeClock) -> None:
    fake_cls = FakeLegnext if backend == "legnext" else FakeVtrix
    async with fake_cls(clock=clock) as fake, httpx.AsyncClient(base_url=fake.base_url) as ctl:
        start = clock.time()
        assert (await ctl.post("/_control/advance", json={"seconds": 5})).json()["data"][
            "now"
        ] == start + 5
        assert (await ctl.post("/_control/advance", json={"seconds": -1})).status_code == 400
        reply = await ctl.post(
            "/_control/profile", json={"profile": {"pending_s": 0, "processing_s": 1}}
        )
        assert reply.status_code == 200 and fake.default_profile.processing_s == 1
        reply = await ctl.post(
            "/_control/profile", json={"op": "upscale", "profile": {"outcome": "failed"}}
        )
        assert fake.profile_for_op["upscale"].outcome == "failed"
        assert (
            await ctl.post("/_control/profile", json={"profile": {"outcome": "maybe"}})
        ).status_code == 400
        reply = await ctl.post(
            "/_control/inject", json={"method": "GET", "path_prefix": "/x", "fault": "500"}
        )
        assert reply.status_code == 200 and len(fake.faults) == 1
        assert (await ctl.get("/x")).status_code == 500
        recorded = (await ctl.get("/_control/requests")).json()["data"]
        assert [r["path"] for r in recorded] == ["/x"]
        assert (await ctl.delete("/_control/requests")).status_code == 200
        assert fake.requests == []
        assert (await ctl.get("/_control/tasks")).json()["data"] == {}


async def test_control_advance_needs_fake_clock() -> None:
    async with (
        FakeLegnext(clock=SystemClock()) as fake,
        httpx.AsyncClient(base_url=fake.base_url) as ctl,
    ):
        reply = await ctl.post("/_control/advance", json={"seconds": 5})
        assert reply.status_code == 400 and "FakeClock" in reply.json()["message"]


@pytest.mark.parametrize("backend", ["legnext", "vtrix"])
async def test_cli_serves_until_interrupted(backend: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.legnext",
        "--backend",
        backend,
        "--port",
        "0",
        "--api-key",
        "cli-key",
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
            if backend == "legnext":
                reply = await client.post(
                    "/v1/diffusion", json={"text": "a cat"}, headers={"x-api-key": "cli-key"}
                )
                assert reply.json()["status"] == "pending"
            else:
                reply = await client.post(
                    "/model/v1/generation",
                    json={"model": "midjourney_diffusion", "input": [{"params": {"text": "x"}}]},
                    headers={"Authorization": "Bearer cli-key"},
                )
                assert reply.json()["id"].startswith("task_")
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
