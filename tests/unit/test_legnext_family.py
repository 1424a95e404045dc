"""Legnext and Vtrix without a network: request bodies, addressing, local picks, actions,
parsing and error mapping (bot/providers/legnext_family.py, legnext.py, vtrix.py)."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw

from bot.domain import (
    Action,
    Cost,
    ErrorCode,
    Job,
    JobStatus,
    Operation,
    OperationKind,
    PanDirection,
    Placement,
    Size,
    SpeedMode,
)
from bot.providers import legnext_family as fam
from bot.providers.base import (
    AccountInfo,
    AuthError,
    InsufficientCreditError,
    InvalidRequestError,
    ModeratedError,
    NotFoundError,
    Provider,
    ProviderUnavailableError,
    SubmitOutcomeUnknownError,
    UnsupportedOperationError,
)
from bot.providers.http import ProviderHTTP
from bot.providers.legnext import LegnextProvider, parse_job
from bot.providers.legnext import classify_http_error as legnext_classify
from bot.providers.vtrix import (
    VTRIX_ERROR_MESSAGES,
    VtrixProvider,
    describe_vtrix_error,
    normalise_code,
    parse_task,
    wrap_body,
)
from bot.providers.vtrix import classify_http_error as vtrix_classify

UP = "11111111-2222-3333-4444-555555555555"  # an upstream Midjourney job id
TILES = [f"https://cdn.example/{UP}_{i}.png" for i in range(4)]
GRID_URL = f"https://cdn.example/{UP}.png"
BACKENDS = ("legnext", "vtrix")


class _NoNetwork(httpx.AsyncBaseTransport):
    """Any request is a test failure: these tests prove what is decided locally."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected request {request.method} {request.url}")


def _http() -> ProviderHTTP:
    return ProviderHTTP("http://nowhere.invalid", headers={}, transport=_NoNetwork())


@pytest.fixture(params=BACKENDS)
async def provider(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    cls = LegnextProvider if request.param == "legnext" else VtrixProvider
    p = cls(api_key="k", http=_http())
    yield p
    await p.aclose()


def ref_of(backend: str) -> str:
    return UP if backend == "legnext" else "task_parent"


def grid(
    backend: str = "legnext",
    *,
    prompt: str = "a cat",
    tiles: bool = True,
    data: dict[str, Any] | None = None,
    job_id: str = "grid1",
) -> Job:
    base: dict[str, Any] = {"job_id": UP, "image_count": 4}
    if backend == "vtrix":
        base["job_ids"] = [UP] * 4
    base.update(data or {})
    return Job(
        id=job_id,
        operation=Operation(OperationKind.IMAGINE, prompt=prompt),
        provider=backend,
        status=JobStatus.COMPLETED,
        provider_ref=ref_of(backend),
        provider_data=base,
        result_url=GRID_URL if backend == "legnext" else None,
        tiles=list(TILES) if tiles else None,
    )


def picked(backend: str = "legnext", *, image_no: int = 2, prompt: str = "a cat") -> Job:
    return Job(
        id="pick1",
        operation=Operation(OperationKind.UPSCALE, prompt=prompt, index=image_no + 1),
        provider=backend,
        status=JobStatus.COMPLETED,
        provider_ref=f"{ref_of(backend)}#{image_no + 1}",
        provider_data={"job_id": UP, "image_no": image_no, "image_count": 1, "picked_from": "g"},
        result_url=TILES[image_no],
    )


def upscaled(backend: str = "legnext") -> Job:
    up2 = "99999999-2222-3333-4444-555555555555"
    return Job(
        id="up1",
        operation=Operation(OperationKind.UPSCALE, prompt="a cat", variant="subtle"),
        provider=backend,
        status=JobStatus.COMPLETED,
        provider_ref=up2 if backend == "legnext" else "task_up",
        provider_data={"job_id": up2, "image_count": 1},
        result_url="https://cdn.example/up.png",
    )


def build(backend: str, op: Operation, parent: Job | None) -> fam.UpstreamRequest:
    return fam.build_request(
        op, parent, ref_is_upstream=backend == "legnext", label=backend.capitalize()
    )


def mask_png(size: tuple[int, int], box: tuple[int, int, int, int] | None) -> str:
    image = Image.new("RGB", size, (0, 0, 0))
    if box is not None:
        ImageDraw.Draw(image).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill="white")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def names(actions: list[Action] | None) -> list[str]:
    return [a.name for a in actions or []]


# --- protocol and capabilities ----------------------------------------------------------------


async def test_both_satisfy_the_provider_protocol(provider: Any) -> None:
    assert isinstance(provider, Provider)
    caps = provider.capabilities
    assert caps.can_cancel is False
    assert caps.follow_up_window is None
    assert caps.max_prompt_length == 8192
    if provider.name == "vtrix":  # Legnext reads GET /account/balance (test_accounts*)
        assert await provider.account() == AccountInfo()
    with pytest.raises(UnsupportedOperationError):
        await provider.cancel(grid(provider.name))
    assert provider.http.requests_sent == 0


