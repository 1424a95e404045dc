from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import discord
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.discord.buttons_layout import custom_id_for
from bot.discord.presenter import (
    EmbedField,
    EmbedSpec,
    format_elapsed,
    is_square,
    progress_bar,
    render,
    to_discord_embed,
    visible_key,
)
from bot.domain import (
    Action,
    ErrorCode,
    Job,
    JobError,
    JobStatus,
    Operation,
    OperationKind,
    PanDirection,
    SpeedMode,
)
from tests.unit.test_buttons_layout import GRID, UPSCALED

ME = "<@111>"
GRID_NEUTRAL = [
    "reroll",
    *(f"pick:{n}" for n in range(1, 5)),
    *(f"vary_grid:{n}" for n in range(1, 5)),
]


def make_job(**kw: Any) -> Job:
    op_kw = {k: kw.pop(k) for k in list(kw) if k in {f.name for f in dataclasses.fields(Operation)}}
    op = Operation(
        kind=op_kw.pop("kind", OperationKind.IMAGINE),
        **{"prompt": "a lighthouse at dusk", "mode": SpeedMode.FAST, **op_kw},
    )
    return Job(
        id="0123456789ab",
        operation=op,
        provider="piapi",
        requester_id="111",
        created_at=1000.0,
        **kw,
    )


def actions(*names: str) -> list[Action]:
    return [Action(name=n, raw=n) for n in names]


# --- status texts --------------------------------------------------------------------


def test_waiting_to_start() -> None:
    r = render(make_job(status=JobStatus.QUEUED), now=1003.0)
    assert r.content == "**a lighthouse at dusk** - <@111> (Waiting to start)\n⌛ <10s elapsed"
    assert r.buttons == [] and r.image is None and r.embed is None


def test_queued_with_position() -> None:
    r = render(make_job(status=JobStatus.SUBMITTED, queue_position=3), now=1025.0)
    assert r.content == "**a lighthouse at dusk** - <@111> Queued (position 3)\n⌛ 20s elapsed"


def test_running_with_progress_shows_bar_mode_and_elapsed() -> None:
    r = render(make_job(status=JobStatus.RUNNING, progress=37), now=1072.0)
    assert r.content == "**a lighthouse at dusk** - <@111> (37%) (fast)\n▰▰▰▱▱▱▱▱▱▱ 1m elapsed"


def test_no_creation_time_means_no_elapsed_text() -> None:
    job = make_job(status=JobStatus.RUNNING, progress=37)
    job.created_at = 0.0
    assert render(job, now=1e9).content.splitlines()[1] == "▰▰▰▱▱▱▱▱▱▱"
    job.progress = None
    assert "\n" not in render(job, now=1e9).content


def test_running_without_progress_and_other_modes() -> None:
    r = render(make_job(status=JobStatus.RUNNING), now=1000.0)
    assert r.content.splitlines()[0] == "**a lighthouse at dusk** - <@111> (Running) (fast)"
    relax = render(make_job(status=JobStatus.RUNNING, progress=5, mode=SpeedMode.RELAX), now=1000)
    assert relax.content.splitlines()[0].endswith("(5%) (relaxed)")
    no_mode = render(make_job(status=JobStatus.RUNNING, progress=5, mode=None), now=1000)
    assert no_mode.content.splitlines()[0] == "**a lighthouse at dusk** - <@111> (5%)"


def test_running_with_preview_shows_it_in_the_embed() -> None:
    job = make_job(status=JobStatus.RUNNING, progress=50, preview_url="https://cdn/p.webp")
    r = render(job, now=1000.0)
    assert r.embed is not None and r.embed.image_url == "https://cdn/p.webp"
    assert r.image is not None and (r.image.kind, r.image.url) == ("preview", "https://cdn/p.webp")
    assert r.buttons == []


