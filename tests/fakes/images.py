"""Deterministic PNGs for the fakes: grids, tiles, singles and in-progress previews.

Everything is derived from a seed string, so the same task always serves the same bytes
and a test can tell tiles apart (each tile has its own colour and `n` dots for tile `n`).
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import random

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

DEFAULT_GRID_SIZE = (512, 512)
DEFAULT_SINGLE_SIZE = (512, 512)

# Tile boxes as fractions of the grid: TL, TR, BL, BR (PiAPI's temporary_image_urls order).
_TILE_ORIGINS = ((0, 0), (1, 0), (0, 1), (1, 1))


def _digest(seed: str) -> bytes:
    return hashlib.sha256(seed.encode("utf-8")).digest()


def _colour(hue: float, light: float = 0.55, sat: float = 0.65) -> tuple[int, int, int]:
    r, g, b = colorsys.hls_to_rgb(hue % 1.0, light, sat)
    return int(r * 255), int(g * 255), int(b * 255)


def _tile_colours(seed: str) -> list[tuple[int, int, int]]:
    """Four clearly different colours: hues a quarter turn apart from a seeded start."""
    base = _digest(seed)[0] / 256
    return [_colour(base + i * 0.25) for i in range(4)]


def add_grain(png: bytes, seed: str, strength: float = 0.3) -> bytes:
    """Blend in deterministic noise so the PNG is as incompressible as a real render.

    Midjourney grids weigh megabytes; flat synthetic tiles compress to kilobytes, which
    would never exercise the bot's fitting to Discord's upload limit.
    """
    image = Image.open(io.BytesIO(png)).convert("RGB")
    rng = random.Random(seed)
    noise = Image.frombytes("RGB", image.size, rng.randbytes(image.width * image.height * 3))
    return _to_png(Image.blend(image, noise, strength))


def _to_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _paint_tile(
    draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], seed: bytes, colour: tuple, n: int
) -> None:
    """Fill one tile and draw shapes whose placement depends on the seed bytes."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    draw.rectangle(box, fill=colour)
    accent = tuple(255 - c for c in colour)
    # A seeded ellipse and rectangle so that two seeds with the same hue still differ.
    ex, ey = x0 + seed[1] % max(1, w // 2), y0 + seed[2] % max(1, h // 2)
    draw.ellipse((ex, ey, ex + w // 3, ey + h // 3), outline=accent, width=max(1, w // 64))
    rx, ry = x0 + seed[3] % max(1, w // 2), y0 + h // 2 + seed[4] % max(1, h // 3)
    draw.rectangle((rx, ry, rx + w // 4, ry + h // 6), fill=accent)
    draw.line((x0, y1 - 1, x1 - 1, y0 + seed[5] % max(1, h)), fill=(255, 255, 255), width=2)
    # n dots along the top edge: identifies the tile after cropping.
    r = max(2, min(w, h) // 24)
    for i in range(n):
        cx = x0 + r * 2 + i * r * 3
        draw.ellipse((cx - r, y0 + r, cx + r, y0 + 3 * r), fill=(255, 255, 255))


def grid_png(seed: str, size: tuple[int, int] = DEFAULT_GRID_SIZE) -> bytes:
    """A 2x2 grid of four distinctly coloured tiles separated by a thin dark gap."""
    width, height = size
    image = Image.new("RGB", size, (16, 16, 16))
    draw = ImageDraw.Draw(image)
    gap = max(2, min(width, height) // 128)
    half_w, half_h = width // 2, height // 2
    colours = _tile_colours(seed)
    for n, (cx, cy) in enumerate(_TILE_ORIGINS, start=1):
        box = (
            cx * half_w + gap // 2,
            cy * half_h + gap // 2,
            (cx + 1) * half_w - gap // 2 - 1,
            (cy + 1) * half_h - gap // 2 - 1,
        )
        _paint_tile(draw, box, _digest(f"{seed}/{n}"), colours[n - 1], n)
    return _to_png(image)


def single_png(seed: str, size: tuple[int, int] = DEFAULT_SINGLE_SIZE) -> bytes:
    """One full-size image (an upscale) in the seed's colour."""
    image = Image.new("RGB", size, (16, 16, 16))
    draw = ImageDraw.Draw(image)
    colour = _tile_colours(seed)[0]
    _paint_tile(draw, (0, 0, size[0] - 1, size[1] - 1), _digest(f"{seed}/single"), colour, 1)
    return _to_png(image)


def preview_png(
    seed: str, step: int, size: tuple[int, int] = DEFAULT_GRID_SIZE, *, single: bool = False
) -> bytes:
    """An in-progress preview: the final image blurred and darkened, less so at later steps."""
    final = single_png(seed, size) if single else grid_png(seed, size)
    image = Image.open(io.BytesIO(final)).convert("RGB")
    step = max(1, step)
    image = image.filter(ImageFilter.GaussianBlur(radius=max(1.0, 16.0 / step)))
    image = ImageEnhance.Brightness(image).enhance(min(0.9, 0.3 + 0.15 * step))
    return _to_png(image)


def crop_tile(grid_bytes: bytes, n: int) -> bytes:
    """Tile `n` (1..4 = TL, TR, BL, BR) of a grid, as PNG."""
    if n not in (1, 2, 3, 4):
        raise ValueError(f"tile index must be 1..4, got {n}")
    image = Image.open(io.BytesIO(grid_bytes)).convert("RGB")
    half_w, half_h = image.width // 2, image.height // 2
    cx, cy = _TILE_ORIGINS[n - 1]
    return _to_png(image.crop((cx * half_w, cy * half_h, (cx + 1) * half_w, (cy + 1) * half_h)))


def resize_png(png: bytes, size: tuple[int, int]) -> bytes:
    """Scale a PNG to `size` (used to make an upscale from a grid tile)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return _to_png(image.resize(size, Image.Resampling.LANCZOS))
