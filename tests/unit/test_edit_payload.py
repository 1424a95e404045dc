"""`to_payload` must be byte-for-byte what discord.py itself sends for the same edit.

The publisher sends progress edits as this ready JSON body instead of going through
discord.py's View/Embed/handle_message_parameters (CPU under load). That is only safe
while the two agree, so every case here builds the body both ways and compares.
"""

from __future__ import annotations

import json
from typing import Any

import discord
import pytest
from discord.http import handle_message_parameters
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.discord.buttons_layout import MAX_ACTION_LENGTH, ButtonSpec
from bot.discord.presenter import (
    EmbedField,
    EmbedSpec,
    RenderedMessage,
    render,
    to_discord_embed,
    to_payload,
)
from bot.discord.views import job_view
from bot.domain import (
    Action,
    ErrorCode,
    Job,
    JobError,
    JobStatus,
    OperationKind,
    PanDirection,
    SpeedMode,
)
from tests.unit.test_buttons_layout import GRID, UPSCALED
from tests.unit.test_presenter import make_job

JOB_ID = "0123456789ab"
DEFAULT_MENTIONS: list[discord.AllowedMentions | None] = [
    None,  # the bot's own client sets none (bot/app.py)
    discord.AllowedMentions(replied_user=True),
    discord.AllowedMentions(replied_user=False),
    discord.AllowedMentions.all(),
    discord.AllowedMentions.none(),
    discord.AllowedMentions(everyone=False),  # replied_user left at discord.py's default
    discord.AllowedMentions(everyone=True, users=[discord.Object(5)], roles=True),
]


def discord_payload(
    rendered: RenderedMessage,
    job_id: str,
    default_mentions: discord.AllowedMentions | None = None,
) -> dict[str, Any]:
    """What `interaction.edit_original_response` / `PartialMessage.edit` send for it,
    built by discord.py itself (interactions.py edit_original_response, http.py)."""
    with handle_message_parameters(
        content=rendered.content,
        embed=to_discord_embed(rendered.embed) if rendered.embed else None,
        view=job_view(rendered.buttons, job_id),
        allowed_mentions=discord.AllowedMentions(
            everyone=False,
            roles=False,
            users=[discord.Object(uid) for uid in rendered.mention_user_ids],
        ),
        previous_allowed_mentions=default_mentions,
    ) as params:
        assert not params.files and not params.multipart
        assert params.payload is not None
        return params.payload


def assert_same(rendered: RenderedMessage, job_id: str = JOB_ID) -> None:
    for default in DEFAULT_MENTIONS:
        ours = to_payload(rendered, job_id, default_mentions=default)
        theirs = discord_payload(rendered, job_id, default)
        assert ours == theirs
        # And the same on the wire: no type that compares equal but serialises apart
        # (an int id against a str, a tuple against a list).
        wire = discord.utils._to_json  # what both the HTTP client and the adapter use
        assert json.loads(wire(ours)) == json.loads(wire(theirs))
        assert _types(ours) == _types(theirs)


def _types(value: Any) -> Any:
    """The shape of a JSON value with its Python types (bool vs int, list vs tuple)."""
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return (type(value).__name__, [_types(v) for v in value])
    return type(value).__name__


def job_from(kw: dict[str, Any]) -> Job:
    kw = dict(kw)
    no_requester = "requester_id" in kw and kw.pop("requester_id") is None
    job = make_job(**kw)
    if no_requester:
        job.requester_id = None
    return job


def acts(*names: str) -> list[Action]:
    return [Action(name=n, raw=n) for n in names]


# --- messages as the presenter renders them ------------------------------------------