def test_completed_grid() -> None:
    job = make_job(
        status=JobStatus.COMPLETED,
        result_url="https://cdn/x/grid.webp?sig=1",
        actions=actions(*GRID_NEUTRAL),
    )
    r = render(job, now=1100.0, requester_mention=ME)
    assert r.content == "**a lighthouse at dusk** - <@111> (fast)"
    assert r.image is not None
    assert (r.image.kind, r.image.url, r.image.filename) == (
        "result",
        "https://cdn/x/grid.webp?sig=1",
        "mj_0123456789ab.webp",
    )
    assert [(b.label or b.emoji, b.row) for b in r.buttons] == [
        ("U1", 0),
        ("U2", 0),
        ("U3", 0),
        ("U4", 0),
        ("🔄", 0),
        ("V1", 1),
        ("V2", 1),
        ("V3", 1),
        ("V4", 1),
    ]
    assert r.embed is None


def test_with_attachment_names_the_uploaded_file() -> None:
    job = make_job(status=JobStatus.COMPLETED, result_url="https://cdn/r.png")
    r = render(job, now=1000.0)
    uploaded = r.with_attachment("mj_0123456789ab.jpg")
    assert uploaded.image is not None and r.image is not None
    assert (uploaded.image.kind, uploaded.image.url, uploaded.image.filename) == (
        "result",
        "https://cdn/r.png",
        "mj_0123456789ab.jpg",
    )
    assert r.image.filename == "mj_0123456789ab.png"  # the original is untouched
    assert visible_key(uploaded) != visible_key(r)


def test_completed_with_tiles_only_and_default_png_name() -> None:
    tiles = [f"https://cdn/t{i}" for i in range(4)]
    r = render(make_job(status=JobStatus.COMPLETED, tiles=tiles), now=1000.0)
    assert r.image is not None
    assert (r.image.url, r.image.tiles, r.image.filename) == (
        None,
        tuple(tiles),
        "mj_0123456789ab.png",
    )


@pytest.mark.parametrize(
    ("op", "line"),
    [
        (
            {"kind": OperationKind.UPSCALE, "index": 2},
            "**a lighthouse at dusk** - Image #2 <@111>",
        ),
        (
            {"kind": OperationKind.UPSCALE, "variant": "subtle"},
            "**a lighthouse at dusk** - Upscaled (Subtle) by <@111> (fast)",
        ),
        (
            {"kind": OperationKind.VARIATION, "variant": "strong"},
            "**a lighthouse at dusk** - Variations (Strong) by <@111> (fast)",
        ),
        (
            {"kind": OperationKind.VARIATION, "index": 3},
            "**a lighthouse at dusk** - Variations by <@111> (fast)",
        ),
        (
            {"kind": OperationKind.INPAINT},
            "**a lighthouse at dusk** - Variations (Region) by <@111> (fast)",
        ),
        (
            {"kind": OperationKind.OUTPAINT, "zoom_ratio": Decimal("2")},
            "**a lighthouse at dusk** - Zoom Out by <@111> (fast)",
        ),
        (
            {"kind": OperationKind.OUTPAINT, "zoom_ratio": Decimal("1")},
            "**a lighthouse at dusk** - Make Square by <@111> (fast)",
        ),
        (
            {"kind": OperationKind.PAN, "direction": PanDirection.LEFT},
            "**a lighthouse at dusk** - Pan Left by <@111> (fast)",
        ),
        (
            {"kind": OperationKind.REROLL},
            "**a lighthouse at dusk** - <@111> (fast)",
        ),
        (
            {"kind": OperationKind.PROVIDER_ACTION, "raw_action": "animate_high"},
            "**a lighthouse at dusk** - Animate High by <@111> (fast)",
        ),
    ],
)
def test_completed_wording_per_operation(op: dict[str, Any], line: str) -> None:
    job = make_job(status=JobStatus.COMPLETED, result_url="https://cdn/r.png", **op)
    assert render(job, now=1000.0).content == line


def test_failed_shows_reason_and_provider_text() -> None:
    job = make_job(
        status=JobStatus.FAILED,
        error=JobError(
            ErrorCode.MODERATED,
            "Your prompt was blocked by the provider's filter.",
            "[Banned prompt detected] lighthouse\nmore **text** @everyone",
        ),
        actions=actions(*GRID_NEUTRAL),
    )
    r = render(job, now=1000.0)
    assert r.content.splitlines() == [
        "**a lighthouse at dusk** - <@111>",
        "❌ Failed: Your prompt was blocked by the provider's filter.",
        "> [Banned prompt detected] lighthouse more \\*\\*text\\*\\* @\u200beveryone",
    ]
    assert r.buttons == [] and r.image is None


