"""The engine driving the PiAPI provider against the fake PiAPI: life cycle, follow-ups,
faults and restarts. Assertions are on what the fake received and what the store holds."""

from __future__ import annotations

import base64
import dataclasses
import io
from decimal import Decimal

from PIL import Image

from bot.actions import ActionInput, operation_for
from bot.domain import (
    BlendDimension,
    ErrorCode,
    Job,
    JobStatus,
    Operation,
    OperationKind,
    SpeedMode,
)
from tests.integration.conftest import ENGINE_SETTINGS, Harness

IMAGINE = Operation(
    OperationKind.IMAGINE, prompt="a lighthouse at dusk", aspect_ratio="16:9", mode=SpeedMode.FAST
)


def creates(h: Harness, task_type: str | None = None) -> list[dict]:
    return [r.json for r in h.fake.created(task_type)]


async def test_imagine_goes_from_submit_to_completed_with_progress(h: Harness) -> None:
    job = await h.engine.submit(IMAGINE, requester_id="u1", idempotency_key="i-1")
    assert job.status is JobStatus.QUEUED
    [done] = await h.finish(job)

    assert done.status is JobStatus.COMPLETED
    assert done.progress == 100
    assert done.result_url and done.result_url.startswith(h.fake.base_url)
    assert done.tiles is not None and len(done.tiles) == 4
    assert {a.name for a in done.actions} >= {"pick:1", "pick:4", "vary_grid:2", "reroll"}
    assert done.cost is not None and done.cost.unit == "point" and done.cost.amount > 0

    seen = [e.job for e in h.events if e.job.id == job.id]
    statuses = [j.status for j in seen]
    assert statuses[0] is JobStatus.QUEUED and statuses[-1] is JobStatus.COMPLETED
    assert JobStatus.SUBMITTED in statuses and JobStatus.RUNNING in statuses
    running_progress = {
        j.progress for j in seen if j.status is JobStatus.RUNNING and j.progress is not None
    }
    assert len(running_progress - {0, 100}) >= 2, running_progress
    assert any(j.preview_url for j in seen if j.status is JobStatus.RUNNING)

    [body] = creates(h, "imagine")
    assert body["input"]["prompt"] == "a lighthouse at dusk"
    assert body["input"]["aspect_ratio"] == "16:9"
    assert body["input"]["process_mode"] == "fast"

    stored = await h.store.jobs.get(job.id)
    assert (
        stored is not None
        and stored.status is JobStatus.COMPLETED
        and stored.result_url == done.result_url
    )


async def test_same_idempotency_key_submits_once(h: Harness) -> None:
    first = await h.engine.submit(IMAGINE, requester_id="u1", idempotency_key="click-42")
    second = await h.engine.submit(IMAGINE, requester_id="u1", idempotency_key="click-42")
    assert first.id == second.id
    await h.finish(first)
    assert len(creates(h, "imagine")) == 1


async def _completed(h: Harness, op: Operation, key: str) -> Job:
    job = await h.engine.submit(op, requester_id="u1", idempotency_key=key)
    [done] = await h.finish(job)
    assert done.status is JobStatus.COMPLETED, done.error
    return done


def _mask_b64() -> str:
    image = Image.new("L", (128, 128), 0)
    image.paste(255, (32, 32, 96, 96))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


async def test_every_action_and_task_type_round_trips(h: Harness) -> None:
    grid = await _completed(h, IMAGINE, "grid")

    # Grid follow-ups: U1-U4, V1-V4, reroll.
    for action in ("pick:1", "pick:2", "pick:3", "pick:4", "vary_grid:1", "vary_grid:4", "reroll"):
        await _completed(h, operation_for(action, grid), action)
    ups = creates(h, "upscale")
    assert [(b["input"]["origin_task_id"], b["input"]["index"]) for b in ups] == [
        (grid.provider_ref, "1"),
        (grid.provider_ref, "2"),
        (grid.provider_ref, "3"),
        (grid.provider_ref, "4"),
    ]
    variations = creates(h, "variation")
    assert [b["input"]["index"] for b in variations] == ["1", "4"]
    assert all(b["input"]["prompt"] == IMAGINE.prompt for b in variations)
    [reroll] = creates(h, "reroll")
    assert reroll["input"]["origin_task_id"] == grid.provider_ref

    upscaled = await _completed(h, operation_for("pick:2", grid), "u2-again")
    names = {a.name for a in upscaled.actions}
    assert {
        "vary_strong",
        "vary_subtle",
        "vary_region",
        "zoom_out_2x",
        "zoom_out_1_5x",
        "zoom_custom",
        "pan_left",
        "pan_right",
        "pan_up",
        "pan_down",
        "upscale_subtle",
        "upscale_creative",
    } <= names

    given = {
        "vary_region": ActionInput(prompt="a red door", mask_png_base64=_mask_b64()),
        "zoom_custom": ActionInput(zoom_ratio=Decimal("1.7")),
    }
    expected = {
        "vary_strong": ("variation", {"index": "high_variation"}),
        "vary_subtle": ("variation", {"index": "low_variation"}),
        "upscale_subtle": ("upscale", {"index": "subtle"}),
        "upscale_creative": ("upscale", {"index": "creative"}),
        "zoom_out_2x": ("outpaint", {"zoom_ratio": "2"}),
        "zoom_out_1_5x": ("outpaint", {"zoom_ratio": "1.5"}),
        "zoom_custom": ("outpaint", {"zoom_ratio": "1.7"}),
        "vary_region": ("inpaint", {"prompt": "a red door"}),
        "pan_left": ("pan", {"direction": "left"}),
        "pan_right": ("pan", {"direction": "right"}),
        "pan_up": ("pan", {"direction": "up"}),
        "pan_down": ("pan", {"direction": "down"}),
    }
    for action, (task_type, fields) in expected.items():
        before = len(creates(h))
        await _completed(h, operation_for(action, upscaled, given.get(action)), f"up-{action}")
        body = creates(h)[before]
        assert body["task_type"] == task_type, action
        assert body["input"]["origin_task_id"] == upscaled.provider_ref, action
        for key, value in fields.items():
            assert body["input"][key] == value, (action, key)

    seeded = await _completed(h, operation_for("seed", grid), "seed")
    assert seeded.seed and seeded.seed.isdigit()

    described = await _completed(
        h, Operation(OperationKind.DESCRIBE, image_urls=(grid.result_url or "",)), "describe"
    )
    assert described.prompts is not None and len(described.prompts) == 4

    blended = await _completed(
        h,
        Operation(
            OperationKind.BLEND,
            image_urls=tuple(grid.tiles or [])[:3],
            dimension=BlendDimension.PORTRAIT,
        ),
        "blend",
    )
    assert blended.tiles and len(blended.tiles) == 4
    [blend_body] = creates(h, "blend")
    assert (
        blend_body["input"]["dimension"] == "portrait"
        and len(blend_body["input"]["image_urls"]) == 3
    )


