"""What Legnext and Vtrix share (PROVIDERS.md §2, §3, §6): the same Midjourney parameters,
addressing of one image as (jobId, imageNo 0-3), local picks, synthesised follow-ups.

Both backends let any image of a finished job be the start of a follow-up, so there is no
"pick" request: U*n* on a grid is done locally for free (the tile is shown and remembered
as `(jobId, n-1)`). What a follow-up needs is kept in `ProviderSnapshot.data`, which the
engine merges into `Job.provider_data`:

    job_id             the upstream Midjourney job id (Legnext job_id; Vtrix content[i].jobId)
    job_ids            Vtrix only: the per-item upstream ids of a finished task
    image_count        how many images the finished job holds (4 for a grid, 1 for a single)
    image_no           only on a picked single: which image of `job_id` it is (0-3)
    available_actions  Legnext only: its allow-list, {family: [image numbers]}
    picked_from        on a local pick: the bot job id of the grid
    crop_tile          on a local pick from a grid without tile URLs: the tile to crop (1-4)

`LegnextFamilyProvider` holds the request logic; a backend subclass only sends one create
and one read in its own wire format and parses its own job object.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import logging
import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from PIL import Image, UnidentifiedImageError

from bot.actions import parse_action
from bot.domain import (
    Action,
    ErrorCode,
    Job,
    JobError,
    JobStatus,
    Operation,
    OperationKind,
    PanDirection,
    ProviderSnapshot,
)
from bot.providers.base import (
    AccountInfo,
    AuthError,
    Capabilities,
    InsufficientCreditError,
    InvalidRequestError,
    ModeratedError,
    NotFoundError,
    ProviderError,
    UnsupportedOperationError,
)
from bot.providers.http import ProviderHTTP
from bot.video import animate_actions, video_problem, video_prompt

log = logging.getLogger(__name__)

PROMPT_MIN, PROMPT_MAX = 1, 8192
UPSCALE_TYPE = {"subtle": 0, "creative": 1, "2x": 2, "4x": 3}
VARIATION_TYPE = {"subtle": 0, "strong": 1}
REMIX_MODE_STRONG = 0  # remix numbers the other way round from variation: 0 strong, 1 subtle
PAN_DIRECTION = {
    PanDirection.DOWN: 0,
    PanDirection.RIGHT: 1,
    PanDirection.UP: 2,
    PanDirection.LEFT: 3,
}
PAN_SCALE = 1.5  # required by the API, range 1.1-3.0; Midjourney's own pan extends by half
MIN_OUTPAINT_SCALE, MAX_OUTPAINT_SCALE = Decimal("1.1"), Decimal("2.0")
MASK_MIN_SIDE, MASK_MAX_SIDE = 500, 4096
MAX_IMAGE_NO = 3

_SPEED_FLAG = re.compile(r"(?<!\S)--(?:fast|relax|turbo)\b", re.IGNORECASE)
_AR_FLAG = re.compile(r"(?<!\S)--(?:ar|aspect)\b", re.IGNORECASE)
_DRAFT_FLAG = re.compile(r"(?<!\S)--draft\b", re.IGNORECASE)
_MODERATION_WORDS = ("banned", "moderation", "moderat", "nsfw", "prohibited", "not allowed")
_CREDIT_WORDS = ("balance", "credit", "insufficient", "quota")

# Neutral action family (bot.actions.parse_action) -> the Legnext family its allow-list
# (`available_actions`) names. make_square has none: Legnext governs it by no key.
_LEGNEXT_FAMILY = {
    "pick": "upscale",
    "upscale": "upscale",
    "vary_grid": "variation",
    "vary_subtle": "variation",
    "vary_strong": "variation",
    "vary_region": "inpaint",
    "zoom_out": "outpaint",
    "zoom_custom": "outpaint",
    "pan": "pan",
    "edit": "edit",
    "enhance": "enhance",
    "reroll": "reroll",
}


def family_of(action: str) -> str | None:
    """The Legnext `available_actions` key that governs a neutral action."""
    parsed = parse_action(action)
    return None if parsed is None else _LEGNEXT_FAMILY.get(parsed.family)


# --- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """One create request in Legnext's vocabulary: `op` is the path tail (`/v1/<op>`) and the
    model suffix (`midjourney_<op>`); `params` are the same on both backends."""

    op: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Address:
    job_id: str
    image_no: int


def upstream_id(job: Job, *, ref_is_upstream: bool) -> str | None:
    """The upstream Midjourney job id of a bot job (Legnext: also its provider ref)."""
    value = job.provider_data.get("job_id")
    if isinstance(value, str) and value:
        return value
    if ref_is_upstream and job.provider_ref:
        return job.provider_ref.split("#", 1)[0]
    return None


def image_count_of(job: Job) -> int:
    count = job.provider_data.get("image_count")
    if isinstance(count, int) and not isinstance(count, bool) and count > 0:
        return count
    if job.tiles:
        return len(job.tiles)
    return 4


def is_single(job: Job) -> bool:
    return "image_no" in job.provider_data or image_count_of(job) == 1


def _tile_upstream_id(parent: Job, n: int, *, ref_is_upstream: bool, label: str) -> str:
    ids = parent.provider_data.get("job_ids")
    if isinstance(ids, list) and len(ids) >= n and isinstance(ids[n - 1], str) and ids[n - 1]:
        return str(ids[n - 1])
    return _require_upstream(parent, ref_is_upstream=ref_is_upstream, label=label)


def _require_upstream(parent: Job, *, ref_is_upstream: bool, label: str) -> str:
    value = upstream_id(parent, ref_is_upstream=ref_is_upstream)
    if not value:
        raise InvalidRequestError(
            f"That image has no {label} job id yet: wait until it has finished."
        )
    return value


def address_for(op: Operation, parent: Job | None, *, ref_is_upstream: bool, label: str) -> Address:
    """Which (jobId, imageNo) a follow-up applies to (see the module docstring)."""
    if parent is None:
        raise InvalidRequestError("That follow-up needs a finished job to start from.")
    data = parent.provider_data
    image_no = data.get("image_no")
    picked = isinstance(image_no, int) and not isinstance(image_no, bool)
    if op.index is not None:
        if picked or image_count_of(parent) == 1:
            # A single holds one image: index 1 can only mean that image.
            if op.index != 1:
                raise InvalidRequestError(
                    f"That image is a single picture; there is no image {op.index} to use."
                )
        else:
            if not 1 <= op.index <= min(4, image_count_of(parent)):
                raise InvalidRequestError(
                    f"Image {op.index} does not exist: pick 1 to {image_count_of(parent)}."
                )
            job_id = _tile_upstream_id(
                parent, op.index, ref_is_upstream=ref_is_upstream, label=label
            )
            return Address(job_id, op.index - 1)
    job_id = _require_upstream(parent, ref_is_upstream=ref_is_upstream, label=label)
    if picked:
        assert isinstance(image_no, int)
        return Address(job_id, image_no)
    return Address(job_id, 0)


def check_prompt(text: str | None, what: str) -> str:
    """A prompt the API accepts (1-8192 characters) or InvalidRequestError saying why."""
    if text is None or not text.strip():
        raise InvalidRequestError(f"{what} needs a prompt.")
    if not PROMPT_MIN <= len(text) <= PROMPT_MAX:
        raise InvalidRequestError(
            f"{what}: the prompt is {len(text)} characters long; "
            f"it must be between {PROMPT_MIN} and {PROMPT_MAX}."
        )
    return text


def imagine_text(op: Operation) -> str:
    """The diffusion `text`: the prompt with --ar and the speed flag appended when the
    prompt does not already carry them (the prompt's own flags win)."""
    text = (op.prompt or "").strip()
    if not text:
        raise InvalidRequestError("Imagine needs a prompt.")
    if op.aspect_ratio and not _AR_FLAG.search(text):
        text += f" --ar {op.aspect_ratio}"
    if op.mode is not None and not _SPEED_FLAG.search(text):
        text += f" --{op.mode.value}"
    return check_prompt(text, "Imagine")


def changed_prompt(op: Operation, parent: Job | None) -> str | None:
    """The remix prompt of an optional-prompt follow-up: only when the user changed it."""
    if not op.prompt or not op.prompt.strip():
        return None
    original = parent.operation.prompt if parent is not None else None
    if op.prompt == original:
        return None
    return check_prompt(op.prompt, "The new prompt")


def mask_areas(mask_png_base64: str) -> dict[str, Any]:
    """The API's polygon mask from a PNG (white = repaint): the bounding box of the white
    pixels as one clockwise rectangle, on a canvas the size of the mask image. The API
    wants that canvas between 500 and 4096 pixels a side, so the box is scaled if needed."""
    text = mask_png_base64.strip()
    if text.startswith("data:"):
        text = text.split(",", 1)[-1]
    try:
        raw = base64.b64decode(text, validate=True)
        with Image.open(io.BytesIO(raw)) as opened:
            image = opened.convert("RGBA") if "A" in opened.getbands() else opened.convert("RGB")
            width, height = image.size
            if image.mode == "RGBA":
                backdrop = Image.new("RGBA", image.size, (0, 0, 0, 255))
                image = Image.alpha_composite(backdrop, image)
            grey = image.convert("L").point(lambda v: 255 if v >= 128 else 0)
            box = grey.getbbox()
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError):
        raise InvalidRequestError("The mask is not a readable PNG image.") from None
    if box is None:
        raise InvalidRequestError("The mask is empty: paint the area to change in white.")
    factor = 1.0
    if max(width, height) > MASK_MAX_SIDE:
        factor = MASK_MAX_SIDE / max(width, height)
    if min(width, height) * factor < MASK_MIN_SIDE:
        factor = MASK_MIN_SIDE / min(width, height)
    out_w, out_h = round(width * factor), round(height * factor)
    if max(out_w, out_h) > MASK_MAX_SIDE:
        raise InvalidRequestError(
            "The mask is too narrow: its sides must fit between 500 and 4096 pixels."
        )
    out_w = max(MASK_MIN_SIDE, out_w)
    out_h = max(MASK_MIN_SIDE, out_h)
    left, top, right, bottom = box

    def sx(v: int) -> int:
        return max(0, min(out_w, round(v * factor)))

    def sy(v: int) -> int:
        return max(0, min(out_h, round(v * factor)))

    x1, y1, x2, y2 = sx(left), sy(top), sx(right), sy(bottom)
    return {
        "areas": [{"width": out_w, "height": out_h, "points": [x1, y1, x2, y1, x2, y2, x1, y2]}]
    }