def test_failed_without_message_uses_plain_words_and_long_provider_text_is_cut() -> None:
    job = make_job(
        status=JobStatus.FAILED,
        error=JobError(ErrorCode.INSUFFICIENT_CREDIT, "", "x" * 5000),
    )
    lines = render(job, now=1000.0).content.splitlines()
    assert lines[1] == "❌ Failed: the provider account is out of credit"
    assert len(lines) == 2  # an account's trouble is the admins' detail, not the channel's
    long = make_job(
        status=JobStatus.FAILED,
        error=JobError(ErrorCode.GENERATION_FAILED, "", "the image could not be made " * 200),
    )
    quoted = render(long, now=1000.0).content.splitlines()[2]
    assert quoted.startswith("> the image") and quoted.endswith("…") and len(quoted) <= 302


def test_timed_out_and_cancelled() -> None:
    timed = render(make_job(status=JobStatus.TIMED_OUT), now=9999.0)
    assert timed.content.splitlines()[1] == "⏱️ Timed out: the provider did not finish in time"
    cancelled = render(make_job(status=JobStatus.CANCELLED, actions=actions("reroll")), now=1000)
    assert cancelled.content == "**a lighthouse at dusk** - <@111>\n🚫 Cancelled"
    assert cancelled.buttons == []


# --- progress and elapsed time -------------------------------------------------------


@pytest.mark.parametrize(
    ("progress", "bar"),
    [
        (0, "▱▱▱▱▱▱▱▱▱▱ 0%"),
        (37, "▰▰▰▱▱▱▱▱▱▱ 37%"),
        (99, "▰▰▰▰▰▰▰▰▰▱ 99%"),
        (100, "▰▰▰▰▰▰▰▰▰▰ 100%"),
        (150, "▰▰▰▰▰▰▰▰▰▰ 100%"),
        (-4, "▱▱▱▱▱▱▱▱▱▱ 0%"),
    ],
)
def test_progress_bar(progress: int, bar: str) -> None:
    assert progress_bar(progress) == bar


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-3, "<10s"),
        (9.9, "<10s"),
        (19, "10s"),
        (59, "50s"),
        (72, "1m"),
        (95, "1m 30s"),
        (599, "9m 30s"),
        (725, "12m"),
        (3600, "1h"),
        (3960, "1h 6m"),
    ],
)
def test_elapsed_is_coarse(seconds: float, text: str) -> None:
    assert format_elapsed(seconds) == text


def test_visible_key_ignores_seconds_but_not_steps_or_progress() -> None:
    job = make_job(status=JobStatus.RUNNING, progress=40)
    key = visible_key(render(job, now=1021.0))
    assert visible_key(render(job, now=1029.0)) == key  # same 10 s step: no edit
    assert visible_key(render(job, now=1031.0)) != key  # next step
    job.progress = 41
    assert visible_key(render(job, now=1021.0)) != key


def test_render_is_deterministic() -> None:
    job = make_job(
        status=JobStatus.COMPLETED,
        result_url="https://cdn/r.png",
        actions=actions("upscale_subtle", "vary_strong", "provider:foo"),
        aspect_ratio="16:9",
    )
    assert render(job, now=2000.0) == render(job, now=2000.0)
    assert visible_key(render(job, now=2000.0)) == visible_key(render(job, now=2000.0))


# --- buttons -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "square"),
    [
        ({}, True),
        ({"aspect_ratio": "1:1"}, True),
        ({"aspect_ratio": "16:9"}, False),
        ({"prompt": "a ship --ar 2:3 --v 6"}, False),
        ({"prompt": "a ship --aspect 3:3"}, True),
        ({"prompt": "a ship --ar 2:3 --ar 1:1"}, True),
        ({"aspect_ratio": "wide"}, True),
    ],
)
def test_square_decides_make_square(op: dict[str, Any], square: bool) -> None:
    job = make_job(status=JobStatus.COMPLETED, result_url="https://cdn/r.png", **op)
    job.actions = actions(*UPSCALED)
    assert is_square(job) is square
    shown = {b.action for b in render(job, now=1000.0).buttons}
    assert ("make_square" in shown) is (not square)