async def test_banned_prompt_fails_with_reason(h: Harness) -> None:
    job = await h.engine.submit(
        Operation(OperationKind.IMAGINE, prompt="a banned thing"), requester_id="u1"
    )
    [done] = await h.finish(job)
    assert done.status is JobStatus.FAILED
    assert done.error is not None and done.error.code is ErrorCode.MODERATED
    assert done.error.provider_text and "Banned prompt" in done.error.provider_text
    assert done.actions == []


async def test_follow_up_on_a_parent_past_the_window_is_refused_locally(h: Harness) -> None:
    grid = await _completed(h, IMAGINE, "old-grid")
    h.clock.advance(3 * 3600 + 60)
    before = len(creates(h))
    job = await h.engine.submit(operation_for("pick:1", grid), requester_id="u1")
    [done] = await h.finish(job)
    assert done.status is JobStatus.FAILED and done.error is not None
    assert done.error.code is ErrorCode.PARENT_TOO_OLD
    assert len(creates(h)) == before  # nothing was sent


async def test_concurrency_limit_and_round_robin(h: Harness) -> None:
    jobs = []
    for n in range(3):
        for member in ("a", "b"):
            jobs.append(
                await h.engine.submit(
                    Operation(OperationKind.IMAGINE, prompt=f"{member} picture {n}"),
                    requester_id=member,
                )
            )
    await h.engine.settle()
    assert len(creates(h)) == 3  # max_concurrent_jobs
    waiting = [e.job for e in h.events if e.job.queue_position is not None]
    assert waiting, "queued jobs announce their position"
    done = await h.finish(*jobs)
    assert all(j.status is JobStatus.COMPLETED for j in done)
    order = [b["input"]["prompt"].split()[0] for b in creates(h, "imagine")]
    assert order == ["a", "b", "a", "b", "a", "b"]


async def test_progress_alone_waits_for_the_interval_and_is_written_at_stop(
    h: Harness,
) -> None:
    """Status changes reach the store before their event; progress alone waits for
    progress_save_interval_s (a restart's first poll brings it back) or a clean stop."""

    async def restart(interval: float) -> None:
        await h.engine.stop()
        h.engine = await h.new_engine(
            settings=dataclasses.replace(ENGINE_SETTINGS, progress_save_interval_s=interval)
        )
        await h.engine.start()

    def running_progress(job: Job) -> list[int]:
        return [
            e.job.progress or 0
            for e in h.events
            if e.job.id == job.id and e.job.status is JobStatus.RUNNING
        ]

    # An interval longer than the job: only the status change to running is written.
    await restart(1000.0)
    job = await h.engine.submit(IMAGINE, requester_id="u1", idempotency_key="p-1")
    await h.run_until(lambda: 75 in running_progress(job))
    stored = await h.store.jobs.get(job.id)
    assert stored is not None and stored.status is JobStatus.RUNNING
    assert (stored.progress or 0) == 0
    await h.engine.stop()
    stored = await h.store.jobs.get(job.id)
    assert stored is not None and stored.status is JobStatus.RUNNING and stored.progress == 75

    # A restart resumes it from the store and finishes it.
    await restart(0.0)
    [done] = await h.finish(job)
    assert done.status is JobStatus.COMPLETED

    # An interval of 0: every change is written before its event, as before.
    other = await h.engine.submit(IMAGINE, requester_id="u1", idempotency_key="p-2")
    await h.run_until(lambda: 50 in running_progress(other))
    stored = await h.store.jobs.get(other.id)
    assert stored is not None and stored.progress == 50


async def test_progress_is_written_well_within_the_stall_deadline(h: Harness) -> None:
    """However long the interval, the stored time of the last change never falls more than
    a quarter of the stall deadline behind (a restart reads it to judge a stall)."""
    await h.engine.stop()
    h.engine = await h.new_engine(
        settings=dataclasses.replace(
            ENGINE_SETTINGS, progress_save_interval_s=1000.0, stall_timeout_s=20.0
        )
    )
    await h.engine.start()
    job = await h.engine.submit(IMAGINE, requester_id="u1", idempotency_key="s-1")

    def progress_seen() -> set[int]:
        return {
            e.job.progress or 0
            for e in h.events
            if e.job.id == job.id and e.job.status is JobStatus.RUNNING
        }

    await h.run_until(lambda: 50 in progress_seen())  # steps come 6 s apart; 20 / 4 = 5 s
    stored = await h.store.jobs.get(job.id)
    assert stored is not None and stored.progress == 50