def validate_edit(op: Operation, image_no: int) -> None:
    """Everything the edit endpoint checks that the bot can check first."""
    check_prompt(op.prompt, "Edit")
    if not 0 <= image_no <= MAX_IMAGE_NO:
        raise InvalidRequestError(f"Edit: image number {image_no} is invalid (must be 0–3).")
    canvas, place = op.canvas, op.placement
    if canvas is None:
        raise InvalidRequestError("Edit needs a canvas size.")
    if place is None:
        raise InvalidRequestError("Edit needs the image's position on the canvas.")
    if canvas.width <= 0 or canvas.height <= 0:
        raise InvalidRequestError("Edit: the canvas width and height must be positive.")
    if place.width <= 0 or place.height <= 0:
        raise InvalidRequestError("Edit: the image width and height must be positive.")
    if place.x < 0 or place.y < 0:
        raise InvalidRequestError("Edit: the image must start inside the canvas (x, y ≥ 0).")
    if place.x + place.width > canvas.width:
        raise InvalidRequestError(
            f"Edit: the image does not fit the canvas across "
            f"(x {place.x} + width {place.width} > canvas width {canvas.width})."
        )
    if place.y + place.height > canvas.height:
        raise InvalidRequestError(
            f"Edit: the image does not fit the canvas down "
            f"(y {place.y} + height {place.height} > canvas height {canvas.height})."
        )