def test_capabilities() -> None:
    k = OperationKind
    legnext = LegnextProvider(api_key="k", http=_http()).capabilities.operations
    vtrix = VtrixProvider(api_key="k", http=_http()).capabilities.operations
    assert legnext == {
        k.IMAGINE,
        k.UPSCALE,
        k.VARIATION,
        k.REROLL,
        k.DESCRIBE,
        k.SEED,
        k.INPAINT,
        k.OUTPAINT,
        k.PAN,
        k.REMIX,
        k.EDIT,
        k.ENHANCE,
        k.VIDEO,
        k.VIDEO_FROM_IMAGE,
        k.VIDEO_EXTEND,
        k.VIDEO_UPSCALE,
        k.SHORTEN,
        k.RETEXTURE,
        k.UPLOAD_EDIT,
    }
    assert vtrix == {
        k.IMAGINE,
        k.UPSCALE,
        k.VARIATION,
        k.REMIX,
        k.INPAINT,
        k.OUTPAINT,
        k.PAN,
        k.EDIT,
        k.RETEXTURE,
        k.UPLOAD_EDIT,
    }


def test_names_and_headers() -> None:
    from bot.providers import legnext, vtrix

    assert LegnextProvider.name == "legnext" and VtrixProvider.name == "vtrix"
    assert legnext.auth_headers("abc")["x-api-key"] == "abc"
    assert vtrix.auth_headers("abc")["Authorization"] == "Bearer abc"


@pytest.mark.parametrize(
    "kind", [OperationKind.REROLL, OperationKind.DESCRIBE, OperationKind.SEED, OperationKind.BLEND]
)
async def test_vtrix_refuses_unconfirmed_models_before_any_request(kind: OperationKind) -> None:
    p = VtrixProvider(api_key="k", http=_http())
    op = Operation(kind, prompt="x", image_urls=("https://a/b.png",))
    with pytest.raises(UnsupportedOperationError):
        await p.submit(op, job=grid("vtrix", job_id="new"), parent=grid("vtrix"))
    await p.aclose()


async def test_legnext_refuses_blend_and_raw_actions() -> None:
    p = LegnextProvider(api_key="k", http=_http())
    for kind in (OperationKind.BLEND, OperationKind.PROVIDER_ACTION):
        with pytest.raises(UnsupportedOperationError):
            await p.submit(Operation(kind, raw_action="x"), job=grid(), parent=grid())
    await p.aclose()


# --- request bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("op", "text"),
    [
        (
            Operation(
                OperationKind.IMAGINE, prompt="a cat", aspect_ratio="16:9", mode=SpeedMode.FAST
            ),
            "a cat --ar 16:9 --fast",
        ),
        (Operation(OperationKind.IMAGINE, prompt="a cat"), "a cat"),
        (
            Operation(OperationKind.IMAGINE, prompt="a cat --ar 1:1", aspect_ratio="16:9"),
            "a cat --ar 1:1",
        ),
        (
            Operation(OperationKind.IMAGINE, prompt="a cat --aspect 2:3", aspect_ratio="16:9"),
            "a cat --aspect 2:3",
        ),
        (
            Operation(OperationKind.IMAGINE, prompt="a cat --relax", mode=SpeedMode.TURBO),
            "a cat --relax",
        ),
        (
            Operation(OperationKind.IMAGINE, prompt="a cat", mode=SpeedMode.RELAX),
            "a cat --relax",
        ),
        (Operation(OperationKind.IMAGINE, prompt="a cat", mode=SpeedMode.TURBO), "a cat --turbo"),
    ],
)
def test_imagine_text(backend: str, op: Operation, text: str) -> None:
    request = build(backend, op, None)
    assert request == fam.UpstreamRequest("diffusion", {"text": text})


def test_vtrix_wraps_the_body() -> None:
    request = fam.UpstreamRequest("edit", {"jobId": UP, "imageNo": 1})
    assert wrap_body(request) == {
        "model": "midjourney_edit",
        "input": [{"params": {"jobId": UP, "imageNo": 1}}],
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_imagine_prompt_length_is_checked_before_sending(backend: str) -> None:
    with pytest.raises(InvalidRequestError, match="8192"):
        build(
            backend, Operation(OperationKind.IMAGINE, prompt="x" * 8190, aspect_ratio="1:1"), None
        )
    with pytest.raises(InvalidRequestError):
        build(backend, Operation(OperationKind.IMAGINE, prompt="   "), None)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("variant", "type_"), [("subtle", 0), ("creative", 1), ("2x", 2), ("4x", 3)]
)
def test_upscale_types(backend: str, variant: str, type_: int) -> None:
    op = Operation(OperationKind.UPSCALE, variant=variant, prompt="a cat")
    request = build(backend, op, picked(backend, image_no=2))
    assert request == fam.UpstreamRequest("upscale", {"jobId": UP, "imageNo": 2, "type": type_})


@pytest.mark.parametrize("backend", BACKENDS)
def test_variation_on_grid_is_strong_with_remix_prompt_only_when_changed(backend: str) -> None:
    same = Operation(OperationKind.VARIATION, index=3, prompt="a cat")
    assert build(backend, same, grid(backend)) == fam.UpstreamRequest(
        "variation", {"jobId": UP, "imageNo": 2, "type": 1}
    )
    changed = Operation(OperationKind.VARIATION, index=1, prompt="a dog")
    assert build(backend, changed, grid(backend)).params == {
        "jobId": UP,
        "imageNo": 0,
        "type": 1,
        "remixPrompt": "a dog",
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("variant", "type_"), [("subtle", 0), ("strong", 1)])
def test_vary_subtle_strong(backend: str, variant: str, type_: int) -> None:
    op = Operation(OperationKind.VARIATION, variant=variant, prompt="a cat")
    assert build(backend, op, picked(backend, image_no=1)).params == {
        "jobId": UP,
        "imageNo": 1,
        "type": type_,
    }