def test_extra_actions_used_and_remix() -> None:
    job = make_job(status=JobStatus.COMPLETED, result_url="https://cdn/r.png")
    job.actions = actions(*UPSCALED)
    r = render(job, now=1000.0, extra_actions=["seed"], used_actions=frozenset({"vary_strong"}))
    styles = {b.action: b.style for b in r.buttons}
    assert styles["vary_strong"] == "primary" and styles["seed"] == "secondary"
    remixed = render(job, now=1000.0, used_actions=frozenset({"vary_strong"}), remix=True)
    assert {b.action: b.style for b in remixed.buttons}["vary_strong"] == "success"


def test_stale_after_the_follow_up_window() -> None:
    job = make_job(status=JobStatus.COMPLETED, result_url="https://cdn/r.png")
    job.actions = actions(*GRID_NEUTRAL)
    fresh = render(job, now=1000.0 + 3 * 3600, follow_up_window=3 * 3600)
    stale = render(job, now=1000.0 + 3 * 3600 + 1, follow_up_window=3 * 3600)
    assert not any(b.disabled for b in fresh.buttons)
    assert stale.buttons and all(b.disabled for b in stale.buttons)
    assert not any(b.disabled for b in render(job, now=1e12).buttons)  # no window: never


def test_unknown_actions_get_buttons() -> None:
    job = make_job(status=JobStatus.COMPLETED, result_url="https://cdn/r.png")
    job.actions = actions("reroll", "provider:foo_bar_2x")
    assert [b.label or b.emoji for b in render(job, now=1000.0).buttons] == ["🔄", "Foo Bar 2x"]


# --- describe and seed ---------------------------------------------------------------


def test_describe_lists_prompts_and_offers_pick_buttons() -> None:
    prompts = [
        "a red fox, watercolor",
        "fox in snow --ar 3:2",
        "<@222222222222222222> fox",
        "minimal fox logo",
    ]
    job = make_job(
        kind=OperationKind.DESCRIBE,
        prompt=None,
        image_urls=("https://img/in.png",),
        status=JobStatus.COMPLETED,
        prompts=prompts,
        actions=actions("provider:describe1", "provider:describe2", "provider:describe_all"),
    )
    r = render(job, now=1e9, follow_up_window=60)
    assert r.content == "**Describe in.png** - <@111> (fast)"  # not the (signed) link
    assert r.embed is not None
    assert r.embed.description == (
        "1️⃣ a red fox, watercolor\n\n2️⃣ fox in snow --ar 3:2\n\n3️⃣ <@\u200b222222222222222222> fox"
        "\n\n4️⃣ minimal fox logo"
    )
    assert r.embed.image_url == "https://img/in.png" and r.embed.thumbnail_url is None
    assert r.image is None
    assert [(b.action, b.label or b.emoji, b.row) for b in r.buttons] == [
        ("describe_pick:1", "1", 0),
        ("describe_pick:2", "2", 0),
        ("describe_pick:3", "3", 0),
        ("describe_pick:4", "4", 0),
        ("describe_reroll", "🔄", 0),
        ("describe_all", "Imagine all", 1),  # the bot's own, in place of the provider's
    ]
    assert not any(b.disabled for b in r.buttons)  # picking a prompt needs no provider window


def test_seed_job_shows_the_seed() -> None:
    job = make_job(kind=OperationKind.SEED, prompt=None, status=JobStatus.COMPLETED, seed="98765")
    assert render(job, now=1000.0).content == "**Seed** - <@111> (fast)\n🌱 Seed: `98765`"


# --- limits and mentions -------------------------------------------------------------


def test_long_prompt_is_truncated_to_2000() -> None:
    prompt = "word " * 1200  # 6000 chars
    for status in (JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.FAILED):
        job = make_job(prompt=prompt, status=status, progress=10, result_url="https://r")
        job.error = JobError(ErrorCode.GENERATION_FAILED, "boom " * 300, "why " * 300)
        content = render(job, now=1000.0).content
        assert len(content) <= 2000
        assert content.startswith("**word word")
        assert "…** - <@111>" in content


