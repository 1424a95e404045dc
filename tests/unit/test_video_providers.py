"""Video in the neutral vocabulary and its translation by Legnext and midjourney-proxy
(PROVIDERS.md §8): the actions, the request bodies, the parsed results, and that Vtrix and
PiAPI offer none of it."""

from __future__ import annotations

from typing import Any

import pytest

from bot.actions import kind_of, operation_for
from bot.domain import Action, Job, JobStatus, Operation, OperationKind
from bot.providers import legnext_family as fam
from bot.providers.base import InvalidRequestError, UnsupportedOperationError
from bot.providers.legnext import CAPABILITIES as LEGNEXT_CAPS
from bot.providers.legnext import parse_job
from bot.providers.mjproxy import MJProxyProvider, neutral_action, parse_task
from bot.providers.piapi import PiAPIProvider
from bot.providers.vtrix import VtrixProvider
from bot.video import video_problem, video_prompt

UP = "11111111-2222-3333-4444-555555555555"
VID = "99999999-2222-3333-4444-555555555555"
H = "3dbbd469-36af-4a0f-8f02-df6c579e7011"


def single(**over: Any) -> Job:
    job = Job(
        id="upscaled1",
        operation=Operation(
            OperationKind.UPSCALE, prompt="a fox --ar 16:9 --v 7", variant="subtle"
        ),
        provider="legnext",
        status=JobStatus.COMPLETED,
        provider_ref=UP,
        provider_data={"job_id": UP, "image_count": 1},
        result_url=f"https://cdn.example/{UP}.png",
    )
    for key, value in over.items():
        setattr(job, key, value)
    return job


def video_job(count: int = 4, provider: str = "legnext", ref: str = VID) -> Job:
    videos = [{"url": f"https://cdn.example/{ref}_{i}.mp4", "cover": None} for i in range(count)]
    return Job(
        id="video1",
        operation=Operation(OperationKind.VIDEO, prompt="a fox", parent_job_id="upscaled1"),
        provider=provider,
        status=JobStatus.COMPLETED,
        provider_ref=ref,
        provider_data={"job_id": ref, "videos": videos, "video_source": "https://c/s.png"},
    )


def test_actions_become_video_operations() -> None:
    parent = single()
    animate = operation_for("animate_high:1", parent)
    assert (animate.kind, animate.index, animate.motion) == (OperationKind.VIDEO, 1, "high")
    assert animate.prompt == "a fox"  # image flags (--ar, --v) do not carry into a video
    extend = operation_for("extend_low:2", video_job())
    assert (extend.kind, extend.index, extend.motion) == (OperationKind.VIDEO_EXTEND, 2, "low")
    hd = operation_for("video_hd:3", video_job())
    assert (hd.kind, hd.index) == (OperationKind.VIDEO_UPSCALE, 3)
    assert kind_of("animate_low:1") is OperationKind.VIDEO
    assert kind_of("extend_high:4") is OperationKind.VIDEO_EXTEND
    assert kind_of("video_hd:1") is OperationKind.VIDEO_UPSCALE
    assert kind_of("animate_low:5") is None
    # The stored form reads back the same, and old operations are unchanged by the new fields.
    assert Operation.from_dict(animate.to_dict()) == animate
    assert "motion" not in Operation(OperationKind.IMAGINE, prompt="x").to_dict()


def test_video_job_keeps_its_videos_in_provider_data() -> None:
    job = video_job(2)
    assert [v.url for v in job.videos] == [
        f"https://cdn.example/{VID}_0.mp4",
        f"https://cdn.example/{VID}_1.mp4",
    ]
    assert {v.cover for v in job.videos} == {"https://c/s.png"}  # the start image stands in
    assert job.is_video and not single().is_video


@pytest.mark.parametrize(
    ("over", "words"),
    [
        ({"motion": "medium"}, "Motion must be low or high"),
        ({"batch_size": 3}, "1, 2 or 4"),
        ({"end_image_url": "not a url"}, "end image"),
        ({"video_loop": True, "end_image_url": "https://a/b.png"}, "loop or an end image"),
        ({"image_urls": ()}, "start image"),
    ],
)
def test_bad_video_options_are_named(over: dict[str, Any], words: str) -> None:
    base: dict[str, Any] = {"image_urls": ("https://a/start.png",), "motion": "low"}
    op = Operation(OperationKind.VIDEO_FROM_IMAGE, **{**base, **over})
    problem = video_problem(op)
    assert problem is not None and words in problem
    with pytest.raises(InvalidRequestError, match=words.split()[0]):
        fam.video_request(op, None, ref_is_upstream=True, label="Legnext")