def test_reroll_body_legnext() -> None:
    op = Operation(OperationKind.REROLL, prompt="a cat")
    assert build("legnext", op, grid()) == fam.UpstreamRequest("reroll", {"jobId": UP})


@pytest.mark.parametrize("backend", BACKENDS)
def test_inpaint_body(backend: str) -> None:
    mask = mask_png((1000, 800), (100, 200, 300, 400))
    op = Operation(OperationKind.INPAINT, prompt="a red hat", mask_png_base64=mask)
    assert build(backend, op, picked(backend, image_no=3)) == fam.UpstreamRequest(
        "inpaint",
        {
            "jobId": UP,
            "imageNo": 3,
            "mask": {
                "areas": [
                    {
                        "width": 1000,
                        "height": 800,
                        "points": [100, 200, 300, 200, 300, 400, 100, 400],
                    }
                ]
            },
            "remixPrompt": "a red hat",
        },
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("ratio", "scale"), [(Decimal("2"), 2.0), (Decimal("1.5"), 1.5), (Decimal("1.7"), 1.7)]
)
def test_outpaint_scale(backend: str, ratio: Decimal, scale: float) -> None:
    op = Operation(OperationKind.OUTPAINT, zoom_ratio=ratio, prompt="a cat")
    assert build(backend, op, picked(backend, image_no=0)) == fam.UpstreamRequest(
        "outpaint", {"jobId": UP, "imageNo": 0, "scale": scale}
    )
    changed = Operation(OperationKind.OUTPAINT, zoom_ratio=ratio, prompt="a cat, wide")
    assert build(backend, changed, picked(backend, image_no=0)).params["remixPrompt"] == (
        "a cat, wide"
    )


@pytest.mark.parametrize("backend", BACKENDS)
async def test_outpaint_out_of_range_and_make_square_send_nothing(backend: str) -> None:
    cls = LegnextProvider if backend == "legnext" else VtrixProvider
    p = cls(api_key="k", http=_http())
    parent = picked(backend)
    for ratio in (Decimal("1.05"), Decimal("2.5"), Decimal("0.5")):
        with pytest.raises(InvalidRequestError, match=r"1\.1 and 2\.0"):
            await p.submit(
                Operation(OperationKind.OUTPAINT, zoom_ratio=ratio), job=parent, parent=parent
            )
    with pytest.raises(UnsupportedOperationError):
        await p.submit(
            Operation(OperationKind.OUTPAINT, zoom_ratio=Decimal("1")), job=parent, parent=parent
        )
    assert p.http.requests_sent == 0
    await p.aclose()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("direction", "number"),
    [(PanDirection.LEFT, 3), (PanDirection.RIGHT, 1), (PanDirection.UP, 2), (PanDirection.DOWN, 0)],
)
def test_pan(backend: str, direction: PanDirection, number: int) -> None:
    op = Operation(OperationKind.PAN, direction=direction, prompt="a cat")
    assert build(backend, op, picked(backend, image_no=1)) == fam.UpstreamRequest(
        "pan", {"jobId": UP, "imageNo": 1, "direction": number, "scale": 1.5}
    )
    changed = Operation(OperationKind.PAN, direction=direction, prompt="a cat by the sea")
    assert build(backend, changed, picked(backend)).params["remixPrompt"] == "a cat by the sea"


@pytest.mark.parametrize("backend", BACKENDS)
def test_remix_is_mode_zero_strong(backend: str) -> None:
    on_grid = Operation(OperationKind.REMIX, prompt="a dog", index=2)
    assert build(backend, on_grid, grid(backend)) == fam.UpstreamRequest(
        "remix", {"jobId": UP, "imageNo": 1, "remixPrompt": "a dog", "mode": 0}
    )
    on_single = Operation(OperationKind.REMIX, prompt="a dog")
    assert build(backend, on_single, picked(backend, image_no=3)).params == {
        "jobId": UP,
        "imageNo": 3,
        "remixPrompt": "a dog",
        "mode": 0,
    }
    with pytest.raises(InvalidRequestError):
        build(backend, Operation(OperationKind.REMIX, prompt=""), grid(backend))


EDIT = Operation(
    OperationKind.EDIT,
    prompt="a cat on the moon",
    index=4,
    canvas=Size(1024, 768),
    placement=Placement(width=512, height=512, x=256, y=128),
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_edit_body(backend: str) -> None:
    assert build(backend, EDIT, grid(backend)) == fam.UpstreamRequest(
        "edit",
        {
            "jobId": UP,
            "imageNo": 3,
            "canvas": {"width": 1024, "height": 768},
            "imgPos": {"width": 512, "height": 512, "x": 256, "y": 128},
            "remixPrompt": "a cat on the moon",
        },
    )
    from dataclasses import replace

    with_mask = replace(EDIT, index=None, mask_png_base64=mask_png((600, 600), (0, 0, 300, 600)))
    params = build(backend, with_mask, picked(backend, image_no=1)).params
    assert params["imageNo"] == 1
    assert params["mask"] == {
        "areas": [{"width": 600, "height": 600, "points": [0, 0, 300, 0, 300, 600, 0, 600]}]
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 8193}, "8192"),
        ({"canvas": None}, "canvas"),
        ({"placement": None}, "position"),
        ({"placement": Placement(512, 512, 600, 0)}, "across"),
        ({"placement": Placement(512, 512, 0, 300)}, "down"),
        ({"placement": Placement(512, 512, -1, 0)}, "inside"),
        ({"placement": Placement(0, 512, 0, 0)}, "positive"),
        ({"canvas": Size(0, 768)}, "positive"),
        ({"index": 5}, "does not exist"),
    ],
)
async def test_edit_is_validated_before_sending(
    backend: str, changes: dict[str, Any], needle: str
) -> None:
    from dataclasses import replace

    cls = LegnextProvider if backend == "legnext" else VtrixProvider
    p = cls(api_key="k", http=_http())
    with pytest.raises(InvalidRequestError, match=needle):
        await p.submit(replace(EDIT, **changes), job=grid(backend), parent=grid(backend))
    assert p.http.requests_sent == 0
    await p.aclose()