RENDERED_JOBS: dict[str, dict[str, Any]] = {
    "queued": dict(status=JobStatus.QUEUED),
    "queued_position": dict(status=JobStatus.SUBMITTED, queue_position=3),
    "running": dict(status=JobStatus.RUNNING),
    "running_progress": dict(status=JobStatus.RUNNING, progress=37),
    "running_preview": dict(
        status=JobStatus.RUNNING, progress=64, preview_url="https://cdn.example/p.webp?x=1"
    ),
    "queued_preview": dict(status=JobStatus.QUEUED, preview_url="https://cdn.example/p.png"),
    "relax_upscale_running": dict(
        status=JobStatus.RUNNING,
        kind=OperationKind.UPSCALE,
        index=2,
        mode=SpeedMode.RELAX,
        progress=5,
    ),
    "grid": dict(
        status=JobStatus.COMPLETED,
        result_url="https://cdn.example/grid.png",
        actions=acts(*GRID),
        seed="12345",
    ),
    "grid_tiles": dict(
        status=JobStatus.COMPLETED,
        tiles=[f"https://cdn.example/{n}.png" for n in range(4)],
        actions=acts(*GRID, *(f"edit:{n}" for n in range(1, 5))),
    ),
    "upscaled_wide": dict(
        status=JobStatus.COMPLETED,
        kind=OperationKind.UPSCALE,
        index=1,
        result_url="https://cdn.example/u.jpg",
        actions=acts(*UPSCALED, "provider:mystery_button", "redo_upscale_2x"),
        prompt="a lighthouse --ar 16:9",
    ),
    "variation": dict(
        status=JobStatus.COMPLETED,
        kind=OperationKind.VARIATION,
        variant="strong",
        result_url="https://cdn.example/v.png",
        actions=acts(*GRID),
    ),
    "pan": dict(
        status=JobStatus.COMPLETED,
        kind=OperationKind.PAN,
        direction=PanDirection.LEFT,
        result_url="https://cdn.example/pan.png",
        actions=acts(*UPSCALED),
    ),
    "describe": dict(
        status=JobStatus.COMPLETED,
        kind=OperationKind.DESCRIBE,
        prompt=None,
        image_urls=["https://cdn.example/in.png"],
        prompts=["a cat, <@&123> @everyone", "a *dog*", "a bird", "a fish"],
        actions=acts("provider:describe1", "provider:describe_all"),
    ),
    "completed_no_image": dict(status=JobStatus.COMPLETED, actions=acts("reroll")),
    "failed": dict(
        status=JobStatus.FAILED,
        error=JobError(ErrorCode.MODERATED, "", "Banned prompt: <@222> **x**"),
    ),
    "failed_no_error": dict(status=JobStatus.FAILED),
    "timed_out": dict(status=JobStatus.TIMED_OUT, progress=93),
    "cancelled": dict(
        status=JobStatus.CANCELLED,
        error=JobError(ErrorCode.CANCELLED, "by the member"),
        actions=acts("reroll"),
    ),
    "prompt_with_mentions": dict(
        status=JobStatus.RUNNING, progress=10, prompt="@everyone <@999> <@&5> `code` **b**"
    ),
    "no_requester": dict(status=JobStatus.RUNNING, progress=50, requester_id=None),
}


@pytest.mark.parametrize("name", sorted(RENDERED_JOBS))
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"extra_actions": ["seed", "edit"]},
        {"used_actions": frozenset({"pick:2", "vary_strong", "reroll"})},
        {"used_actions": frozenset({"pick:2", "vary_strong"}), "remix": True},
        {"follow_up_window": 60.0},  # stale: every button disabled
    ],
    ids=["plain", "extras", "used", "remix", "stale"],
)
def test_rendered_jobs_match_discord_py(name: str, options: dict[str, Any]) -> None:
    job = job_from(RENDERED_JOBS[name])
    rendered = render(job, now=job.created_at + 400.0, **options)
    assert_same(rendered, job.id)


def test_the_cases_cover_what_they_claim() -> None:
    """Guard against the matrix above silently losing its variety."""
    seen_styles: set[str] = set()
    seen_rows: set[int] = set()
    disabled = with_embed = without_embed = with_preview = no_mention = 0
    for kw in RENDERED_JOBS.values():
        for options in ({}, {"used_actions": frozenset({"pick:2"})}, {"remix": True}):
            job = job_from(kw)
            used = frozenset({"pick:2", "vary_strong"})
            for r in (
                render(job, now=job.created_at + 1, **options),
                render(job, now=job.created_at + 99, used_actions=used, remix=True),
                render(job, now=job.created_at + 99, follow_up_window=1.0),
            ):
                seen_styles |= {b.style for b in r.buttons}
                seen_rows.add(len({b.row for b in r.buttons}))
                disabled += any(b.disabled for b in r.buttons)
                with_embed += r.embed is not None
                without_embed += r.embed is None
                with_preview += r.image is not None and r.image.kind == "preview"
                no_mention += not r.mention_user_ids
    assert seen_styles == {"primary", "secondary", "success"}
    assert seen_rows >= {0, 1, 2, 3, 4, 5}
    assert disabled and with_embed and without_embed and with_preview and no_mention


# --- hand-made messages: what the presenter does not produce today -------------------


def spec(action: str, row: int, **kw: Any) -> ButtonSpec:
    return ButtonSpec(
        action=action, label=kw.pop("label", None), emoji=kw.pop("emoji", None), row=row, **kw
    )


@pytest.mark.parametrize(
    "emoji",
    [
        "🔄",
        "⬅️",
        "1️⃣",
        "<:mj:123456789012345678>",
        "<a:spin:123456789012345678>",
        "mj_2:1234567890123",
        "a:spin:1234567890123",
        ":name:1234567890123",
        "<:short_id:123>",  # too short an id: a unicode "name" to discord.py
        "<:x:1234567890123>trailing",  # discord.py matches a prefix
        "name with space:1234567890123",
        "",
        ":",
    ],
)
def test_emoji_strings(emoji: str) -> None:
    buttons = [spec("reroll", 0, emoji=emoji), spec("pick:1", 0, label="U1", emoji=emoji)]
    assert_same(RenderedMessage("x", None, buttons, None))