def outpaint_scale(op: Operation) -> float:
    ratio = op.zoom_ratio
    if ratio is None:
        raise InvalidRequestError("Zoom out needs a zoom ratio.")
    try:
        ratio = Decimal(ratio)
    except (InvalidOperation, TypeError, ValueError):
        raise InvalidRequestError("Zoom out needs a numeric zoom ratio.") from None
    if ratio == 1:
        raise UnsupportedOperationError("Make Square is not available on this image service.")
    if not MIN_OUTPAINT_SCALE <= ratio <= MAX_OUTPAINT_SCALE:
        raise InvalidRequestError(
            f"Zoom out ratio {ratio} is out of range: it must be between 1.1 and 2.0."
        )
    return float(ratio)


def build_request(
    op: Operation, parent: Job | None, *, ref_is_upstream: bool, label: str
) -> UpstreamRequest:
    """The create request for `op`. Raises InvalidRequestError/UnsupportedOperationError
    before anything is sent. Local operations (pick, seed) are handled by `local_result`."""
    kind = op.kind
    if kind is OperationKind.IMAGINE:
        return UpstreamRequest("diffusion", {"text": imagine_text(op)})
    if kind is OperationKind.DESCRIBE:
        if not op.image_urls:
            raise InvalidRequestError("Describe needs an image.")
        return UpstreamRequest("describe", {"imgUrl": op.image_urls[0]})
    if kind in (OperationKind.SHORTEN, OperationKind.RETEXTURE, OperationKind.UPLOAD_EDIT):
        return uploaded_request(op)
    if kind.is_video:
        return video_request(op, parent, ref_is_upstream=ref_is_upstream, label=label)
    if kind not in (
        OperationKind.UPSCALE,
        OperationKind.VARIATION,
        OperationKind.REROLL,
        OperationKind.INPAINT,
        OperationKind.OUTPAINT,
        OperationKind.PAN,
        OperationKind.REMIX,
        OperationKind.EDIT,
        OperationKind.ENHANCE,
    ):
        raise UnsupportedOperationError(f"{label} cannot do {kind.value}.")
    if kind is OperationKind.REROLL:
        if parent is None:
            raise InvalidRequestError("That follow-up needs a finished job to start from.")
        return UpstreamRequest(
            "reroll",
            {"jobId": _require_upstream(parent, ref_is_upstream=ref_is_upstream, label=label)},
        )

    # Validate what needs no parent first, so bad input never depends on the parent state.
    scale = outpaint_scale(op) if kind is OperationKind.OUTPAINT else None
    addr = address_for(op, parent, ref_is_upstream=ref_is_upstream, label=label)
    params: dict[str, Any] = {"jobId": addr.job_id, "imageNo": addr.image_no}
    return _addressed_request(op, parent, addr, params, scale)