def test_legnext_animate_an_upscale_addresses_its_job_and_image() -> None:
    op = operation_for("animate_low:1", single())
    request = fam.build_request(op, single(), ref_is_upstream=True, label="Legnext")
    assert request.op == "video-diffusion"
    assert request.params == {
        "jobId": UP,
        "imageNo": 0,
        "prompt": "a fox --motion low",
        "videoType": 0,
    }
    # A picked tile of a grid is (grid job, its number).
    picked = single(provider_data={"job_id": UP, "image_no": 2, "image_count": 1})
    request = fam.build_request(op, picked, ref_is_upstream=True, label="Legnext")
    assert (request.params["jobId"], request.params["imageNo"]) == (UP, 2)


def test_legnext_video_from_an_outside_image_puts_it_in_the_prompt() -> None:
    op = Operation(
        OperationKind.VIDEO_FROM_IMAGE,
        prompt="waves rolling in",
        image_urls=("https://img.example/start.png",),
        motion="high",
        raw_style=True,
        video_loop=True,
        batch_size=2,
        hd=True,
    )
    request = fam.build_request(op, None, ref_is_upstream=True, label="Legnext")
    assert request.op == "video-diffusion"
    assert request.params == {
        "prompt": (
            "https://img.example/start.png waves rolling in --motion high --raw --loop --bs 2"
        ),
        "videoType": 1,
    }
    end = Operation(
        OperationKind.VIDEO_FROM_IMAGE,
        image_urls=("https://img.example/a.png",),
        end_image_url="https://img.example/b.png",
    )
    assert video_prompt(end, start_image="S") == "S --motion low --end https://img.example/b.png"


def test_legnext_extend_and_hd_take_the_video_job_and_video_number() -> None:
    parent = video_job()
    extend = fam.build_request(
        operation_for("extend_low:1", parent), parent, ref_is_upstream=True, label="Legnext"
    )
    assert (extend.op, extend.params) == (
        "extend-video",
        {"jobId": VID, "videoNo": 0, "prompt": "a fox --motion low"},
    )
    hd = fam.build_request(
        operation_for("video_hd:4", parent), parent, ref_is_upstream=True, label="Legnext"
    )
    assert (hd.op, hd.params) == ("video-upscale", {"jobId": VID, "videoNo": 3})
    with pytest.raises(InvalidRequestError, match="Video 3 does not exist"):
        fam.build_request(
            operation_for("extend_high:3", video_job(2)),
            video_job(2),
            ref_is_upstream=True,
            label="Legnext",
        )
    with pytest.raises(InvalidRequestError, match="finished video job"):
        op = Operation(OperationKind.VIDEO_EXTEND, index=1, parent_job_id="upscaled1")
        fam.build_request(op, single(), ref_is_upstream=True, label="Legnext")


def test_legnext_parses_a_finished_video_job() -> None:
    urls = [f"https://image.legnext.ai/x/{VID}_0_{i}.mp4?Expires=1&Signature=s" for i in range(4)]
    obj = {
        "job_id": VID,
        "status": "completed",
        "output": {"video_urls": urls, "image_url": "https://cdn.example/cover.png"},
    }
    snap = parse_job(obj, op=Operation(OperationKind.VIDEO, index=1, parent_job_id="p"))
    assert snap.status is JobStatus.COMPLETED
    assert [v["url"] for v in snap.data["videos"]] == urls
    assert snap.result_url == "https://cdn.example/cover.png"
    names = [a.name for a in snap.actions or []]
    assert names[:3] == ["extend_low:1", "extend_high:1", "video_hd:1"]
    assert len(names) == 12
    # An HD video is not offered HD again; a video job without videos is a failure.
    up = parse_job(
        {**obj, "output": {"video_urls": urls[:1]}},
        op=Operation(OperationKind.VIDEO_UPSCALE, index=1, parent_job_id="v"),
    )
    assert [a.name for a in up.actions or []] == ["extend_low:1", "extend_high:1"]
    empty = parse_job({**obj, "output": {"video_urls": None}}, op=Operation(OperationKind.VIDEO))
    assert empty.status is JobStatus.FAILED and empty.error is not None


def test_animate_is_offered_only_where_the_backend_animates() -> None:
    up = Operation(OperationKind.UPSCALE, variant="subtle", prompt="a cat")
    legnext = [
        a.name for a in fam.synthesize_actions(op=up, image_count=1, capabilities=LEGNEXT_CAPS)
    ]
    assert legnext[-2:] == ["animate_low:1", "animate_high:1"]
    grid = fam.synthesize_actions(op=up, image_count=4, capabilities=LEGNEXT_CAPS)
    assert not [a for a in grid if a.name.startswith("animate")]  # Midjourney: upscales only
    vtrix = VtrixProvider(api_key="k").capabilities
    piapi = PiAPIProvider(api_key="k").capabilities
    for caps in (vtrix, piapi):
        assert not any(caps.supports(k) for k in OperationKind if k.is_video)
    vtrix_single = fam.synthesize_actions(op=up, image_count=1, capabilities=vtrix)
    assert not [a for a in vtrix_single if a.name.startswith("animate")]


# --- midjourney-proxy -------------------------------------------------------------------------


