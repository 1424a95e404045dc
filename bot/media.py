"""Safe image handling: downloading user-supplied links, validating, fitting and masks.

Everything here treats its input as hostile. Downloads refuse non-public addresses
(checked on every redirect hop, and the connection is pinned to the address that was
checked, so DNS cannot change its answer in between), are bounded in size and time, and
image bytes are judged by their content, never by a claimed type or file name.

The Pillow functions are synchronous and CPU-bound; async callers run them with
`asyncio.to_thread`. Every failure a user can cause raises `MediaError`, whose `message`
is safe to show (at most a host name, never a full URL: query strings can carry tokens).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx
from PIL import Image, ImageDraw, ImageOps

__all__ = [
    "PRESETS",
    "FetchPolicy",
    "FittedImage",
    "ImageInfo",
    "ImageLoader",
    "MediaError",
    "Resolver",
    "TooLargeError",
    "compose_grid",
    "crop_tile",
    "fetch_image",
    "fetch_video",
    "fit_to_limit",
    "inspect_image",
    "is_mp4",
    "mask_from_preset",
    "normalise_mask",
    "origin_of",
    "png_base64",
    "resolve_host",
]

MIB = 1024 * 1024
# Something that downloads an image by URL (for providers that want bytes, not links).
ImageLoader = Callable[[str], Awaitable[bytes]]
DEFAULT_MAX_PIXELS = 40_000_000


class MediaError(Exception):
    """A problem with a user's image or link; `message` is fit to show to that user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------- download

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""(host, port) -> IP address strings. Injectable so tests never need real DNS."""

_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int = 25 * MIB
    timeout_s: float = 30.0
    # Entries match the host itself and its subdomains; None accepts any public host.
    allowed_hosts: frozenset[str] | None = None
    # Only for tests against 127.0.0.1: lifts the public-address requirement entirely.
    allow_private: bool = False
    max_redirects: int = 3
    # (scheme, host, port) origins fetched even at a private address: the configured
    # provider's own (a self-hosted midjourney-proxy on the owner's network serves its
    # images itself). Every other origin, and every redirect hop elsewhere, keeps the rule.
    private_origins: frozenset[tuple[str, str, int]] = frozenset()


def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, the port made explicit; None for others."""
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return None
    return _origin(parsed)


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    port = url.port or (443 if url.scheme == "https" else 80)
    return (url.scheme, url.host.lower().rstrip("."), port)