@pytest.mark.parametrize("backend", ["legnext"])  # Vtrix: enhance's params undocumented
def test_enhance_body(backend: str) -> None:
    op = Operation(OperationKind.ENHANCE, prompt="a cat --v 7 --draft")
    assert build(backend, op, picked(backend, image_no=2)) == fam.UpstreamRequest(
        "enhance", {"jobId": UP, "imageNo": 2}
    )


def test_describe_body() -> None:
    op = Operation(OperationKind.DESCRIBE, image_urls=("https://img.example/a.png",))
    assert build("legnext", op, None) == fam.UpstreamRequest(
        "describe", {"imgUrl": "https://img.example/a.png"}
    )
    with pytest.raises(InvalidRequestError):
        build("legnext", Operation(OperationKind.DESCRIBE), None)


async def test_seed_is_local_from_the_parent() -> None:
    p = LegnextProvider(api_key="k", http=_http())
    parent = grid()
    parent.seed = "1904983176"
    snap = await p.submit(Operation(OperationKind.SEED), job=grid(job_id="s"), parent=parent)
    assert snap.status is JobStatus.COMPLETED and snap.seed == "1904983176"
    assert snap.ref == f"{UP}#seed"
    with pytest.raises(NotFoundError):
        await p.submit(Operation(OperationKind.SEED), job=grid(job_id="s"), parent=grid())
    assert p.http.requests_sent == 0
    await p.aclose()


# --- addressing -------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_address_rules(backend: str) -> None:
    rio = backend == "legnext"

    def addr(op: Operation, parent: Job) -> tuple[str, int]:
        a = fam.address_for(op, parent, ref_is_upstream=rio, label="X")
        return a.job_id, a.image_no

    assert addr(Operation(OperationKind.VARIATION, index=4), grid(backend)) == (UP, 3)
    assert addr(
        Operation(OperationKind.VARIATION, variant="subtle"), picked(backend, image_no=2)
    ) == (
        UP,
        2,
    )
    assert addr(Operation(OperationKind.VARIATION, variant="subtle"), upscaled(backend)) == (
        upscaled(backend).provider_data["job_id"],
        0,
    )
    # A single has one image: index 1 is that image, any other is refused.
    assert addr(Operation(OperationKind.REMIX, index=1), picked(backend, image_no=2)) == (UP, 2)
    with pytest.raises(InvalidRequestError):
        addr(Operation(OperationKind.REMIX, index=2), picked(backend, image_no=2))


def test_vtrix_per_item_job_ids_and_missing_id() -> None:
    parent = grid("vtrix", data={"job_ids": ["a", "b", "c", "d"], "job_id": "a"})
    a = fam.address_for(
        Operation(OperationKind.VARIATION, index=3), parent, ref_is_upstream=False, label="Vtrix"
    )
    assert (a.job_id, a.image_no) == ("c", 2)
    unfinished = grid("vtrix")
    unfinished.provider_data = {}
    with pytest.raises(InvalidRequestError, match="Vtrix job id"):
        fam.address_for(
            Operation(OperationKind.VARIATION, index=1),
            unfinished,
            ref_is_upstream=False,
            label="Vtrix",
        )


def test_legnext_falls_back_to_the_ref() -> None:
    parent = grid()
    parent.provider_data = {}
    a = fam.address_for(
        Operation(OperationKind.VARIATION, index=2), parent, ref_is_upstream=True, label="Legnext"
    )
    assert (a.job_id, a.image_no) == (UP, 1)


# --- local pick -------------------------------------------------------------------------------


SINGLE_ACTIONS = [
    "upscale_subtle",
    "upscale_creative",
    "vary_subtle",
    "vary_strong",
    "vary_region",
    "zoom_out_2x",
    "zoom_out_1_5x",
    "zoom_custom",
    "pan_left",
    "pan_right",
    "pan_up",
    "pan_down",
    "edit",
]
ANIMATE = ["animate_low:1", "animate_high:1"]  # Legnext only: Vtrix has no video