def test_mjproxy_video_buttons_get_neutral_names() -> None:
    assert neutral_action(f"MJ::JOB::animate_low::1::{H}::SOLO") == "animate_low:1"
    assert neutral_action(f"MJ::JOB::animate_high::1::{H}::SOLO") == "animate_high:1"
    assert neutral_action(f"MJ::JOB::animate_low_extend::1::{H}") == "extend_low:1"
    assert neutral_action(f"MJ::JOB::animate_high_extend::1::{H}") == "extend_high:1"
    assert neutral_action(f"MJ::JOB::video_virtual_upscale::1::{H}") is None


def _video_task(count: int, **over: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "id": "1790000000000001",
        "action": "VIDEO",
        "status": "SUCCESS",
        "progress": "100%",
        "imageUrl": "https://cdn.example/0_0.mp4",
        "videoUrl": "https://cdn.example/0_0.mp4",
        "videoUrls": [
            {"url": f"https://cdn.example/0_{i}.mp4", "thumbnail": f"https://cdn.example/{i}.webp"}
            for i in range(count)
        ],
        "thumbnailUrl": "https://cdn.example/0.webp",
        "contentType": "video/mp4",
        "jobId": H,
        "buttons": [
            *(
                {"customId": f"MJ::JOB::video_virtual_upscale::{n}::{H}", "label": f"U{n}"}
                for n in range(1, count + 1)
            ),
        ],
    }
    task.update(over)
    return task


def test_mjproxy_parses_a_video_task() -> None:
    snap = parse_task(_video_task(4))
    assert snap.status is JobStatus.COMPLETED
    assert [v["url"] for v in snap.data["videos"]] == [
        f"https://cdn.example/0_{i}.mp4" for i in range(4)
    ]
    assert snap.data["videos"][1]["cover"] == "https://cdn.example/1.webp"
    assert snap.result_url == "https://cdn.example/0.webp"  # a still, never the MP4
    assert snap.tiles is None
    names = [a.name for a in snap.actions or []]
    assert names == [f"extend_{m}:{v}" for v in range(1, 5) for m in ("low", "high")]
    assert "video_hd:1" not in names  # HD is chosen at creation on midjourney-proxy


def _proxy() -> MJProxyProvider:
    return MJProxyProvider(base_url="http://127.0.0.1:9", api_secret="s")


def test_mjproxy_video_bodies() -> None:
    proxy = _proxy()
    op = Operation(
        OperationKind.VIDEO_FROM_IMAGE,
        prompt="waves",
        image_urls=("https://img.example/a.png",),
        end_image_url="https://img.example/b.png",
        motion="high",
        batch_size=2,
        hd=True,
    )
    assert proxy.video_body(op, state="job1") == {
        "prompt": "waves",
        "image": "https://img.example/a.png",
        "endImage": "https://img.example/b.png",
        "motion": "high",
        "loop": False,
        "videoType": "vid_1.1_i2v_720",
        "batchSize": 2,
        "state": "job1",
    }
    parent = video_job(4, provider="mjproxy", ref="1790000000000001")
    extend = operation_for("extend_low:1", parent)
    assert proxy.extend_body(extend, parent, state="job2") == {
        "action": "extend",
        "taskId": "1790000000000001",
        "index": 0,
        "prompt": "a fox",
        "motion": "low",
        "state": "job2",
    }
    upscaled = single(
        provider="mjproxy",
        provider_ref="1780000000000001",
        actions=[Action("animate_low:1", raw=f"MJ::JOB::animate_low::1::{H}::SOLO")],
    )
    body = proxy.action_body(operation_for("animate_low:1", upscaled), upscaled, state="j3")
    assert body == {
        "taskId": "1780000000000001",
        "customId": f"MJ::JOB::animate_low::1::{H}::SOLO",
        "state": "j3",
    }


async def test_mjproxy_refuses_what_it_cannot_before_sending() -> None:
    proxy = _proxy()
    parent = video_job(4, provider="mjproxy", ref="1790000000000001")
    job = Job(id="new", operation=Operation(OperationKind.VIDEO_UPSCALE), provider="mjproxy")
    with pytest.raises(UnsupportedOperationError, match="HD"):
        await proxy.submit(operation_for("video_hd:1", parent), job=job, parent=parent)
    # Without its button (or with options the button lacks) a job's image goes to
    # /mj/submit/video as the start frame; one without an image is refused first.
    no_image = single(
        provider="mjproxy", provider_ref="1780000000000001", actions=[], result_url=None
    )
    with pytest.raises(InvalidRequestError, match="no image to animate"):
        await proxy.submit(operation_for("animate_low:1", no_image), job=job, parent=no_image)
    looped = Operation(OperationKind.VIDEO, index=1, video_loop=True, parent_job_id="upscaled1")
    body = proxy.video_from_job(looped, single(provider="mjproxy"), state="s")
    assert (body["image"], body["loop"]) == (f"https://cdn.example/{UP}.png", True)
    await proxy.aclose()