async def resolve_host(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for `host`, in its order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one tunnels to (mapped, 6to4, Teredo, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in ipaddress.IPv6Network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None and not _is_public(inner):
            return False
    # is_global alone lets multicast through, so every category is checked explicitly.
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def _host_allowed(host: str, allowed: frozenset[str]) -> bool:
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower().strip(".")
        if host == entry or host.endswith("." + entry):
            return True
    return False


def _format_mib(n: int) -> str:
    if n >= MIB:
        return f"{n / MIB:.3g} MB"
    return f"{n / 1024:.0f} KB" if n >= 1024 else f"{n} bytes"


@dataclass(frozen=True)
class _Target:
    """One checked hop: the URL as given, and the pinned request to actually send."""

    url: httpx.URL
    host: str
    request_url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, str]


async def _check_target(url: httpx.URL, policy: FetchPolicy, resolve: Resolver) -> _Target:
    if url.scheme not in ("http", "https"):
        raise MediaError("Only http:// and https:// image links are supported.")
    host = url.host
    if not host:
        raise MediaError("That link is not a valid image address.")
    if url.userinfo:
        raise MediaError("Image links with a user name or password are not supported.")
    if policy.allowed_hosts is not None and not _host_allowed(host, policy.allowed_hosts):
        raise MediaError(f"Images from {host} are not accepted here.")

    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = list(await resolve(host, port))
        except (OSError, UnicodeError) as exc:
            raise MediaError(f"Could not find the image host {host}.") from exc
    if not addresses:
        raise MediaError(f"Could not find the image host {host}.")

    parsed = []
    for address in addresses:
        try:
            parsed.append(ipaddress.ip_address(address))
        except ValueError as exc:
            raise MediaError(f"Could not find the image host {host}.") from exc
    # One non-public answer is enough to refuse: mixed answers are how rebinding starts.
    private_ok = policy.allow_private or _origin(url) in policy.private_origins
    if not private_ok and not all(_is_public(ip) for ip in parsed):
        raise MediaError(f"{host} is a private or local network address; it cannot be fetched.")

    headers = {
        "Accept": "image/png, image/jpeg, image/webp, image/gif, image/*;q=0.8",
        # Count the bytes that really arrive; a compressed body could expand enormously.
        "Accept-Encoding": "identity",
    }
    extensions: dict[str, str] = {}
    request_url = url
    if literal is None:
        # Connect to the address we checked, not whatever a second lookup returns;
        # Host and SNI keep virtual hosting and certificate checks working.
        request_url = url.copy_with(host=str(parsed[0]))
        headers["Host"] = url.netloc.decode("ascii")
        if url.scheme == "https":
            extensions["sni_hostname"] = host
    return _Target(url, host, request_url, headers, extensions)


async def fetch_image(
    url: str,
    *,
    client: httpx.AsyncClient,
    policy: FetchPolicy,
    resolve: Resolver | None = None,
) -> bytes:
    """Download `url` within `policy`; returns the raw body (validate it with inspect_image)."""
    return await _fetch(url, client=client, policy=policy, resolve=resolve)


async def fetch_video(
    url: str,
    *,
    client: httpx.AsyncClient,
    policy: FetchPolicy,
    max_bytes: int,
    resolve: Resolver | None = None,
) -> bytes:
    """Download a provider's MP4 under the same guard as images (public hosts, pinned
    addresses, checked redirects, timeout) and at most `max_bytes` (the upload room, so a
    video that cannot be uploaded is never downloaded whole). Raises TooLargeError when it
    is bigger, MediaError when it is no MP4."""
    data = await _fetch(
        url,
        client=client,
        policy=dataclasses.replace(policy, max_bytes=max_bytes),
        resolve=resolve,
        accept=_VIDEO_ACCEPT,
        noun="video",
    )
    if not is_mp4(data):
        raise MediaError("The video service sent something that is not an MP4 video.")
    return data


def is_mp4(data: bytes) -> bool:
    """An ISO BMFF file (MP4): its first box is `ftyp`."""
    return len(data) >= 12 and data[4:8] == b"ftyp"


class TooLargeError(MediaError):
    """The download is bigger than it may be (the caller may link it instead)."""


_IMAGE_ACCEPT = "image/png, image/jpeg, image/webp, image/gif, image/*;q=0.8"
_VIDEO_ACCEPT = "video/mp4, video/*;q=0.8"


async def _fetch(
    url: str,
    *,
    client: httpx.AsyncClient,
    policy: FetchPolicy,
    resolve: Resolver | None,
    accept: str = _IMAGE_ACCEPT,
    noun: str = "image",
) -> bytes:
    try:
        current = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise MediaError(f"That link is not a valid {noun} address.") from exc
    resolver = resolve or resolve_host
    host = current.host or f"the {noun} host"
    try:
        async with asyncio.timeout(policy.timeout_s):
            for _hop in range(policy.max_redirects + 1):
                target = await _check_target(current, policy, resolver)
                target.headers["Accept"] = accept
                host = target.host
                async with client.stream(
                    "GET",
                    target.request_url,
                    headers=target.headers,
                    extensions=target.extensions,
                    follow_redirects=False,
                    timeout=policy.timeout_s,
                ) as response:
                    if response.status_code in _REDIRECT_CODES:
                        location = response.headers.get("location")
                        if not location:
                            raise MediaError(f"{host} sent a redirect without a destination.")
                        current = target.url.join(location)
                        continue
                    return await _read_body(response, host, policy.max_bytes, noun)
            raise MediaError(f"The {noun} link at {host} redirected too many times.")
    except TimeoutError as exc:
        raise MediaError(f"{host} took too long to send the {noun}.") from exc
    except httpx.TimeoutException as exc:
        raise MediaError(f"{host} took too long to send the {noun}.") from exc
    except httpx.InvalidURL as exc:
        raise MediaError(f"That link is not a valid {noun} address.") from exc
    except httpx.HTTPError as exc:
        raise MediaError(f"Could not download the {noun} from {host}.") from exc


async def _read_body(
    response: httpx.Response, host: str, max_bytes: int, noun: str = "image"
) -> bytes:
    if not 200 <= response.status_code < 300:
        raise MediaError(f"{host} answered HTTP {response.status_code} for that {noun}.")
    too_big = TooLargeError(f"That {noun} is larger than the {_format_mib(max_bytes)} limit.")
    declared = response.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise too_big  # refuse before reading a single body byte
    body = bytearray()
    async for chunk in response.aiter_bytes(_CHUNK):
        body += chunk
        if len(body) > max_bytes:
            raise too_big  # leaving the stream context closes the connection
    return bytes(body)


# --------------------------------------------------------------------------- inspection

_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
_EXTENSION = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif"}


@dataclass(frozen=True)
class ImageInfo:
    format: str  # "PNG" | "JPEG" | "WEBP" | "GIF"
    width: int
    height: int
    mime: str


def _sniff_format(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


# What Pillow raises on damaged data varies by codec; all of it means "damaged".
_DAMAGED = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError)


def _open_checked(data: bytes, max_pixels: int) -> tuple[Image.Image, str]:
    """Open, size-check, verify and fully decode `data`; returns the loaded image."""
    fmt, _, _ = _verified(data, max_pixels)
    try:
        # verify() leaves the image unusable, so decode from a fresh handle.
        image = Image.open(io.BytesIO(data), formats=[fmt])
        image.load()
    except _DAMAGED as exc:
        raise MediaError("That image is damaged and cannot be read.") from exc
    return image, fmt


def _verified(data: bytes, max_pixels: int) -> tuple[str, int, int]:
    """Sniff, size-check and verify `data` without decoding its pixels: (format, w, h)."""
    fmt = _sniff_format(data)
    if fmt is None:
        raise MediaError("That file is not an image (PNG, JPEG, WEBP or GIF expected).")
    try:
        # formats=[fmt] stops Pillow from falling back to some other decoder.
        with Image.open(io.BytesIO(data), formats=[fmt]) as probe:
            width, height = probe.size
            if width * height > max_pixels:
                raise MediaError(
                    f"That image is too large ({width}×{height} = "
                    f"{width * height:,} pixels; at most {max_pixels:,})."
                )
            probe.verify()
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError(f"That image is too large (more than {max_pixels:,} pixels).") from exc
    except _DAMAGED as exc:
        raise MediaError("That image is damaged and cannot be read.") from exc
    return fmt, width, height


def inspect_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Check that `data` is a whole, sane PNG/JPEG/WEBP/GIF and describe it."""
    image, fmt = _open_checked(data, max_pixels)
    with image:
        return ImageInfo(fmt, image.width, image.height, _MIME[fmt])


# --------------------------------------------------------------------------- fitting


@dataclass(frozen=True)
class FittedImage:
    data: bytes
    filename: str
    mime: str
    width: int
    height: int
    reencoded: bool


_SCALE_STEP = 0.85
# Give up once the longer side would drop below this: nothing recognisable is left.
_MIN_LONG_SIDE = 32
_QUALITIES = (90, 80, 70, 60)


def _safe_stem(stem: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")[:64]
    return cleaned or "image"


def _has_alpha(image: Image.Image) -> bool:
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return True
    return image.mode == "P" and "transparency" in image.info


def _encode(image: Image.Image, fmt: str, quality: int | None = None) -> bytes:
    buf = io.BytesIO()
    if fmt == "PNG":
        image.save(buf, format="PNG", optimize=True)
    elif fmt == "JPEG":
        image.save(buf, format="JPEG", quality=quality, optimize=True)
    else:
        # method=4 is Pillow's default speed/size balance; fixed for determinism. Alpha is
        # lossless by default, which alone can overrun a small limit.
        image.save(buf, format="WEBP", quality=quality, alpha_quality=quality, method=4)
    return buf.getvalue()


def fit_to_limit(data: bytes, limit_bytes: int, *, filename_stem: str) -> FittedImage:
    """Return `data` as an image of at most `limit_bytes` (Discord's upload limit).

    Unchanged when it already fits; otherwise re-encoded (optimised PNG if it was a PNG,
    then JPEG for opaque images or WEBP for transparent ones, quality 90→60) and then
    downscaled step by step. Deterministic: the same input gives the same bytes.
    """
    stem = _safe_stem(filename_stem)
    if len(data) <= limit_bytes and _sniff_format(data) == "PNG":
        # Passed on as it is, so the pixels need not be decoded: PNG's verify() already
        # reads every chunk to the end and checks its CRC, which catches truncation and
        # corruption, in a tenth of the time (1024 px noise PNG: 1.8 ms against 20 ms).
        fmt, width, height = _verified(data, DEFAULT_MAX_PIXELS)
        return FittedImage(data, f"{stem}.png", _MIME[fmt], width, height, False)
    image, fmt = _open_checked(data, DEFAULT_MAX_PIXELS)
    with image:
        if len(data) <= limit_bytes:
            return FittedImage(
                data, f"{stem}.{_EXTENSION[fmt]}", _MIME[fmt], image.width, image.height, False
            )
        if limit_bytes <= 0:
            raise MediaError("The upload limit is too small for any image.")
        # The re-encode drops EXIF, so bake the orientation in or it would show rotated.
        source = ImageOps.exif_transpose(image)

    source, alpha = _normalised_mode(source)
    lossy = "WEBP" if alpha else "JPEG"

    def attempt(candidate: Image.Image, out_fmt: str, quality: int | None) -> FittedImage | None:
        encoded = _encode(candidate, out_fmt, quality)
        if len(encoded) > limit_bytes:
            return None
        name = f"{stem}.{_EXTENSION[out_fmt]}"
        return FittedImage(encoded, name, _MIME[out_fmt], candidate.width, candidate.height, True)

    if fmt == "PNG":
        fitted = attempt(source, "PNG", None)
        if fitted is not None:
            return fitted
    for quality in _QUALITIES:
        fitted = attempt(source, lossy, quality)
        if fitted is not None:
            return fitted

    return _downscaled_to_fit(source, lossy, limit_bytes, stem)


def _normalised_mode(source: Image.Image) -> tuple[Image.Image, bool]:
    """`source` in a mode the encoders take ("RGBA" only when it really has transparency,
    else "RGB" or "L"), and whether it has transparency."""
    alpha = _has_alpha(source)
    if alpha:
        source = source.convert("RGBA")
        # Fully opaque "RGBA" is common (screenshots); it can go to JPEG like any photo.
        low, _ = source.getchannel("A").getextrema()
        if low == 255:
            source, alpha = source.convert("RGB"), False
    elif source.mode not in ("RGB", "L"):
        source = source.convert("RGB")
    return source, alpha


def _downscaled_to_fit(source: Image.Image, lossy: str, limit_bytes: int, stem: str) -> FittedImage:
    """`source` shrunk step by step and encoded as `lossy` at the lowest quality until it
    fits `limit_bytes`; MediaError once it would get too small to be worth showing."""
    # Downscale at the lowest quality. The step follows how far off we are (bytes scale
    # with area), but is at least _SCALE_STEP so each round makes real progress.
    last_size = len(_encode(source, lossy, _QUALITIES[-1]))
    scale = 1.0
    while True:
        ratio = (limit_bytes / last_size) ** 0.5 * 0.95
        scale *= min(_SCALE_STEP, ratio)
        size = (round(source.width * scale), round(source.height * scale))
        if max(size) < _MIN_LONG_SIDE or min(size) < 1:
            raise MediaError(
                f"That image cannot be made to fit the {_format_mib(limit_bytes)} upload limit."
            )
        smaller = source.resize(size, Image.Resampling.LANCZOS)
        encoded = _encode(smaller, lossy, _QUALITIES[-1])
        if len(encoded) <= limit_bytes:
            name = f"{stem}.{_EXTENSION[lossy]}"
            return FittedImage(encoded, name, _MIME[lossy], smaller.width, smaller.height, True)
        last_size = len(encoded)


# --------------------------------------------------------------------------- tiles


def _to_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def crop_tile(data: bytes, index: int) -> bytes:
    """Tile `index` (1 TL, 2 TR, 3 BL, 4 BR) of a 2×2 grid image, as PNG."""
    if index not in (1, 2, 3, 4):
        raise ValueError(f"tile index must be 1-4, not {index!r}")
    image, _ = _open_checked(data, DEFAULT_MAX_PIXELS)
    with image:
        if image.mode not in ("RGB", "RGBA", "L", "LA"):
            image = image.convert("RGBA" if _has_alpha(image) else "RGB")
        mid_x, mid_y = image.width // 2, image.height // 2
        column, row = (index - 1) % 2, (index - 1) // 2
        box = (
            mid_x if column else 0,
            mid_y if row else 0,
            image.width if column else mid_x,
            image.height if row else mid_y,
        )
        return _to_png(image.crop(box))


def compose_grid(tiles: Sequence[bytes]) -> bytes:
    """Four images as one 2×2 grid PNG (TL, TR, BL, BR), each cell the size of the largest."""
    if len(tiles) != 4:
        raise MediaError(f"a grid needs 4 images, not {len(tiles)}")
    opened = [_open_checked(data, DEFAULT_MAX_PIXELS)[0] for data in tiles]
    try:
        cell_w = max(i.width for i in opened)
        cell_h = max(i.height for i in opened)
        grid = Image.new("RGB", (cell_w * 2, cell_h * 2), (0, 0, 0))
        for n, image in enumerate(opened):
            cell = image.convert("RGB")
            if cell.size != (cell_w, cell_h):
                cell = cell.resize((cell_w, cell_h))
            grid.paste(cell, ((n % 2) * cell_w, (n // 2) * cell_h))
        return _to_png(grid)
    finally:
        for image in opened:
            image.close()


# --------------------------------------------------------------------------- masks

PRESETS: tuple[str, ...] = (
    "center",
    "left_half",
    "right_half",
    "top_half",
    "bottom_half",
    "background",
    "subject",
)

# The subject ellipse leaves this fraction of each side outside it.
_SUBJECT_INSET = 0.2


def mask_from_preset(width: int, height: int, preset: str) -> bytes:
    """A black-and-white PNG mask (mode L, white = repaint) the size of the source image."""
    if preset not in PRESETS:
        raise ValueError(f"unknown mask preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    if width <= 0 or height <= 0:
        raise ValueError(f"mask size must be positive, not {width}×{height}")
    background = 255 if preset == "background" else 0
    mask = Image.new("L", (width, height), background)
    mid_x, mid_y = width // 2, height // 2
    # Boxes are (left, top, right, bottom) with right/bottom exclusive, as in Image.paste.
    boxes = {
        "center": (width // 4, height // 4, width * 3 // 4, height * 3 // 4),
        "left_half": (0, 0, mid_x, height),
        "right_half": (mid_x, 0, width, height),
        "top_half": (0, 0, width, mid_y),
        "bottom_half": (0, mid_y, width, height),
    }
    if preset in boxes:
        left, top, right, bottom = boxes[preset]
        if right > left and bottom > top:  # a 1-pixel image has no left half
            mask.paste(255, (left, top, right, bottom))
    else:  # subject / background: a centred ellipse, white or black
        draw = ImageDraw.Draw(mask)
        # ImageDraw boxes are inclusive, hence the -1 on the far edges.
        box = (
            round(width * _SUBJECT_INSET),
            round(height * _SUBJECT_INSET),
            round(width * (1 - _SUBJECT_INSET)) - 1,
            round(height * (1 - _SUBJECT_INSET)) - 1,
        )
        draw.ellipse(box, fill=255 - background)
    return _to_png(mask)


def normalise_mask(data: bytes, width: int, height: int) -> bytes:
    """An uploaded mask as the provider wants it: pure black/white L PNG of the source size."""
    image, _ = _open_checked(data, DEFAULT_MAX_PIXELS)
    with image:
        if _has_alpha(image):
            # Painted strokes on a transparent layer: transparent means "keep" (black).
            rgba = image.convert("RGBA")
            flat = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
            flat.alpha_composite(rgba)
            grey = flat.convert("L")
        else:
            grey = image.convert("L")
    binary = grey.point(lambda v: 255 if v >= 128 else 0)
    if binary.size != (width, height):
        binary = binary.resize((width, height), Image.Resampling.NEAREST)
    if binary.getextrema()[1] == 0:
        raise MediaError(
            "That mask is all black, so there is nothing to repaint. "
            "Paint the area to change in white."
        )
    return _to_png(binary)


def png_base64(data: bytes) -> str:
    """Plain base64 of PNG bytes, without a `data:` prefix (PiAPI's inpaint mask format)."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("png_base64 expects PNG bytes")
    return base64.b64encode(data).decode("ascii")