async def test_local_pick_sends_nothing(provider: Any) -> None:
    parent = grid(provider.name)
    op = Operation(OperationKind.UPSCALE, index=3, prompt="a cat", parent_job_id=parent.id)
    snap = await provider.submit(op, job=grid(provider.name, job_id="new"), parent=parent)
    assert provider.http.requests_sent == 0
    assert snap.status is JobStatus.COMPLETED
    assert snap.ref == f"{parent.provider_ref}#3"
    assert snap.result_url == TILES[2]
    assert snap.cost is None
    assert snap.data == {"job_id": UP, "image_no": 2, "image_count": 1, "picked_from": "grid1"}
    assert names(snap.actions) == SINGLE_ACTIONS + (ANIMATE if provider.name == "legnext" else [])
    assert all(a.raw == a.name and a.images is None for a in snap.actions or [])
    # Read again (e.g. after a restart) it stays what it was, still without a request.
    job = grid(provider.name, job_id="new")
    job.provider_ref, job.provider_data, job.result_url = snap.ref, snap.data, snap.result_url
    again = await provider.fetch(job)
    assert again.status is JobStatus.COMPLETED and again.result_url == TILES[2]
    assert provider.http.requests_sent == 0


async def test_local_pick_without_tiles_asks_for_a_crop() -> None:
    p = LegnextProvider(api_key="k", http=_http())
    parent = grid(tiles=False)
    op = Operation(OperationKind.UPSCALE, index=4, prompt="a cat")
    snap = await p.submit(op, job=grid(job_id="n"), parent=parent)
    assert snap.result_url == GRID_URL
    assert snap.data["crop_tile"] == 4 and snap.data["image_no"] == 3
    await p.aclose()


async def test_pick_on_a_single_re_addresses_it(provider: Any) -> None:
    parent = picked(provider.name, image_no=1)
    parent.provider_data["crop_tile"] = 2
    op = Operation(OperationKind.UPSCALE, index=1, prompt="a cat")
    snap = await provider.submit(op, job=grid(provider.name, job_id="n"), parent=parent)
    assert snap.data == {
        "job_id": UP,
        "image_no": 1,
        "image_count": 1,
        "picked_from": "pick1",
        "crop_tile": 2,
    }
    assert snap.result_url == parent.result_url
    assert provider.http.requests_sent == 0


async def test_pick_inherits_the_allow_list_for_its_image() -> None:
    p = LegnextProvider(api_key="k", http=_http())
    allow = {"inpaint": [0, 1], "upscale": [0, 1, 2, 3], "pan": [], "enhance": [2]}
    parent = grid(data={"available_actions": allow}, prompt="a cat --v 7 --draft")
    op = Operation(OperationKind.UPSCALE, index=3, prompt="a cat --v 7 --draft")
    snap = await p.submit(op, job=grid(job_id="n"), parent=parent)
    got = names(snap.actions)
    assert "vary_region" not in got  # inpaint lists 0 and 1 only
    assert not any(n.startswith("pan_") for n in got)
    assert "enhance" in got and "upscale_subtle" in got and "vary_strong" in got
    assert snap.data["available_actions"] == allow
    await p.aclose()


# --- actions ----------------------------------------------------------------------------------


def test_grid_actions_legnext_and_vtrix() -> None:
    legnext = LegnextProvider(api_key="k", http=_http()).capabilities
    vtrix = VtrixProvider(api_key="k", http=_http()).capabilities
    op = Operation(OperationKind.IMAGINE, prompt="a cat")
    tiles = [1, 2, 3, 4]
    expected = (
        [f"pick:{n}" for n in tiles]
        + [f"vary_grid:{n}" for n in tiles]
        + ["reroll"]
        + [f"edit:{n}" for n in tiles]
    )
    assert names(fam.synthesize_actions(op=op, image_count=4, capabilities=legnext)) == expected
    assert names(fam.synthesize_actions(op=op, image_count=4, capabilities=vtrix)) == [
        n for n in expected if n != "reroll"
    ]


def test_single_actions_upscale_result_and_enhance() -> None:
    caps = LegnextProvider(api_key="k", http=_http()).capabilities
    up = Operation(OperationKind.UPSCALE, variant="subtle", prompt="a cat")
    assert names(fam.synthesize_actions(op=up, image_count=1, capabilities=caps)) == [
        *(n for n in SINGLE_ACTIONS if not n.startswith("upscale_")),
        *ANIMATE,
    ]
    draft = Operation(OperationKind.UPSCALE, index=1, prompt="a cat --v 7 --draft")
    got = names(fam.synthesize_actions(op=draft, image_count=1, capabilities=caps, picked=True))
    assert got == [*SINGLE_ACTIONS, "enhance", *ANIMATE]
    describe = Operation(OperationKind.DESCRIBE, image_urls=("https://a/b.png",))
    assert fam.synthesize_actions(op=describe, image_count=4, capabilities=caps) == []


def test_allow_list_limits_families() -> None:
    caps = LegnextProvider(api_key="k", http=_http()).capabilities
    op = Operation(OperationKind.IMAGINE, prompt="a cat")
    allow = {"upscale": [0, 2], "reroll": [], "edit": [3]}
    got = names(fam.synthesize_actions(op=op, image_count=4, capabilities=caps, allow=allow))
    assert got == [
        "pick:1",
        "pick:3",
        "vary_grid:1",
        "vary_grid:2",
        "vary_grid:3",
        "vary_grid:4",
        "edit:4",
    ]


def test_parse_allow_list_is_tolerant() -> None:
    assert fam.parse_allow_list(None) is None
    assert fam.parse_allow_list({"Edit": [0, "1", True, 3.5], "pan": True, "x": None}) == {
        "edit": [0, 1],
        "pan": [0, 1, 2, 3],
        "x": [],
    }


