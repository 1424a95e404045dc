"""Tests of the fake midjourney-proxy itself, over real HTTP on a FakeClock."""

from __future__ import annotations

import asyncio
import base64
import io
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from bot.clock import FakeClock
from tests.fakes.mjproxy import FakeMJProxy, Profile

SECRET = "test-secret"
ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def fake(clock: FakeClock) -> AsyncIterator[FakeMJProxy]:
    async with FakeMJProxy(clock=clock, image_size=64) as server:
        yield server


@pytest.fixture
async def client(fake: FakeMJProxy) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=fake.base_url, headers={"mj-api-secret": SECRET}, timeout=5.0
    ) as c:
        yield c


async def submit(client: httpx.AsyncClient, op: str, **body: Any) -> dict[str, Any]:
    reply = await client.post(f"/mj/submit/{op}", json=body)
    assert reply.status_code in (200, 404), reply.text
    data: dict[str, Any] = reply.json()
    assert set(data) >= {"code", "description", "result", "properties"}
    return data


async def fetch(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    reply = await client.get(f"/mj/task/{task_id}/fetch")
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json()
    return data


async def finished(
    client: httpx.AsyncClient, clock: FakeClock, op: str = "imagine", **body: Any
) -> dict[str, Any]:
    reply = await submit(client, op, **body)
    assert reply["code"] == 1, reply
    clock.advance(60)
    task = await fetch(client, reply["result"])
    assert task["status"] == "SUCCESS", task
    return task


def button(task: dict[str, Any], label: str = "", emoji: str = "", prefix: str = "") -> str:
    for b in task["buttons"]:
        if (label and b["label"] == label) or (emoji and b["emoji"] == emoji):
            return str(b["customId"])
        if prefix and b["customId"].startswith(prefix):
            return str(b["customId"])
    raise AssertionError(f"no button {label or emoji or prefix} in {task['buttons']}")


def png_size(content: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(content)) as image:
        return image.size


# --- auth ---------------------------------------------------------------------------------


async def test_secret_header_is_required(fake: FakeMJProxy) -> None:
    async with httpx.AsyncClient(base_url=fake.base_url) as c:
        reply = await c.post("/mj/submit/imagine", json={"prompt": "x"})
        assert reply.status_code == 401 and reply.json()["code"] == 401
        reply = await c.post(
            "/mj/submit/imagine", json={"prompt": "x"}, headers={"mj-api-secret": "wrong"}
        )
        assert reply.status_code == 401
        reply = await c.post(
            "/mj/submit/imagine",
            json={"prompt": "x"},
            headers={"Authorization": f"Bearer {SECRET}"},
        )
        assert reply.status_code == 401  # wrong style
    assert fake.tasks == {}
    assert all(r.headers.get("mj-api-secret") in (None, "<redacted>") for r in fake.requests)


async def test_bearer_style(clock: FakeClock) -> None:
    async with FakeMJProxy(clock=clock, auth_style="bearer", api_secret="tok") as fake:
        async with httpx.AsyncClient(base_url=fake.base_url) as c:
            ok = await c.post(
                "/mj/submit/imagine", json={"prompt": "x"}, headers={"Authorization": "Bearer tok"}
            )
            assert ok.status_code == 200 and ok.json()["code"] == 1
            bad = await c.post(
                "/mj/submit/imagine", json={"prompt": "x"}, headers={"mj-api-secret": "tok"}
            )
            assert bad.status_code == 401
        assert fake.requests[0].headers["Authorization"] == "<redacted>"


# --- life cycle -----------------------------------------------------------------------------


async def test_imagine_life_cycle(
    fake: FakeMJProxy, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    reply = await submit(client, "imagine", prompt="a cat --ar 2:1", state="job-1")
    assert reply["code"] == 1 and reply["result"].isdigit()
    task_id = reply["result"]
    assert [r.task_id for r in fake.created("IMAGINE")] == [task_id]

    task = await fetch(client, task_id)
    assert task["status"] == "SUBMITTED" and task["progress"] == "0%"
    assert task["state"] == "job-1" and task["action"] == "IMAGINE"
    assert task["imageUrl"] is None and task["buttons"] == [] and task["startTime"] is None
    assert fake.running_task_count() == 1

    clock.advance(3)
    seen = []
    for _ in range(4):
        task = await fetch(client, task_id)
        assert task["status"] == "IN_PROGRESS"
        seen.append(task["progress"])
        clock.advance(6)
    assert seen == ["0%", "25%", "50%", "75%"]
    assert task["imageUrl"].endswith(f"{task_id}_p3.png")
    preview = await client.get(task["imageUrl"])
    assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")

    clock.advance(10)
    task = await fetch(client, task_id)
    assert task["status"] == "SUCCESS" and task["progress"] == "100%"
    assert fake.running_task_count() == 0
    assert len(task["jobId"]) == 36
    assert task["submitTime"] < task["startTime"] < task["finishTime"]
    assert task["width"] == 64 and task["height"] == 32
    grid = await client.get(task["imageUrl"])
    assert png_size(grid.content) == (64, 32)
    assert [u["url"].rsplit("/", 1)[1] for u in task["imageUrls"]] == [
        f"{task_id}_{n}.png" for n in range(1, 5)
    ]
    tile = await client.get(task["imageUrls"][0]["url"])
    assert png_size(tile.content) == (32, 16)
    h = task["jobId"]
    assert [b["customId"] for b in task["buttons"]] == [
        *(f"MJ::JOB::upsample::{n}::{h}" for n in range(1, 5)),
        f"MJ::JOB::reroll::0::{h}::SOLO",
        *(f"MJ::JOB::variation::{n}::{h}" for n in range(1, 5)),
    ]
    assert [b["label"] for b in task["buttons"]][:4] == ["U1", "U2", "U3", "U4"]
    assert task["buttons"][4]["emoji"] == "🔄" and task["buttons"][4]["label"] == ""
    assert all(b["style"] == 2 and b["type"] == 2 for b in task["buttons"])
    assert task["properties"]["finalPrompt"] == "a cat --ar 2:1"


async def test_upscale_gives_single_with_its_buttons(
    fake: FakeMJProxy, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    grid = await finished(client, clock, prompt="a cat --ar 16:9")
    up = await finished(
        client, clock, "action", taskId=grid["id"], customId=button(grid, label="U2")
    )
    assert up["action"] == "UPSCALE" and up["parentId"] == grid["id"]
    assert up["imageUrls"] is None
    h = up["jobId"]
    labels = [(b["label"], b["emoji"]) for b in up["buttons"]]
    assert labels[:5] == [
        ("Upscale (Subtle)", ""),
        ("Upscale (Creative)", ""),
        ("Vary (Subtle)", "🪄"),
        ("Vary (Strong)", "🪄"),
        ("Vary (Region)", "🖌️"),
    ]
    ids = [b["customId"] for b in up["buttons"]]
    assert f"MJ::JOB::upsample_v6r1_2x_subtle::1::{h}::SOLO" in ids
    assert f"MJ::Outpaint::50::1::{h}::SOLO" in ids and f"MJ::CustomZoom::{h}" in ids
    assert f"MJ::Outpaint::100::1::{h}::SOLO" in ids  # Make Square: not square
    assert f"MJ::JOB::pan_left::1::{h}::SOLO" in ids
    assert f"MJ::JOB::animate_high::1::{h}::SOLO" in ids
    single = await client.get(up["imageUrl"])
    assert single.status_code == 200

    square = await finished(client, clock, prompt="a dog")
    up2 = await finished(
        client, clock, "action", taskId=square["id"], customId=button(square, label="U1")
    )
    assert not any(b["label"] == "Make Square" for b in up2["buttons"])
    redo = await finished(
        client, clock, "action", taskId=up2["id"], customId=button(up2, label="Upscale (Subtle)")
    )
    assert any(b["label"] == "Redo Upscale (Subtle)" for b in redo["buttons"])


async def test_action_validation(client: httpx.AsyncClient, clock: FakeClock) -> None:
    grid = await finished(client, clock, prompt="a cat")
    reply = await submit(client, "action", taskId=grid["id"], customId="MJ::JOB::upsample::1::x")
    assert reply["code"] == 4 and "not a button" in reply["description"]
    reply = await submit(client, "action", taskId=grid["id"])
    assert reply["code"] == 4
    unknown = await client.post(
        "/mj/submit/action", json={"taskId": "999", "customId": button(grid, label="U1")}
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == 3
    running = await submit(client, "imagine", prompt="b")
    reply = await submit(client, "action", taskId=running["result"], customId="x")
    assert reply["code"] == 4


async def test_banned_prompt_is_code_24(fake: FakeMJProxy, client: httpx.AsyncClient) -> None:
    reply = await submit(client, "imagine", prompt="a banned thing")
    assert reply["code"] == 24 and reply["properties"]["bannedWord"] == "banned"
    assert fake.tasks == {} and fake.requests[0].code == 24
    assert (await submit(client, "imagine", prompt=" "))["code"] == 4


async def test_queue_codes(fake: FakeMJProxy, client: httpx.AsyncClient, clock: FakeClock) -> None:
    fake.max_running, fake.queue_size = 2, 2
    codes = [(await submit(client, "imagine", prompt=f"p{i}")) for i in range(5)]
    assert [c["code"] for c in codes] == [1, 1, 22, 22, 23]
    assert codes[2]["properties"]["numberOfQueues"] == 1
    assert codes[3]["properties"]["numberOfQueues"] == 2
    queued = codes[2]["result"]
    assert (await fetch(client, queued))["status"] == "NOT_START"
    clock.advance(27)  # the first two end: the queued ones start
    assert (await fetch(client, queued))["status"] == "SUBMITTED"
    clock.advance(100)
    assert (await fetch(client, queued))["status"] == "SUCCESS"


async def test_injected_queue_full(fake: FakeMJProxy, client: httpx.AsyncClient) -> None:
    fake.inject("POST", "/mj/submit/imagine", "queue_full")
    assert (await submit(client, "imagine", prompt="x"))["code"] == 23
    assert (await submit(client, "imagine", prompt="x"))["code"] == 1
    assert len(fake.created()) == 1


# --- the MODAL flow ---------------------------------------------------------------------------


async def test_custom_zoom_modal_flow(
    fake: FakeMJProxy, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    grid = await finished(client, clock, prompt="a cat")
    up = await finished(client, clock, "action", taskId=grid["id"], customId=button(grid, "U1"))
    zoom = button(up, label="Custom Zoom")
    reply = await submit(client, "action", taskId=up["id"], customId=zoom, state="s")
    assert reply["code"] == 21 and reply["description"] == "Waiting for window confirm"
    modal_id = reply["result"]
    assert (await fetch(client, modal_id))["status"] == "MODAL"
    assert [r.task_id for r in fake.created("MODAL")] == [modal_id]
    clock.advance(100)
    assert (await fetch(client, modal_id))["status"] == "MODAL"  # waits for its window

    for bad in ("a cat", "a cat --zoom 2.5", "a cat --zoom 1", "a cat --zoom x"):
        assert (await submit(client, "modal", taskId=modal_id, prompt=bad))["code"] == 4
    assert (await submit(client, "modal", taskId=modal_id))["code"] == 4
    reply = await submit(client, "modal", taskId=modal_id, prompt="a cat --zoom 1.7")
    assert reply["code"] == 1 and reply["result"] == modal_id
    assert [r.task_id for r in fake.modals()] == [modal_id]
    task = await fetch(client, modal_id)
    assert task["status"] == "SUBMITTED" and task["prompt"] == "a cat --zoom 1.7"
    again = await submit(client, "modal", taskId=modal_id, prompt="a cat --zoom 1.7")
    assert again["code"] == 4  # no longer MODAL
    clock.advance(60)
    task = await fetch(client, modal_id)
    assert task["status"] == "SUCCESS" and task["action"] == "OUTPAINT"
    assert len(task["imageUrls"]) == 4


async def test_inpaint_needs_png_mask(client: httpx.AsyncClient, clock: FakeClock) -> None:
    grid = await finished(client, clock, prompt="a cat")
    up = await finished(client, clock, "action", taskId=grid["id"], customId=button(grid, "U1"))
    reply = await submit(client, "action", taskId=up["id"], customId=button(up, "Vary (Region)"))
    assert reply["code"] == 21
    modal_id = reply["result"]
    bad = "data:image/png;base64," + base64.b64encode(b"GIF89a").decode()
    for mask in (None, "not-a-data-url", bad):
        reply = await submit(client, "modal", taskId=modal_id, prompt="a hat", maskBase64=mask)
        assert reply["code"] == 4
    reply = await submit(client, "modal", taskId=modal_id, prompt="a hat", maskBase64=PNG_URL)
    assert reply["code"] == 1
    clock.advance(60)
    assert (await fetch(client, modal_id))["action"] == "INPAINT"


async def test_remix_mode_sends_variations_through_modal(
    fake: FakeMJProxy, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    grid = await finished(client, clock, prompt="a cat")
    upscale = await submit(client, "action", taskId=grid["id"], customId=button(grid, "U1"))
    assert upscale["code"] == 1
    fake.remix_mode = True
    reply = await submit(client, "action", taskId=grid["id"], customId=button(grid, "V1"))
    assert reply["code"] == 21
    reply = await submit(client, "modal", taskId=reply["result"], prompt="a cat, remixed")
    assert reply["code"] == 1
    upscale = await submit(client, "action", taskId=grid["id"], customId=button(grid, "U2"))
    assert upscale["code"] == 1  # U is never a modal


async def test_modal_on_unknown_task(client: httpx.AsyncClient) -> None:
    reply = await client.post("/mj/submit/modal", json={"taskId": "42", "prompt": "x"})
    assert reply.status_code == 404 and reply.json()["code"] == 3


# --- blend, describe, seed, list, cancel ------------------------------------------------------


async def test_blend_validation(client: httpx.AsyncClient, clock: FakeClock) -> None:
    assert (await submit(client, "blend", base64Array=[PNG_URL], dimensions="SQUARE"))["code"] == 4
    six = [PNG_URL] * 6
    assert (await submit(client, "blend", base64Array=six, dimensions="SQUARE"))["code"] == 4
    bad = [PNG_URL, "https://not/a/data/url.png"]
    assert (await submit(client, "blend", base64Array=bad, dimensions="SQUARE"))["code"] == 4
    assert (await submit(client, "blend", base64Array=[PNG_URL] * 2))["code"] == 4
    task = await finished(client, clock, "blend", base64Array=[PNG_URL] * 3, dimensions="LANDSCAPE")
    assert task["action"] == "BLEND" and task["width"] > task["height"]


async def test_describe_and_pick(client: httpx.AsyncClient, clock: FakeClock) -> None:
    assert (await submit(client, "describe"))["code"] == 4
    assert (await submit(client, "describe", link="ftp://x"))["code"] == 4
    task = await finished(client, clock, "describe", link="https://cdn.example/a.png")
    lines = task["properties"]["finalPrompt"].split("\n\n")
    assert [line[:3] for line in lines] == ["1️⃣", "2️⃣", "3️⃣", "4️⃣"]
    assert [b["label"] for b in task["buttons"][:4]] == ["1", "2", "3", "4"]
    reply = await submit(client, "action", taskId=task["id"], customId="MJ::Job::PicReader::2")
    assert reply["code"] == 21
    reply = await submit(client, "modal", taskId=reply["result"], prompt="a fox in soft light")
    assert reply["code"] == 1


async def test_image_seed(client: httpx.AsyncClient, clock: FakeClock) -> None:
    grid = await finished(client, clock, prompt="a cat")
    assert (await fetch(client, grid["id"]))["seed"] is None
    reply = await client.get(f"/mj/task/{grid['id']}/image-seed")
    assert reply.json()["code"] == 1 and reply.json()["result"].isdigit()
    assert (await fetch(client, grid["id"]))["seed"] == reply.json()["result"]
    missing = await client.get("/mj/task/1/image-seed")
    assert missing.status_code == 404 and missing.json()["code"] == 3


async def test_list_fetch_unknown_and_vanish(fake: FakeMJProxy, client: httpx.AsyncClient) -> None:
    a = (await submit(client, "imagine", prompt="a"))["result"]
    b = (await submit(client, "imagine", prompt="b"))["result"]
    listed = await client.post("/mj/task/list-by-condition", json={"ids": [a, b, "nope"]})
    assert sorted(t["id"] for t in listed.json()) == sorted([a, b])
    unknown = await client.get("/mj/task/123/fetch")
    assert unknown.status_code == 204 and unknown.content == b""
    fake.vanish(a)
    assert (await client.get(f"/mj/task/{a}/fetch")).status_code == 204


async def test_cancel(fake: FakeMJProxy, client: httpx.AsyncClient, clock: FakeClock) -> None:
    task_id = (await submit(client, "imagine", prompt="a"))["result"]
    reply = await client.post(f"/mj/task/{task_id}/cancel")
    assert reply.status_code == 200
    task = await fetch(client, task_id)
    assert task["status"] == "CANCEL" and task["failReason"] == "取消任务"
    assert fake.running_task_count() == 0


async def test_mode_prefixes(fake: FakeMJProxy, client: httpx.AsyncClient) -> None:
    for prefix, mode in (("/mj-relax", "RELAX"), ("/mj-turbo", "TURBO"), ("/mj-fast", "FAST")):
        reply = await client.post(f"{prefix}/mj/submit/imagine", json={"prompt": "x"})
        task_id = reply.json()["result"]
        assert fake.tasks[task_id].mode == mode
        assert (await client.get(f"{prefix}/mj/task/{task_id}/fetch")).json()["mode"] == mode
    data = await submit(client, "imagine", prompt="y", accountFilter={"modes": ["RELAX"]})
    assert fake.tasks[data["result"]].mode == "RELAX"


async def test_profiles(fake: FakeMJProxy, client: httpx.AsyncClient, clock: FakeClock) -> None:
    fake.profile_for_prompt["doomed"] = Profile(outcome="failed", error_message="Job failed")
    task_id = (await submit(client, "imagine", prompt="a doomed ship"))["result"]
    clock.advance(60)
    task = await fetch(client, task_id)
    assert task["status"] == "FAILURE" and task["failReason"] == "Job failed"
    assert task["buttons"] == [] and task["imageUrl"] is None


# --- faults and control -----------------------------------------------------------------------


async def test_faults(fake: FakeMJProxy, client: httpx.AsyncClient) -> None:
    fake.inject("POST", "/mj/submit", "429", retry_after=3)
    reply = await client.post("/mj/submit/imagine", json={"prompt": "x"})
    assert reply.status_code == 429 and reply.headers["Retry-After"] == "3"
    for kind, status in (("401", 401), ("500", 500), ("503", 503)):
        fake.inject("*", "/mj/", kind)
        assert (await client.post("/mj/submit/imagine", json={"prompt": "x"})).status_code == status
    fake.inject("POST", "/mj/submit", "malformed", process=True)
    reply = await client.post("/mj/submit/imagine", json={"prompt": "x"})
    assert reply.status_code == 200
    with pytest.raises(ValueError):
        reply.json()
    assert len(fake.created()) == 1  # processed, reply lost
    fake.inject("POST", "/mj/submit", "reset")
    with pytest.raises(httpx.TransportError):
        await client.post("/mj/submit/imagine", json={"prompt": "x"})
    assert fake.requests[-1].status is None and fake.requests[-1].fault == "reset"
    with pytest.raises(ValueError):
        fake.inject("*", "/", "nope")


async def test_timeout_fault_creates_the_task(fake: FakeMJProxy) -> None:
    fake.inject("POST", "/mj/submit/imagine", "timeout", delay=5)
    async with httpx.AsyncClient(
        base_url=fake.base_url, headers={"mj-api-secret": SECRET}, timeout=0.05
    ) as c:
        with pytest.raises(httpx.TimeoutException):
            await c.post("/mj/submit/imagine", json={"prompt": "x"})
    assert len(fake.created("IMAGINE")) == 1


async def test_control_api(fake: FakeMJProxy, client: httpx.AsyncClient, clock: FakeClock) -> None:
    task_id = (await submit(client, "imagine", prompt="x"))["result"]
    async with httpx.AsyncClient(base_url=fake.base_url) as c:
        assert (await c.post("/_control/advance", json={"seconds": 60})).status_code == 200
        assert (await fetch(client, task_id))["status"] == "SUCCESS"
        records = (await c.get("/_control/requests")).json()["result"]
        assert records[0]["path"] == "/mj/submit/imagine" and records[0]["task_id"] == task_id
        assert records[0]["body"] == {"prompt": "x"} and records[0]["status"] == 200
        reply = await c.post(
            "/_control/inject", json={"fault": "queue_full", "path_prefix": "/mj/submit"}
        )
        assert reply.status_code == 200
        assert (await submit(client, "imagine", prompt="x"))["code"] == 23
        reply = await c.post("/_control/profile", json={"profile": {"outcome": "failed"}})
        assert reply.status_code == 200 and fake.default_profile.outcome == "failed"
        assert (await c.post("/_control/remix", json={"on": True})).status_code == 200
        assert fake.remix_mode
        assert (await c.post("/_control/vanish", json={"task_id": task_id})).status_code == 200
        tasks = (await c.get("/_control/tasks")).json()["result"]
        assert task_id in tasks
        await c.delete("/_control/requests")
    assert fake.requests == []


async def test_cli_serves_and_stops() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.mjproxy",
        "--port",
        "0",
        "--secret",
        "cli-secret",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=15)
        base_url = line.decode().strip()
        assert base_url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=base_url) as c:
            reply = await c.post(
                "/mj/submit/imagine", json={"prompt": "x"}, headers={"mj-api-secret": "cli-secret"}
            )
            assert reply.json()["code"] == 1
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), timeout=10)