def test_only_the_requester_is_mentioned() -> None:
    job = make_job(prompt="@everyone look <@222222222222222222> @here", status=JobStatus.QUEUED)
    r = render(job, now=1000.0)
    assert "@everyone" not in r.content and "@here" not in r.content
    assert "<@222222222222222222>" not in r.content
    assert r.mention_user_ids == (111,)
    assert render(job, now=1000.0, requester_mention="<@!333>").mention_user_ids == (333,)
    job.requester_id = None
    anon = render(job, now=1000.0)
    assert anon.mention_user_ids == () and anon.content.startswith("**")


def test_to_discord_embed() -> None:
    spec = EmbedSpec(
        title="t",
        description="d",
        image_url="https://i",
        thumbnail_url="https://th",
        footer="f",
        colour=0x123456,
        fields=(EmbedField("n", "v", inline=True),),
    )
    embed = to_discord_embed(spec)
    assert isinstance(embed, discord.Embed)
    assert embed.to_dict() | {"flags": 0} == {
        "flags": 0,
        "type": "rich",
        "title": "t",
        "description": "d",
        "color": 0x123456,
        "image": {"url": "https://i"},
        "thumbnail": {"url": "https://th"},
        "footer": {"text": "f"},
        "fields": [{"name": "n", "value": "v", "inline": True}],
    }
    assert spec.total_length() == 5


@settings(max_examples=200, deadline=None)
@given(
    prompt=st.text(max_size=7000),
    names=st.lists(
        st.one_of(
            st.sampled_from([*GRID_NEUTRAL, *UPSCALED, *GRID, "seed"]),
            st.text(max_size=120),
            st.text(max_size=100).map(lambda s: "provider:" + s),
        ),
        max_size=40,
    ),
    status=st.sampled_from(list(JobStatus)),
    progress=st.one_of(st.none(), st.integers(-10, 200)),
    provider_text=st.one_of(st.none(), st.text(max_size=3000)),
    prompts=st.one_of(st.none(), st.lists(st.text(max_size=3000), min_size=1, max_size=12)),
    kind=st.sampled_from([OperationKind.IMAGINE, OperationKind.DESCRIBE]),
)
def test_render_never_exceeds_discord_limits(
    prompt: str,
    names: list[str],
    status: JobStatus,
    progress: int | None,
    provider_text: str | None,
    prompts: list[str] | None,
    kind: OperationKind,
) -> None:
    job = make_job(
        kind=kind,
        prompt=prompt,
        status=status,
        progress=progress,
        result_url="https://cdn/r.png",
        preview_url="https://cdn/p.png",
        prompts=prompts,
        actions=actions(*names),
    )
    if provider_text is not None:
        job.error = JobError(ErrorCode.GENERATION_FAILED, provider_text[:500], provider_text)
    r = render(job, now=5000.0, extra_actions=["seed", "edit"], follow_up_window=100.0)
    assert len(r.content) <= 2000
    assert all(0 <= b.row < 5 for b in r.buttons)
    per_row: dict[int, int] = {}
    for b in r.buttons:
        per_row[b.row] = per_row.get(b.row, 0) + 1
        assert b.label or b.emoji
        assert b.label is None or len(b.label) <= 80
    assert max(per_row.values(), default=0) <= 5
    ids = [custom_id_for(b.action, job.id) for b in r.buttons]
    assert all(len(i) <= 100 for i in ids) and len(set(ids)) == len(ids)
    if r.embed is not None:
        e = r.embed
        assert len(e.description or "") <= 4096 and len(e.title or "") <= 256
        assert len(e.footer or "") <= 2048 and e.total_length() <= 6000
    if status is not JobStatus.COMPLETED:
        assert r.buttons == []


def test_original_link_is_added_only_within_the_content_limit() -> None:
    from bot.discord.presenter import RenderedMessage, with_original_link

    short = RenderedMessage(content="done", embed=None, buttons=[], image=None)
    assert with_original_link(short, "https://x/y.png").content.endswith("(<https://x/y.png>)")
    full = RenderedMessage(content="x" * 1990, embed=None, buttons=[], image=None)
    assert with_original_link(full, "https://x/y.png").content == "x" * 1990