def test_family_of() -> None:
    assert fam.family_of("pick:2") == "upscale"
    assert fam.family_of("upscale_creative") == "upscale"
    assert fam.family_of("vary_grid:1") == "variation"
    assert fam.family_of("vary_region") == "inpaint"
    assert fam.family_of("zoom_custom") == "outpaint"
    assert fam.family_of("pan_up") == "pan"
    assert fam.family_of("edit:3") == "edit"
    assert fam.family_of("reroll") == "reroll"
    assert fam.family_of("seed") is None


# --- mask -------------------------------------------------------------------------------------


def test_mask_scaling_into_the_documented_range() -> None:
    small = fam.mask_areas(mask_png((250, 250), (50, 100, 150, 200)))
    assert small == {
        "areas": [{"width": 500, "height": 500, "points": [100, 200, 300, 200, 300, 400, 100, 400]}]
    }
    big = fam.mask_areas(mask_png((8192, 1024), (0, 0, 8192, 512)))
    assert big["areas"][0]["width"] == 4096 and big["areas"][0]["height"] == 512
    assert big["areas"][0]["points"] == [0, 0, 4096, 0, 4096, 256, 0, 256]
    data_url = "data:image/png;base64," + mask_png((600, 600), (10, 10, 20, 20))
    assert fam.mask_areas(data_url)["areas"][0]["points"] == [10, 10, 20, 10, 20, 20, 10, 20]


@pytest.mark.parametrize(
    ("mask", "needle"),
    [
        (mask_png((600, 600), None), "empty"),
        (base64.b64encode(b"not a png").decode(), "readable"),
        ("!!!", "readable"),
        (mask_png((100, 5000), (0, 0, 10, 10)), "narrow"),
    ],
)
def test_bad_masks(mask: str, needle: str) -> None:
    with pytest.raises(InvalidRequestError, match=needle):
        fam.mask_areas(mask)


# --- Legnext parsing --------------------------------------------------------------------------


def legnext_job(status: str, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "job_id": UP,
        "model": "midjourney",
        "task_type": "diffusion",
        "status": status,
        "output": {"image_url": "", "image_urls": [], "seed": ""},
        "meta": {"usage": {"type": "point", "frozen": 20, "consume": 0}},
        "error": {"code": 0, "raw_message": "", "message": "", "detail": None},
    }
    obj.update(extra)
    return obj


IMAGINE_OP = Operation(OperationKind.IMAGINE, prompt="a cat")


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("pending", JobStatus.SUBMITTED),
        ("staged", JobStatus.SUBMITTED),
        ("processing", JobStatus.RUNNING),
        ("Processing", JobStatus.RUNNING),
        ("completed", JobStatus.COMPLETED),
        ("failed", JobStatus.FAILED),
    ],
)
def test_legnext_statuses(raw: str, status: JobStatus) -> None:
    snap = parse_job(legnext_job(raw), op=IMAGINE_OP)
    assert snap.status is status and snap.ref == UP and snap.data["job_id"] == UP


def test_legnext_unknown_status_is_running_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            snap = parse_job(legnext_job("warming_up_legnext"), op=IMAGINE_OP)
            assert snap.status is JobStatus.RUNNING and snap.raw_status == "warming_up_legnext"
    assert sum("warming_up_legnext" in r.getMessage() for r in caplog.records) == 1


def test_legnext_progress_is_a_percent_and_never_invented() -> None:
    assert parse_job(legnext_job("processing", progress=45), op=IMAGINE_OP).progress == 45
    assert parse_job(legnext_job("processing", progress="60%"), op=IMAGINE_OP).progress == 60
    assert parse_job(legnext_job("processing"), op=IMAGINE_OP).progress is None
    assert parse_job(legnext_job("pending", progress=0), op=IMAGINE_OP).progress is None


def test_legnext_completed_grid() -> None:
    output = {
        "image_url": GRID_URL,
        "image_urls": TILES,
        "seed": "1904983176",
        "available_actions": {"edit": [0, 1, 2, 3], "upscale": [0, 1]},
        "x_unknown": 1,
    }
    meta = {"usage": {"type": "point", "frozen": 20, "consume": 20}}
    snap = parse_job(legnext_job("completed", output=output, meta=meta), op=IMAGINE_OP)
    assert snap.tiles == TILES and snap.result_url == GRID_URL
    assert snap.seed == "1904983176"
    assert snap.cost == Cost(Decimal("20"), "point")
    assert snap.progress == 100
    assert snap.data == {
        "job_id": UP,
        "image_count": 4,
        "available_actions": {"edit": [0, 1, 2, 3], "upscale": [0, 1]},
    }
    assert "pick:3" not in names(snap.actions) and "pick:2" in names(snap.actions)

    output["image_url"] = ""
    assert parse_job(legnext_job("completed", output=output), op=IMAGINE_OP).result_url is None


def test_legnext_single_result() -> None:
    up = Operation(OperationKind.UPSCALE, variant="subtle", prompt="a cat")
    output = {"image_url": "", "image_urls": [TILES[0]]}
    snap = parse_job(legnext_job("completed", output=output), op=up)
    assert snap.tiles is None and snap.result_url == TILES[0]
    assert snap.data["image_count"] == 1
    assert "upscale_subtle" not in names(snap.actions) and "vary_strong" in names(snap.actions)


def test_legnext_cost_frozen_then_consumed() -> None:
    assert parse_job(legnext_job("pending"), op=IMAGINE_OP).cost == Cost(Decimal(20), "point")
    assert parse_job(legnext_job("failed"), op=IMAGINE_OP).cost is None  # refunded
    no_meta = legnext_job("pending")
    del no_meta["meta"]
    assert parse_job(no_meta, op=IMAGINE_OP).cost is None