def _addressed_request(
    op: Operation,
    parent: Job | None,
    addr: Address,
    params: dict[str, Any],
    scale: float | None,
) -> UpstreamRequest:
    """The create request of a follow-up on one image, its `jobId`/`imageNo` in `params`."""
    kind = op.kind
    if kind is OperationKind.UPSCALE:
        if op.variant not in UPSCALE_TYPE:
            raise InvalidRequestError("Upscale needs subtle, creative, 2x or 4x.")
        params["type"] = UPSCALE_TYPE[op.variant]
        return UpstreamRequest("upscale", params)
    if kind is OperationKind.VARIATION:
        variant = op.variant or "strong"  # V1-V4 on a grid: Midjourney's strong variation
        if variant not in VARIATION_TYPE:
            raise InvalidRequestError("Variation needs subtle or strong.")
        params["type"] = VARIATION_TYPE[variant]
        _put(params, "remixPrompt", changed_prompt(op, parent))
        return UpstreamRequest("variation", params)
    if kind is OperationKind.REMIX:
        params["remixPrompt"] = check_prompt(op.prompt, "Remix")
        params["mode"] = REMIX_MODE_STRONG
        return UpstreamRequest("remix", params)
    if kind is OperationKind.INPAINT:
        if not op.mask_png_base64:
            raise InvalidRequestError("Vary (Region) needs a mask.")
        params["mask"] = mask_areas(op.mask_png_base64)
        if op.prompt and op.prompt.strip():
            params["remixPrompt"] = check_prompt(op.prompt, "Vary (Region)")
        return UpstreamRequest("inpaint", params)
    if kind is OperationKind.OUTPAINT:
        params["scale"] = scale
        _put(params, "remixPrompt", changed_prompt(op, parent))
        return UpstreamRequest("outpaint", params)
    if kind is OperationKind.PAN:
        if op.direction is None:
            raise InvalidRequestError("Pan needs a direction.")
        params["direction"] = PAN_DIRECTION[PanDirection(op.direction)]
        params["scale"] = PAN_SCALE
        _put(params, "remixPrompt", changed_prompt(op, parent))
        return UpstreamRequest("pan", params)
    if kind is OperationKind.EDIT:
        validate_edit(op, addr.image_no)
        assert op.canvas is not None and op.placement is not None and op.prompt is not None
        params["canvas"] = {"width": op.canvas.width, "height": op.canvas.height}
        params["imgPos"] = {
            "width": op.placement.width,
            "height": op.placement.height,
            "x": op.placement.x,
            "y": op.placement.y,
        }
        params["remixPrompt"] = op.prompt
        if op.mask_png_base64:
            params["mask"] = mask_areas(op.mask_png_base64)
        return UpstreamRequest("edit", params)
    assert kind is OperationKind.ENHANCE
    return UpstreamRequest("enhance", params)