def test_labels_styles_rows_and_gaps() -> None:
    buttons = [
        spec("pick:1", 3, label="U1"),
        spec("reroll", 0, emoji="🔄", style="primary"),
        spec("pick:2", 3, label="", emoji="✏️", style="success", disabled=True),
        spec("vary_grid:1", 1, label="V1", style="unknown-style"),  # secondary, as views.py
        spec("provider:odd:name", 4, label='Odd "label" <@1> é'),
        spec("pick:3", 3, label="U3"),
    ]
    assert_same(RenderedMessage("x", None, buttons, None))


@pytest.mark.parametrize("rows", range(6))
def test_zero_to_five_full_rows(rows: int) -> None:
    buttons = [
        spec(f"pick:{r * 5 + i}", r, label=f"U{r * 5 + i}") for r in range(rows) for i in range(5)
    ]
    assert_same(RenderedMessage("content", None, buttons, None, mention_user_ids=(1, 2)))


@pytest.mark.parametrize(
    "embed",
    [
        EmbedSpec(),
        EmbedSpec(colour=0),
        EmbedSpec(colour=0xFFFFFF, image_url="https://x/p.png"),
        EmbedSpec(title="", description="", url="", footer="", image_url="", thumbnail_url=""),
        EmbedSpec(
            title="T",
            description="D\n*x*",
            url="https://x/",
            image_url="https://x/i.png",
            thumbnail_url="https://x/t.png",
            footer="F",
            colour=0x57F287,
            fields=(EmbedField("a", "b"), EmbedField("c", "d", inline=True), EmbedField("", "")),
        ),
    ],
)
def test_embeds(embed: EmbedSpec) -> None:
    assert_same(RenderedMessage("", embed, [], None))


def test_empty_message() -> None:
    assert_same(RenderedMessage("", None, [], None))


@pytest.mark.parametrize(
    "buttons",
    [
        [spec("pick:1", 5, label="U1")],
        [spec("pick:1", -1, label="U1")],
        [spec(f"pick:{n}", 2, label="U") for n in range(6)],
    ],
    ids=["row5", "row-1", "six-in-a-row"],
)
def test_refuses_what_discord_py_refuses(buttons: list[ButtonSpec]) -> None:
    rendered = RenderedMessage("x", None, buttons, None)
    with pytest.raises(ValueError):
        discord_payload(rendered, JOB_ID)
    with pytest.raises(ValueError):
        to_payload(rendered, JOB_ID)


# --- anything at all -----------------------------------------------------------------

_text = st.text(max_size=40)
_emoji = st.one_of(
    st.none(),
    st.sampled_from(["🔄", "⬅️", "🔍", "1️⃣"]),
    st.builds(
        lambda a, name, i: f"<{'a' if a else ''}:{name}:{i}>",
        st.booleans(),
        st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True),
        st.integers(10**12, 10**19),
    ),
    _text,
)
_action = st.from_regex(r"[a-z_:0-9]{1,30}", fullmatch=True).filter(
    lambda a: len(a) <= MAX_ACTION_LENGTH
)


@st.composite
def _buttons(draw: st.DrawFn) -> list[ButtonSpec]:
    out: list[ButtonSpec] = []
    for row in draw(st.lists(st.integers(0, 4), unique=True, max_size=5)):
        for _ in range(draw(st.integers(1, 5))):
            out.append(
                ButtonSpec(
                    action=draw(_action),
                    label=draw(st.one_of(st.none(), _text)),
                    emoji=draw(_emoji),
                    row=row,
                    disabled=draw(st.booleans()),
                    style=draw(st.sampled_from(["primary", "secondary", "success", "x"])),
                )
            )
    return draw(st.permutations(out))


_embeds = st.one_of(
    st.none(),
    st.builds(
        EmbedSpec,
        title=st.one_of(st.none(), _text),
        description=st.one_of(st.none(), _text),
        url=st.one_of(st.none(), _text),
        image_url=st.one_of(st.none(), _text),
        thumbnail_url=st.one_of(st.none(), _text),
        footer=st.one_of(st.none(), _text),
        colour=st.one_of(st.none(), st.integers(0, 0xFFFFFF)),
        fields=st.lists(st.builds(EmbedField, _text, _text, st.booleans()), max_size=3).map(tuple),
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    content=st.text(max_size=200),
    embed=_embeds,
    buttons=_buttons(),
    mentions=st.lists(st.integers(1, 2**63 - 1), max_size=3).map(tuple),
    job_id=st.from_regex(r"[0-9a-z]{1,12}", fullmatch=True),
)
def test_any_message_matches_discord_py(
    content: str,
    embed: EmbedSpec | None,
    buttons: list[ButtonSpec],
    mentions: tuple[int, ...],
    job_id: str,
) -> None:
    assert_same(RenderedMessage(content, embed, buttons, None, mention_user_ids=mentions), job_id)