def test_legnext_failure_errors() -> None:
    err = {
        "code": 10001,
        "message": "Failed to generate",
        "raw_message": "upstream",
        "detail": None,
    }
    snap = parse_job(legnext_job("failed", error=err), op=IMAGINE_OP)
    assert snap.error is not None and snap.error.code is ErrorCode.GENERATION_FAILED
    assert snap.error.provider_text == "Failed to generate (upstream) (code 10001)"
    assert "Failed to generate" in snap.error.message
    banned = {"code": 1, "message": "Banned prompt detected", "raw_message": ""}
    snap = parse_job(legnext_job("failed", error=banned), op=IMAGINE_OP)
    assert snap.error is not None and snap.error.code is ErrorCode.MODERATED
    snap = parse_job(legnext_job("failed", error=None), op=IMAGINE_OP)
    assert snap.error is not None and snap.error.code is ErrorCode.GENERATION_FAILED


def test_legnext_describe_prompts() -> None:
    op = Operation(OperationKind.DESCRIBE, image_urls=("https://a/b.png",))
    output = {"prompts": ["one", "two"], "finalPrompt": "ignored"}
    snap = parse_job(legnext_job("completed", output=output), op=op)
    assert snap.prompts == ["one", "two"] and snap.actions == []
    output = {"finalPrompt": "1. a fox\n2. a city\n3. a map", "promptEn": "x"}
    assert parse_job(legnext_job("completed", output=output), op=op).prompts == [
        "a fox",
        "a city",
        "a map",
    ]


# --- Vtrix parsing ----------------------------------------------------------------------------


def vtrix_task(status: str, **extra: Any) -> dict[str, Any]:
    return {"id": "task_abc", "status": status, **extra}


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("pending", JobStatus.SUBMITTED),
        ("queued", JobStatus.SUBMITTED),
        ("processing", JobStatus.RUNNING),
        ("in_progress", JobStatus.RUNNING),
        ("completed", JobStatus.COMPLETED),
        ("done", JobStatus.COMPLETED),
        ("DONE", JobStatus.COMPLETED),
        ("failed", JobStatus.FAILED),
        ("thinking_vtrix", JobStatus.RUNNING),
    ],
)
def test_vtrix_statuses(raw: str, status: JobStatus) -> None:
    snap = parse_task(vtrix_task(raw), op=IMAGINE_OP)
    assert snap.status is status and snap.ref == "task_abc"
    assert snap.raw_status == raw.lower()


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.25, 25), (0.5, 50), (1, 100), (0.999, 100), ("0.4", 40), (None, None)],
)
def test_vtrix_progress_is_a_fraction(value: Any, expected: int | None) -> None:
    assert parse_task(vtrix_task("processing", progress=value)).progress == expected


def test_vtrix_completed_grid_and_single() -> None:
    content = [{"type": "image", "url": TILES[i], "jobId": UP} for i in range(4)]
    task = vtrix_task(
        "completed", output=[{"content": content}], usage={"cost": "0.04", "discount": 0}
    )
    snap = parse_task(task, op=IMAGINE_OP)
    assert snap.tiles == TILES and snap.result_url is None
    assert snap.data == {"job_id": UP, "job_ids": [UP] * 4, "image_count": 4}
    assert snap.cost == Cost(Decimal("0.04"), "usd")
    assert "reroll" not in names(snap.actions) and "pick:1" in names(snap.actions)

    single = vtrix_task("done", output=[{"content": content[:1]}])
    up = Operation(OperationKind.UPSCALE, variant="creative", prompt="a cat")
    snap = parse_task(single, op=up)
    assert snap.tiles is None and snap.result_url == TILES[0]
    assert snap.data["image_count"] == 1 and snap.cost is None


EDIT_CODES = [
    ("001", "task ID missing"),
    ("002", "image number missing"),
    ("003", "invalid image number (must be 0–3)"),
    ("004", "prompt missing"),
    ("005", "invalid prompt length (1–8192 characters)"),
    ("006", "canvas parameters missing"),
    ("007", "image position parameters missing"),
    ("008", "invalid callback URL"),
    ("098", "generation failed"),
    ("099", "service unavailable"),
]


@pytest.mark.parametrize(("eee", "fragment"), EDIT_CODES)
@pytest.mark.parametrize("form", ["int", "padded", "message_key", "error_message_key"])
def test_every_documented_edit_code(eee: str, fragment: str, form: str) -> None:
    padded = f"004007{eee}"
    code: Any = int(padded) if form in ("int", "message_key") else padded
    key = "message" if form == "message_key" else "error_message"
    snap = parse_task(vtrix_task("failed", error={"code": code, key: "Their words"}))
    assert snap.error is not None
    assert snap.error.message == f"Vtrix could not edit the image: {fragment}."
    assert snap.error.provider_text == f"Their words (code {padded})"
    expected = {
        "098": ErrorCode.GENERATION_FAILED,
        "099": ErrorCode.UNAVAILABLE,
    }.get(eee, ErrorCode.INVALID_REQUEST)
    assert snap.error.code is expected
    assert VTRIX_ERROR_MESSAGES[f"007{eee}"] == fragment