def video_request(
    op: Operation, parent: Job | None, *, ref_is_upstream: bool, label: str
) -> UpstreamRequest:
    """Legnext's video endpoints (PROVIDERS.md §8.2): /v1/video-diffusion from a job's image
    (jobId + imageNo) or from an outside image (its URL first in the prompt),
    /v1/extend-video and /v1/video-upscale on a video job (jobId + videoNo)."""
    if problem := video_problem(op):
        raise InvalidRequestError(problem)
    video_type = 1 if op.hd else 0
    if op.kind is OperationKind.VIDEO_FROM_IMAGE:
        prompt = check_prompt(video_prompt(op, start_image=op.image_urls[0]), "Video")
        return UpstreamRequest("video-diffusion", {"prompt": prompt, "videoType": video_type})
    if parent is None:
        raise InvalidRequestError("That follow-up needs a finished job to start from.")
    if op.kind is OperationKind.VIDEO:
        if parent.is_video:
            raise InvalidRequestError("That is already a video: use Extend on it instead.")
        addr = address_for(op, parent, ref_is_upstream=ref_is_upstream, label=label)
        params: dict[str, Any] = {"jobId": addr.job_id, "imageNo": addr.image_no}
        params["prompt"] = check_prompt(video_prompt(op), "Animate")
        params["videoType"] = video_type
        return UpstreamRequest("video-diffusion", params)
    # Extend and HD take the *video* job's id and the video's number (0-3).
    count = len(parent.videos)
    if not parent.is_video or count == 0:
        raise InvalidRequestError("Extend and HD need a finished video job.")
    number = op.index or 1
    if not 1 <= number <= count:
        raise InvalidRequestError(f"Video {number} does not exist: pick 1 to {count}.")
    job_id = _require_upstream(parent, ref_is_upstream=ref_is_upstream, label=label)
    params = {"jobId": job_id, "videoNo": number - 1}
    if op.kind is OperationKind.VIDEO_EXTEND:
        params["prompt"] = check_prompt(video_prompt(op), "Extend")
        return UpstreamRequest("extend-video", params)
    return UpstreamRequest("video-upscale", params)


def video_source(op: Operation, parent: Job | None) -> str | None:
    """The image a video starts from, kept as its cover when the backend reports none."""
    if op.kind is OperationKind.VIDEO_FROM_IMAGE:
        return op.image_urls[0] if op.image_urls else None
    if parent is None:
        return None
    if parent.is_video:
        videos = parent.videos
        n = (op.index or 1) - 1
        return videos[n].cover if 0 <= n < len(videos) else None
    n = op.index or 1
    if parent.tiles and not is_single(parent) and len(parent.tiles) >= n:
        return parent.tiles[n - 1]
    return parent.result_url


IMG_URL_MAX = 1024  # Legnext's imgUrl limit (PROVIDERS.md §8.2)


def _img_url(op: Operation, what: str) -> str:
    if not op.image_urls:
        raise InvalidRequestError(f"{what} needs an image.")
    url = op.image_urls[0]
    if len(url) > IMG_URL_MAX:
        raise InvalidRequestError(
            f"{what}: the image link is {len(url)} characters long; at most {IMG_URL_MAX}."
        )
    return url


def full_canvas_mask(width: int, height: int) -> dict[str, Any]:
    """The whole canvas as the area to paint (the API wants a mask; 500-4096 a side)."""
    factor = max(1.0, MASK_MIN_SIDE / max(1, min(width, height)))
    factor = min(factor, MASK_MAX_SIDE / max(width, height, 1))
    w, h = round(width * factor), round(height * factor)
    w, h = min(MASK_MAX_SIDE, max(MASK_MIN_SIDE, w)), min(MASK_MAX_SIDE, max(MASK_MIN_SIDE, h))
    return {"areas": [{"width": w, "height": h, "points": [0, 0, w, 0, w, h, 0, h]}]}


def uploaded_request(op: Operation) -> UpstreamRequest:
    """Shorten (a prompt), retexture and upload-paint (a member's uploaded image), issue 19:
    `/v1/shorten {prompt}`, `/v1/retexture {imgUrl, remixPrompt}`, `/v1/upload-paint {imgUrl,
    canvas, imgPos, mask, remixPrompt}` (Vtrix: the same params, models without dashes)."""
    if op.kind is OperationKind.SHORTEN:
        return UpstreamRequest("shorten", {"prompt": check_prompt(op.prompt, "Shorten")})
    if op.kind is OperationKind.RETEXTURE:
        url = _img_url(op, "Retexture")
        return UpstreamRequest(
            "retexture", {"imgUrl": url, "remixPrompt": check_prompt(op.prompt, "Retexture")}
        )
    url = _img_url(op, "Edit")
    validate_edit(op, 0)
    assert op.canvas is not None and op.placement is not None and op.prompt is not None
    canvas = {"width": op.canvas.width, "height": op.canvas.height}
    place = op.placement
    params: dict[str, Any] = {
        "imgUrl": url,
        "canvas": canvas,
        "imgPos": {"width": place.width, "height": place.height, "x": place.x, "y": place.y},
        "mask": (
            mask_areas(op.mask_png_base64)
            if op.mask_png_base64
            else full_canvas_mask(op.canvas.width, op.canvas.height)
        ),
        "remixPrompt": op.prompt,
    }
    return UpstreamRequest("upload-paint", params)


