"""Bad input, generated (DESIGN.md invariant 6): whatever a member types into an option or a
form field, whatever file or link they give, and whatever a provider answers, the bot's
parsers end in a value or in their own error with a message, never in another exception;
and links to other schemes or non-public addresses are never fetched.

The number of examples per property is fixed (`settings(max_examples=…)`); EXAMPLES sums
them for the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import media
from bot.actions import ActionInputError
from bot.discord.attachments import AttachmentError, check_attachment, check_metadata
from bot.discord.modals import read_form
from bot.domain import JobStatus, Operation, OperationKind
from bot.edit_canvas import edit_geometry, parse_canvas, parse_position, parse_scale
from bot.prompt_check import BannedWords, check_prompt, load_default_banned_words
from bot.providers import legnext, mjproxy, vtrix
from bot.providers.base import ProviderError
from cogs.imagine import OptionError, clean_prompt, parse_aspect_ratio
from tests.fakes.images import grid_png
from tests.unit.test_attachments import FakeAttachment
from tests.unit.test_modals import FORM_ACTIONS

EXAMPLES: dict[str, int] = {}


def budget(name: str, n: int) -> Any:
    EXAMPLES[name] = n
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )


def a_message(exc: Exception) -> None:
    assert str(exc).strip(), f"{type(exc).__name__} without a message"


# Text members type: ratios, numbers, unicode, control characters, very long strings.
typed = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"\s*-?\d{0,6}(\.\d{0,3})?\s*[:x×*]?\s*-?\d{0,6}\s*", fullmatch=True),
    st.sampled_from(["", " ", "16:9", "0:0", "1:0", "99999:1", "NaN", "inf", "1e999", "٣:٤"]),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=9000),
)


# --- command options -----------------------------------------------------------------------


@budget("parse_aspect_ratio", 500)
@given(typed | st.none())
def test_aspect_ratio_option(value: str | None) -> None:
    try:
        ratio = parse_aspect_ratio(value)
    except OptionError as exc:
        a_message(exc)
        return
    if ratio is not None:
        w, h = (int(x) for x in ratio.split(":"))
        assert w > 0 and h > 0


@budget("clean_prompt", 300)
@given(typed, st.integers(min_value=1, max_value=8192))
def test_prompt_option(prompt: str, limit: int) -> None:
    try:
        text = clean_prompt(prompt, max_length=limit)
    except OptionError as exc:
        a_message(exc)
        return
    assert text and len(text) <= limit and text == " ".join(text.split())


BANNED = BannedWords(load_default_banned_words())


@budget("check_prompt", 300)
@given(typed, st.booleans())
def test_prompt_check_answers_with_a_problem_or_none(prompt: str, allow_empty: bool) -> None:
    problem = check_prompt(prompt, banned=BANNED, max_length=6000, allow_empty=allow_empty)
    if problem is not None:
        assert problem.message.strip()


# --- modal fields ----------------------------------------------------------------------------

field_values = st.one_of(typed, st.lists(typed, max_size=3))
form_fields = st.dictionaries(
    st.sampled_from(
        ["prompt", "zoom_ratio", "region", "mask_url", "canvas", "position", "scale", "other"]
    ),
    field_values,
    max_size=7,
)


@budget("read_form", 800)
@given(
    st.sampled_from(FORM_ACTIONS),
    form_fields,
    st.sampled_from([None, "1:1", "16:9", "2:3", "0:0", "bad"]),
)
def test_every_form_answers_with_input_or_a_reason(
    action: str, values: dict[str, Any], aspect: str | None
) -> None:
    try:
        form = read_form(action, values, max_prompt_length=6000, source_aspect=aspect)
    except ActionInputError as exc:
        a_message(exc)
        return
    if form.zoom_ratio is not None:
        assert Decimal("1") <= form.zoom_ratio <= Decimal("2")


@budget("edit_canvas", 400)
@given(typed, typed, typed, st.sampled_from([None, "1:1", "16:9", "3:2", "0:5", "x"]))
def test_edit_canvas_fields(canvas: str, position: str, scale: str, aspect: str | None) -> None:
    for parse in (
        lambda: parse_canvas(canvas, source_ratio=(1, 1)),
        lambda: parse_position(position),
        lambda: parse_scale(scale),
        lambda: edit_geometry(canvas, position, scale, source_aspect=aspect),
    ):
        try:
            parse()
        except ActionInputError as exc:
            a_message(exc)


# --- attachments -------------------------------------------------------------------------------

PNG = grid_png("fuzz", (48, 48))


@budget("attachment_metadata", 300)
@given(
    st.text(max_size=30),
    st.one_of(st.none(), st.sampled_from(["image/png", "text/plain", "image/svg+xml", ""])),
    st.integers(min_value=0, max_value=10**12),
)
def test_attachment_metadata(filename: str, content_type: str | None, size: int) -> None:
    attachment = FakeAttachment(filename, b"", content_type, declared_size=size)
    try:
        check_metadata(attachment)
    except AttachmentError as exc:
        a_message(exc)
        assert attachment.reads == 0  # refused without downloading


@st.composite
def lying_files(draw: st.DrawFn) -> bytes:
    """A PNG with bytes flipped, cut short or replaced, or something else named like one."""
    kind = draw(st.sampled_from(["flip", "truncate", "other", "random"]))
    if kind == "flip":
        data = bytearray(PNG)
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "truncate":
        return PNG[: draw(st.integers(0, len(PNG) - 1))]
    if kind == "other":
        return draw(
            st.sampled_from(
                [
                    b"GIF89a" + b"\0" * 20,
                    b"<svg xmlns='http://www.w3.org/2000/svg'/>",
                    b"%PDF-1.4\n",
                    b"\xff\xd8\xff\xe0" + b"\0" * 30,
                    b"RIFF\0\0\0\0WEBPVP8 ",
                ]
            )
        )
    return draw(st.binary(max_size=300))


@budget("attachment_bytes", 200)
@given(lying_files(), st.sampled_from(["a.png", "b.jpg", "c.webp", "d.gif"]))
def test_files_that_lie_about_their_type(data: bytes, filename: str) -> None:
    attachment = FakeAttachment(filename, data, "image/png")
    try:
        checked = asyncio.run(check_attachment(attachment))
    except AttachmentError as exc:
        a_message(exc)
        return
    assert checked.info.width > 0 and checked.info.height > 0


# --- links: other schemes, non-public addresses, redirects there --------------------------------

NON_PUBLIC_V4 = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.5.4",
    "192.168.0.1",
    "169.254.169.254",
    "0.0.0.0",
    "100.64.0.1",
    "224.0.0.1",
    "255.255.255.255",
]
NON_PUBLIC_V6 = ["::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::"]


@st.composite
def non_public_links(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["literal", "v6", "number", "scheme", "named"]))
    path = draw(st.from_regex(r"/[a-z0-9/_.-]{0,20}", fullmatch=True))
    if kind == "literal":
        host = draw(st.sampled_from(NON_PUBLIC_V4))
        port = draw(st.sampled_from(["", ":80", ":8080", ":443"]))
        return f"{draw(st.sampled_from(['http', 'https']))}://{host}{port}{path}"
    if kind == "v6":
        return f"http://[{draw(st.sampled_from(NON_PUBLIC_V6))}]{path}"
    if kind == "number":  # 127.0.0.1 as one decimal number
        return f"http://{int(ipaddress.IPv4Address(draw(st.sampled_from(NON_PUBLIC_V4))))}{path}"
    if kind == "scheme":
        scheme = draw(st.sampled_from(["ftp", "file", "gopher", "data", "javascript", "ws", ""]))
        return f"{scheme}://example.com{path}"
    return f"http://{draw(st.sampled_from(['internal', 'metadata', 'localhost']))}.test{path}"


async def _resolve_private(host: str, port: int) -> list[str]:
    return ["10.0.0.7"]  # every name resolves inside the network


@budget("non_public_links", 400)
@given(non_public_links())
def test_links_to_other_schemes_or_non_public_addresses_are_never_fetched(url: str) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, content=PNG, headers={"Content-Type": "image/png"})

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            with pytest.raises(media.MediaError) as caught:
                await media.fetch_image(
                    url,
                    client=client,
                    policy=media.FetchPolicy(allow_private=False),
                    resolve=_resolve_private,
                )
            a_message(caught.value)

    asyncio.run(run())
    assert sent == [], url


PUBLIC_IP = "93.184.216.34"


async def _resolve_public(host: str, port: int) -> list[str]:
    return [PUBLIC_IP] if host == "images.example.com" else ["192.168.1.20"]


@budget("redirects_to_non_public", 200)
@given(
    st.one_of(
        st.sampled_from(NON_PUBLIC_V4).map(lambda h: f"http://{h}/x.png"),
        st.sampled_from(NON_PUBLIC_V6).map(lambda h: f"http://[{h}]/x.png"),
        st.just("http://inside.corp/x.png"),
        st.sampled_from(["file:///etc/passwd", "ftp://images.example.com/x.png"]),
    ),
    st.sampled_from([301, 302, 303, 307, 308]),
)
def test_redirects_to_non_public_addresses_are_not_followed(location: str, status: int) -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        if request.url.host == PUBLIC_IP or request.headers.get("host") == "images.example.com":
            return httpx.Response(status, headers={"Location": location})
        return httpx.Response(200, content=PNG, headers={"Content-Type": "image/png"})

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            with pytest.raises(media.MediaError):
                await media.fetch_image(
                    "http://images.example.com/start.png",
                    client=client,
                    policy=media.FetchPolicy(allow_private=False),
                    resolve=_resolve_public,
                )

    asyncio.run(run())
    assert len(sent) == 1, sent  # only the public first hop was ever asked


# --- provider payloads -----------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
statuses = st.one_of(
    st.sampled_from(
        [
            "pending",
            "PENDING",
            "processing",
            "running",
            "in_progress",
            "completed",
            "success",
            "SUCCESS",
            "failed",
            "FAILURE",
            "canceled",
            "NOT_START",
            "SUBMITTED",
            "IN_PROGRESS",
            "MODAL",
            "weird",
        ]
    ),
    json_values,
)
urls = st.one_of(json_values, st.just("https://cdn.example.com/a.png"))


def shaped(id_key: str, fields: dict[str, Any]) -> Any:
    return st.fixed_dictionaries(
        {id_key: st.one_of(st.text(min_size=1, max_size=12), st.integers(), json_values)},
        optional=fields,
    )


legnext_jobs = shaped(
    "job_id",
    {
        "status": statuses,
        "progress": json_values,
        "output": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "image_url": urls,
                    "image_urls": st.one_of(json_values, st.lists(urls, max_size=4)),
                    "seed": json_values,
                    "prompt": json_values,
                    "available_actions": json_values,
                },
            ),
        ),
        "error": st.one_of(
            json_values,
            st.fixed_dictionaries({}, optional={"code": json_values, "message": json_values}),
        ),
        "meta": json_values,
        "task_type": json_values,
    },
)
vtrix_tasks = shaped(
    "id",
    {
        "status": statuses,
        "progress": json_values,
        "output": st.one_of(
            json_values,
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "content": st.one_of(
                            json_values,
                            st.lists(st.fixed_dictionaries({}, optional={"url": urls}), max_size=4),
                        )
                    },
                ),
                max_size=2,
            ),
        ),
        "usage": json_values,
        "error": json_values,
        "task_id": json_values,
    },
)
mjproxy_tasks = shaped(
    "id",
    {
        "status": statuses,
        "progress": st.one_of(json_values, st.sampled_from(["0%", "37%", "100%", "-5%", "abc%"])),
        "imageUrl": urls,
        "imageUrls": json_values,
        "buttons": st.one_of(
            json_values,
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "customId": st.one_of(
                            json_values,
                            st.sampled_from(
                                [
                                    "MJ::JOB::upsample::1::abc",
                                    "MJ::JOB::variation::2::abc",
                                    "MJ::Outpaint::50::1::abc::SOLO",
                                    "MJ::CustomZoom::abc",
                                    "MJ::JOB::pan_left::1::abc::SOLO",
                                    "MJ::",
                                    "",
                                ]
                            ),
                        ),
                        "label": json_values,
                        "emoji": json_values,
                    },
                ),
                max_size=6,
            ),
        ),
        "failReason": json_values,
        "promptEn": json_values,
        "prompt": json_values,
        "properties": json_values,
        "action": json_values,
    },
)
ops = st.sampled_from(
    [
        None,
        Operation(OperationKind.IMAGINE, prompt="a cat"),
        Operation(OperationKind.DESCRIBE, image_urls=("https://x/a.png",)),
        Operation(OperationKind.UPSCALE, parent_job_id="p", index=2),
    ]
)


def _snapshot_ok(snapshot: Any) -> None:
    assert isinstance(snapshot.status, JobStatus)
    assert snapshot.progress is None or 0 <= snapshot.progress <= 100
    assert snapshot.status is not JobStatus.FAILED or snapshot.error is not None
    assert all(isinstance(a.name, str) and a.name for a in snapshot.actions or [])


def _anything_or(shape: Any) -> Any:
    return st.one_of(shape, shape, shape, json_values, st.fixed_dictionaries({"data": shape}))


@budget("legnext.parse_job", 400)
@given(_anything_or(legnext_jobs), ops)
def test_legnext_replies(reply: Any, op: Operation | None) -> None:
    obj = legnext._unwrap(reply)
    if obj is None:
        return  # the provider answers such a reply with MalformedReplyError itself
    with contextlib.suppress(ProviderError):  # a ProviderError is a fine answer
        _snapshot_ok(legnext.parse_job(obj, op=op))


@budget("vtrix.parse_task", 400)
@given(_anything_or(vtrix_tasks), ops)
def test_vtrix_replies(reply: Any, op: Operation | None) -> None:
    obj = vtrix._unwrap(reply)
    if obj is None:
        return
    with contextlib.suppress(ProviderError):  # a ProviderError is a fine answer
        _snapshot_ok(vtrix.parse_task(obj, op=op))


@budget("mjproxy.parse_task", 400)
@given(st.one_of(mjproxy_tasks, mjproxy_tasks, st.dictionaries(st.text(max_size=8), json_values)))
def test_mjproxy_replies(task: dict[str, Any]) -> None:
    with contextlib.suppress(ProviderError):  # a ProviderError is a fine answer
        _snapshot_ok(mjproxy.parse_task(task))


def test_zz_report_the_number_of_examples() -> None:
    """Runs last in this module: prints the examples budget (the report's figure)."""
    total = sum(EXAMPLES.values())
    print(f"\nhypothesis examples in test_bad_input_fuzz: {total} {EXAMPLES}")
    assert total >= 4000
