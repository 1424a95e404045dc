"""Video in the community rules (issue 18): a video job weighs `video_weight` image jobs in
the daily limits, servers can turn video off, and the prompt check knows the video
parameters."""

from __future__ import annotations

import pytest

from bot.community import DEFAULT_VIDEO_WEIGHT, GuildSettings, Limits, check_quota
from bot.prompt_check import BannedWords, check_prompt

DAY = 1_700_000_000.0 - (1_700_000_000.0 % 86400)


def quota(limits: Limits, **counts: int) -> str | None:
    args = {"active_jobs": 0, "jobs_today": 0, "fast_jobs_today": 0, **counts}
    video = bool(args.pop("is_video", 0))
    refusal = check_quota(
        limits,
        mode="fast",
        now=DAY + 60,
        day_start=DAY,
        video_weight=8,
        is_video=video,
        **args,
    )
    return refusal.message if refusal is not None else None


def test_a_video_weighs_eight_image_jobs() -> None:
    limits = Limits(jobs_per_day=10)
    assert quota(limits, jobs_today=2, is_video=1) is None  # 2 + 8 = 10
    refused = quota(limits, jobs_today=3, is_video=1)
    assert refused is not None and "a video counts as 8 image jobs" in refused
    # One video done today (counted once in jobs_today): 8 of 10 spent.
    assert quota(limits, jobs_today=1, videos_today=1) is None
    assert quota(limits, jobs_today=2, videos_today=1) is None  # 8 + 1 + this one = 10
    assert quota(limits, jobs_today=3, videos_today=1) is not None
    assert quota(limits, jobs_today=1, videos_today=1, is_video=1) is not None
    fast = Limits(fast_jobs_per_day=8)
    assert quota(fast, is_video=1) is None
    assert quota(fast, fast_jobs_today=1, fast_videos_today=1) is not None
    # Without daily limits a video is just a job.
    unlimited = Limits(jobs_per_day=None, fast_jobs_per_day=None, concurrent_jobs=None)
    assert quota(unlimited, jobs_today=500, videos_today=50, is_video=1) is None


def test_the_settings_keep_video_and_its_weight() -> None:
    default = GuildSettings("g1")
    assert default.video_enabled is True and default.video_weight == DEFAULT_VIDEO_WEIGHT == 8
    changed = default.with_changes(video_enabled=False, video_weight=4)
    back = GuildSettings.from_data("g1", changed.to_data())
    assert (back.video_enabled, back.video_weight) == (False, 4)
    # A bad stored value never makes a server unusable: the default, or the nearest sane one.
    assert GuildSettings.from_data("g1", {"video_weight": "x"}).video_weight == 8
    assert GuildSettings.from_data("g1", {"video_weight": 0}).video_weight == 1
    assert GuildSettings("g1", video_weight=5000).video_weight == 100


@pytest.mark.parametrize(
    "prompt",
    [
        "waves rolling in --motion high --raw --loop",
        "a fox --video --motion low --bs 2",
        "a fox --end https://img.example/end.png --bs 4",
    ],
)
def test_the_prompt_check_knows_the_video_parameters(prompt: str) -> None:
    assert check_prompt(prompt, banned=BannedWords([]), max_length=4000) is None


@pytest.mark.parametrize(
    ("prompt", "words"),
    [
        ("waves --motion medium", "--motion"),
        ("waves --bs 3", "--bs"),
        ("waves --end nowhere", "--end"),
    ],
)
def test_the_prompt_check_refuses_bad_video_values(prompt: str, words: str) -> None:
    problem = check_prompt(prompt, banned=BannedWords([]), max_length=4000)
    assert problem is not None and words in problem.message