def _put(params: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        params[key] = value


# --- local operations -------------------------------------------------------------------------


def is_local_pick(op: Operation) -> bool:
    return op.kind is OperationKind.UPSCALE and op.index is not None and op.variant is None


def local_result(
    op: Operation,
    parent: Job | None,
    *,
    capabilities: Capabilities,
    ref_is_upstream: bool,
    label: str,
) -> ProviderSnapshot | None:
    """The finished snapshot of an operation done without any request, or None."""
    if op.kind is OperationKind.SEED:
        return _local_seed(parent, label)
    if not is_local_pick(op):
        return None
    if parent is None:
        raise InvalidRequestError("That follow-up needs a finished job to start from.")
    n = op.index
    assert n is not None
    allow = parent.provider_data.get("available_actions")
    data, result_url = _picked(parent, n, ref_is_upstream=ref_is_upstream, label=label)
    if isinstance(allow, dict):
        data["available_actions"] = allow
    actions = synthesize_actions(
        op=op,
        image_count=1,
        capabilities=capabilities,
        allow=allow if isinstance(allow, dict) else None,
        image_no=data["image_no"],
        picked=True,
    )
    return ProviderSnapshot(
        ref=f"{parent.provider_ref or parent.id}#{n}",
        status=JobStatus.COMPLETED,
        progress=100,
        result_url=result_url,
        actions=actions,
        cost=None,
        data=data,
        raw_status="local",
    )


def _local_seed(parent: Job | None, label: str) -> ProviderSnapshot:
    """The seed of the parent's image, answered from what the service already reported."""
    if parent is None or not parent.seed:
        raise NotFoundError(f"{label} did not report a seed for that image.")
    return ProviderSnapshot(
        ref=f"{parent.provider_ref or parent.id}#seed",
        status=JobStatus.COMPLETED,
        progress=100,
        seed=parent.seed,
        actions=[],
        data={"seed_of": parent.id},
        raw_status="local",
    )


def _picked(
    parent: Job, n: int, *, ref_is_upstream: bool, label: str
) -> tuple[dict[str, Any], str | None]:
    """The provider data and picture of image `n` picked from `parent`."""
    data: dict[str, Any]
    if is_single(parent):
        # Already one image: the pick just re-addresses it.
        image_no = parent.provider_data.get("image_no", 0)
        data = {
            "job_id": _require_upstream(parent, ref_is_upstream=ref_is_upstream, label=label),
            "image_no": image_no if isinstance(image_no, int) else 0,
            "image_count": 1,
            "picked_from": parent.id,
        }
        crop = parent.provider_data.get("crop_tile")
        if isinstance(crop, int):
            data["crop_tile"] = crop
        result_url = parent.result_url
    else:
        count = image_count_of(parent)
        if not 1 <= n <= min(4, count):
            raise InvalidRequestError(f"Image {n} does not exist: pick 1 to {count}.")
        data = {
            "job_id": _tile_upstream_id(parent, n, ref_is_upstream=ref_is_upstream, label=label),
            "image_no": n - 1,
            "image_count": 1,
            "picked_from": parent.id,
        }
        if parent.tiles and len(parent.tiles) >= n:
            result_url = parent.tiles[n - 1]
        else:
            result_url = parent.result_url
            data["crop_tile"] = n
        if not result_url:
            raise InvalidRequestError("That image has no picture to pick from yet.")
    return data, result_url


def replay_local(job: Job) -> ProviderSnapshot:
    """A local job read again (its ref carries '#'): it is what it was."""
    return ProviderSnapshot(
        ref=job.provider_ref or job.id,
        status=JobStatus.COMPLETED,
        progress=100,
        result_url=job.result_url,
        tiles=job.tiles,
        actions=list(job.actions),
        seed=job.seed,
        data=dict(job.provider_data),
        raw_status="local",
    )


# --- actions ----------------------------------------------------------------------------------


def parse_allow_list(raw: Any) -> dict[str, list[int]] | None:
    """Legnext's `available_actions` ({name: [image numbers]}), normalised; None if absent."""
    if not isinstance(raw, dict):
        return None
    allow: dict[str, list[int]] = {}
    for key, value in raw.items():
        name = str(key).strip().lower()
        if not name:
            continue
        if isinstance(value, list):
            allow[name] = sorted(
                {int(v) for v in value if isinstance(v, int) and not isinstance(v, bool)}
                | {int(v) for v in value if isinstance(v, str) and v.strip().isdigit()}
            )
        elif value is True:
            allow[name] = [0, 1, 2, 3]
        elif value in (False, None):
            allow[name] = []
    return allow


def _allowed(allow: dict[str, list[int]] | None, action: str, image_no: int) -> bool:
    if not allow:
        return True
    family = family_of(action)
    if family is None or family not in allow:
        return True
    if family == "reroll":  # not per image: any listed number allows it
        return bool(allow[family])
    return image_no in allow[family]


def _is_draft(op: Operation | None) -> bool:
    """A draft's images: the prompt says --draft, and they are not an Enhance's result
    (which carries the draft's prompt on but is rendered in full)."""
    if op is None or op.kind is OperationKind.ENHANCE:
        return False
    return bool(_DRAFT_FLAG.search(op.prompt or ""))


def synthesize_actions(
    *,
    op: Operation | None,
    image_count: int,
    capabilities: Capabilities,
    allow: dict[str, list[int]] | None = None,
    image_no: int = 0,
    picked: bool = False,
) -> list[Action]:
    """The follow-ups a finished job offers, in the neutral vocabulary of bot.actions."""
    kind = op.kind if op is not None else OperationKind.IMAGINE
    if kind in (OperationKind.DESCRIBE, OperationKind.SEED) or image_count <= 0:
        return []
    caps = capabilities.operations
    names: list[tuple[str, int]] = []
    if image_count >= 2:
        tiles = range(1, min(4, image_count) + 1)
        names += [(f"pick:{n}", n - 1) for n in tiles]
        if OperationKind.VARIATION in caps:
            names += [(f"vary_grid:{n}", n - 1) for n in tiles]
        if OperationKind.REROLL in caps:
            names.append(("reroll", 0))
        if OperationKind.EDIT in caps:
            names += [(f"edit:{n}", n - 1) for n in tiles]
        if OperationKind.ENHANCE in caps and _is_draft(op):
            # A draft grid: Enhance per image, as Midjourney offers it (issue 19).
            names += [(f"enhance:{n}", n - 1) for n in tiles]
    else:
        single: list[str] = []
        if picked and OperationKind.UPSCALE in caps:
            single += ["upscale_subtle", "upscale_creative"]
        if OperationKind.VARIATION in caps:
            single += ["vary_subtle", "vary_strong"]
        if OperationKind.INPAINT in caps:
            single.append("vary_region")
        if OperationKind.OUTPAINT in caps:
            single += ["zoom_out_2x", "zoom_out_1_5x", "zoom_custom"]
        if OperationKind.PAN in caps:
            single += ["pan_left", "pan_right", "pan_up", "pan_down"]
        if OperationKind.EDIT in caps:
            single.append("edit")
        prompt = op.prompt if op is not None else None
        if OperationKind.ENHANCE in caps and prompt and _DRAFT_FLAG.search(prompt):
            single.append("enhance")
        if OperationKind.VIDEO in caps:
            single += [a.name for a in animate_actions()]
        names += [(name, image_no) for name in single]
    return [Action(name, raw=name, images=None) for name, n in names if _allowed(allow, name, n)]


# --- errors -----------------------------------------------------------------------------------


def has_moderation_words(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in _MODERATION_WORDS)


def has_credit_words(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in _CREDIT_WORDS)


def excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?", "…")) else text + "."


def failure_from_text(label: str, text: str, code: Any = None) -> JobError:
    """A failed job's error from the provider's words (no documented code to go by)."""
    text = excerpt(text) if text else ""
    provider_text = text or None
    if code not in (None, 0, "", "0") and text:
        provider_text = f"{text} (code {code})"
    elif code not in (None, 0, "", "0"):
        provider_text = f"code {code}"
    if text and has_moderation_words(text):
        return JobError(
            ErrorCode.MODERATED,
            f"{label} refused the prompt or image (moderation).",
            provider_text,
        )
    if text and has_credit_words(text):
        return JobError(
            ErrorCode.INSUFFICIENT_CREDIT, InsufficientCreditError.default_message, provider_text
        )
    if text:
        return JobError(
            ErrorCode.GENERATION_FAILED,
            sentence(f"{label} could not make this image: {text}"),
            provider_text,
        )
    return JobError(
        ErrorCode.GENERATION_FAILED, f"{label} reported the job as failed.", provider_text
    )


def body_message(body: Any) -> str:
    """The human part of an error body: message, raw_message, error (str or object)."""
    if isinstance(body, str):
        return body
    if not isinstance(body, dict):
        return ""
    for key in ("message", "error_message", "raw_message", "msg", "detail"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    err = body.get("error")
    if isinstance(err, (str, dict)):
        return body_message(err)
    return ""


def classify_common(label: str, status: int, body: Any, text: str) -> ProviderError | None:
    """HTTP errors both backends signal alike (piapi.classify_http_error's rules). 401,
    404, 429 and 5xx are left to ProviderHTTP's generic mapping."""
    if 200 <= status < 300:
        return None
    message = body_message(body) or (excerpt(text) if text and body is None else "")
    provider_text = excerpt(message) if message else None
    if status in (402, 403):
        if has_credit_words(message) or status == 402:
            return InsufficientCreditError(provider_text=provider_text, http_status=status)
        return AuthError(provider_text=provider_text, http_status=status)
    if status in (400, 422):
        if message and has_moderation_words(message):
            return ModeratedError(provider_text=provider_text, http_status=status)
        if message and has_credit_words(message):
            return InsufficientCreditError(provider_text=provider_text, http_status=status)
        human = (
            sentence(f"{label} rejected the request: {excerpt(message, 200)}")
            if message
            else f"{label} rejected the request as invalid."
        )
        return InvalidRequestError(human, provider_text=provider_text, http_status=status)
    return None


# --- parsing helpers --------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def log_unknown_status(label: str, raw_status: str) -> None:
    """Logged once per (backend, status): the job is treated as still running."""
    log.warning("%s reported an unknown status %.40r; treating it as running", label, raw_status)


def as_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(float(str(value).strip().rstrip("%")))
    except ValueError:
        return None


def as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip().rstrip("%"))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def as_decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def clamp_progress(value: int | None) -> int | None:
    return None if value is None else max(0, min(100, value))


_NUMBERED = re.compile(r"(?:^|\n)\s*(?:[1-9]\ufe0f?\u20e3|[1-9][.)])\s*")


def split_prompts(text: Any) -> list[str] | None:
    """Describe's suggestions from one text: numbered (1️⃣, "1.") or one per line."""
    if not isinstance(text, str) or not text.strip():
        return None
    parts = _NUMBERED.split(text) if _NUMBERED.search(text) else text.split("\n")
    prompts = [" ".join(p.split()) for p in parts if p.strip()]
    return prompts or None


# --- the shared provider ----------------------------------------------------------------------


class LegnextFamilyProvider:
    """Submit/fetch logic shared by LegnextProvider and VtrixProvider.

    A subclass sets `name`, `label`, `ref_is_upstream`, `capabilities`, `http` and
    implements `_create` (send one UpstreamRequest) and `_read` (read one job by ref).
    """

    name: str = ""
    label: str = ""
    ref_is_upstream: bool = True
    capabilities: Capabilities
    http: ProviderHTTP
    # Push mode: where the backend posts the job on changes (the `callback` parameter).
    callback: str | None = None

    async def submit(
        self, operation: Operation, *, job: Job, parent: Job | None
    ) -> ProviderSnapshot:
        if not self.capabilities.supports(operation.kind):
            raise UnsupportedOperationError(f"{self.label} cannot do {operation.kind.value}.")
        local = local_result(
            operation,
            parent,
            capabilities=self.capabilities,
            ref_is_upstream=self.ref_is_upstream,
            label=self.label,
        )
        if local is not None:
            return local
        request = self.build_request(operation, parent=parent)
        if self.callback:
            request = UpstreamRequest(request.op, {**request.params, "callback": self.callback})
        snap = await self._create(request, operation)
        if operation.kind.is_video and (source := video_source(operation, parent)):
            # Shown while it works (Legnext sends no video preview), and its cover after.
            snap.data["video_source"] = source
            snap.preview_url = snap.preview_url or source
        return snap

    def build_request(self, operation: Operation, *, parent: Job | None) -> UpstreamRequest:
        if not self.capabilities.supports(operation.kind):
            raise UnsupportedOperationError(f"{self.label} cannot do {operation.kind.value}.")
        return build_request(
            operation, parent, ref_is_upstream=self.ref_is_upstream, label=self.label
        )

    async def fetch(self, job: Job) -> ProviderSnapshot:
        if not job.provider_ref:
            raise NotFoundError(f"The job has no {self.label} id.")
        if "#" in job.provider_ref:
            return replay_local(job)
        return await self._read(job.provider_ref, job)

    async def cancel(self, job: Job) -> None:
        raise UnsupportedOperationError(f"{self.label} cannot cancel a job once it is sent.")

    async def account(self) -> AccountInfo:
        return AccountInfo()  # neither backend documents an account endpoint

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _create(self, request: UpstreamRequest, operation: Operation) -> ProviderSnapshot:
        raise NotImplementedError

    async def _read(self, ref: str, job: Job) -> ProviderSnapshot:
        raise NotImplementedError