def test_remix_and_other_model_codes() -> None:
    assert describe_vtrix_error(4011001, "x").message == (
        "Vtrix could not remix the image: task ID missing."
    )
    assert describe_vtrix_error("004011002", None).message == (
        "Vtrix could not remix the image: image number missing."
    )
    # The diffusion page's stray leading digit: the last six digits decide.
    assert describe_vtrix_error(8004001004, "").message == (
        "Vtrix could not create the image: prompt missing."
    )
    # Same error part on an undocumented model: same meaning.
    other = describe_vtrix_error(4012003, "bad")
    assert other.message == "Vtrix could not finish the job: invalid image number (must be 0–3)."
    assert other.code is ErrorCode.INVALID_REQUEST


def test_unknown_code_plain_string_and_moderation() -> None:
    unknown = describe_vtrix_error(4012345, "Something odd happened.")
    assert unknown.message == "Vtrix error 004012345: Something odd happened."
    assert unknown.provider_text == "Something odd happened. (code 004012345)"
    assert unknown.code is ErrorCode.GENERATION_FAILED
    assert describe_vtrix_error("004012345", "").message == "Vtrix error 004012345."

    snap = parse_task(vtrix_task("failed", error="upstream exploded"))
    assert snap.error is not None and snap.error.code is ErrorCode.GENERATION_FAILED
    assert snap.error.message == "Vtrix could not make this image: upstream exploded."
    assert snap.error.provider_text == "upstream exploded"

    nsfw = parse_task(
        vtrix_task("failed", error={"code": 4007098, "error_message": "NSFW content detected"})
    )
    assert nsfw.error is not None and nsfw.error.code is ErrorCode.MODERATED
    assert describe_vtrix_error(None, "prompt banned by moderation").code is ErrorCode.MODERATED
    empty = parse_task(vtrix_task("failed"))
    assert empty.error is not None and empty.error.code is ErrorCode.GENERATION_FAILED


def test_normalise_code() -> None:
    assert normalise_code(4007003) == "004007003"
    assert normalise_code("004007003") == "004007003"
    assert normalise_code("4007003") == "004007003"
    assert normalise_code(8004001001) == "8004001001"
    assert normalise_code(400) is None and normalise_code("0") is None
    assert normalise_code(None) is None and normalise_code(True) is None


# --- HTTP error mapping -----------------------------------------------------------------------


@pytest.mark.parametrize("classify", [legnext_classify, vtrix_classify])
def test_shared_http_mapping(classify: Any) -> None:
    assert classify(200, {}, "") is None
    assert classify(401, {"message": "bad key"}, "") is None  # ProviderHTTP: AuthError
    assert classify(429, {}, "") is None and classify(500, {}, "") is None
    assert classify(404, {"message": "job not found"}, "") is None
    assert isinstance(
        classify(403, {"message": "insufficient balance"}, ""), InsufficientCreditError
    )
    assert isinstance(classify(402, {"message": "pay up"}, ""), InsufficientCreditError)
    forbidden = classify(403, {"message": "forbidden"}, "")
    assert isinstance(forbidden, AuthError) and forbidden.provider_text == "forbidden"
    bad = classify(400, {"code": 400, "message": "jobId is required", "raw_message": "x"}, "")
    assert isinstance(bad, InvalidRequestError)
    assert bad.provider_text == "jobId is required" and "jobId is required" in bad.message
    assert isinstance(classify(422, {"error": {"message": "no"}}, ""), InvalidRequestError)
    assert isinstance(classify(400, {"message": "Banned prompt"}, ""), ModeratedError)


def test_vtrix_coded_400() -> None:
    err = vtrix_classify(400, {"code": 4007003, "message": "Invalid image number"}, "")
    assert isinstance(err, InvalidRequestError)
    assert err.message == "Vtrix could not edit the image: invalid image number (must be 0–3)."
    assert err.provider_text == "Invalid image number (code 004007003)"
    nested = vtrix_classify(400, {"error": {"code": "004007005", "message": "len"}}, "")
    assert isinstance(nested, InvalidRequestError) and "prompt length" in nested.message
    busy = vtrix_classify(400, {"code": 4007099, "message": "down"}, "")
    assert isinstance(busy, ProviderUnavailableError)


async def test_create_reply_without_an_id_is_an_unknown_outcome() -> None:
    class Reply(httpx.AsyncBaseTransport):
        def __init__(self, payload: Any) -> None:
            self.payload = payload

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, json=self.payload)

    op = Operation(OperationKind.IMAGINE, prompt="a cat")
    for cls in (LegnextProvider, VtrixProvider):
        http = ProviderHTTP("http://x", headers={}, transport=Reply({"status": "pending"}))
        p = cls(api_key="k", http=http)
        with pytest.raises(SubmitOutcomeUnknownError):
            await p.submit(op, job=grid(job_id="n"), parent=None)
        await p.aclose()
    # Vtrix answering 200 with a code and no task: refused, nothing created.
    http = ProviderHTTP(
        "http://x", headers={}, transport=Reply({"code": 4007004, "message": "Prompt missing"})
    )
    p = VtrixProvider(api_key="k", http=http)
    with pytest.raises(InvalidRequestError, match="prompt missing"):
        await p.submit(op, job=grid(job_id="n"), parent=None)
    await p.aclose()


def test_a_non_list_image_urls_is_read_as_no_tiles() -> None:
    # Found by the bad-input fuzzer: `"image_urls": true` crashed the parser.
    snap = parse_job({"job_id": "0", "status": "completed", "output": {"image_urls": True}})
    assert snap.tiles is None and snap.result_url is None
