"""bot.media's Pillow side: validation, fitting to an upload limit, tiles and masks.

Every image is made here with Pillow (or crafted byte by byte where Pillow would refuse
to make it), so each test states exactly what it feeds in.
"""

from __future__ import annotations

import base64
import io
import random
import struct
import tracemalloc
import zlib

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from bot.media import (
    PRESETS,
    FetchPolicy,
    MediaError,
    _check_target,
    compose_grid,
    crop_tile,
    fit_to_limit,
    inspect_image,
    mask_from_preset,
    normalise_mask,
    origin_of,
    png_base64,
)

# ----------------------------------------------------------------------------- helpers


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def noise(width: int, height: int, mode: str = "RGB", seed: int = 1) -> Image.Image:
    """Incompressible pixels: the worst case for any encoder."""
    bands = len(mode)
    return Image.frombytes(
        mode, (width, height), random.Random(seed).randbytes(width * height * bands)
    )


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def crafted_png(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG header declaring a huge 1-bit greyscale image."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


QUADRANT_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]


def grid(width: int, height: int) -> bytes:
    """A 2×2 grid, each quadrant one flat colour (TL red, TR green, BL blue, BR yellow)."""
    image = Image.new("RGB", (width, height))
    mid_x, mid_y = width // 2, height // 2
    boxes = [
        (0, 0, mid_x, mid_y),
        (mid_x, 0, width, mid_y),
        (0, mid_y, mid_x, height),
        (mid_x, mid_y, width, height),
    ]
    for box, colour in zip(boxes, QUADRANT_COLOURS, strict=True):
        image.paste(colour, box)
    return encode(image)


# ----------------------------------------------------------------------------- inspect_image


@pytest.mark.parametrize(
    ("fmt", "mime", "mode"),
    [
        ("PNG", "image/png", "RGBA"),
        ("JPEG", "image/jpeg", "RGB"),
        ("WEBP", "image/webp", "RGB"),
        ("GIF", "image/gif", "P"),
    ],
)
def test_inspect_accepts_each_supported_format(fmt: str, mime: str, mode: str) -> None:
    data = encode(Image.new(mode, (37, 21)), fmt)
    info = inspect_image(data)
    assert (info.format, info.width, info.height, info.mime) == (fmt, 37, 21, mime)


def test_inspect_judges_by_content_not_by_name() -> None:
    # A "photo.png" that is really text.
    with pytest.raises(MediaError, match="not an image"):
        inspect_image(b"hello, I am definitely a PNG\n" * 10)
    with pytest.raises(MediaError, match="not an image"):
        inspect_image(b"")
    # Other real image formats Pillow could read are still refused (only the four allowed).
    with pytest.raises(MediaError, match="not an image"):
        inspect_image(encode(Image.new("RGB", (8, 8)), "BMP"))


def test_png_header_followed_by_garbage_is_damaged() -> None:
    data = b"\x89PNG\r\n\x1a\n" + random.Random(7).randbytes(2000)
    with pytest.raises(MediaError, match="damaged"):
        inspect_image(data)


def test_png_with_corrupt_pixel_data_is_damaged() -> None:
    data = bytearray(encode(noise(64, 64)))
    idat = data.index(b"IDAT")
    data[idat + 40] ^= 0xFF  # flip bits inside the compressed pixels; CRC no longer matches
    with pytest.raises(MediaError, match="damaged"):
        inspect_image(bytes(data))


def test_truncated_jpeg_is_damaged() -> None:
    data = encode(noise(256, 256), "JPEG", quality=90)
    with pytest.raises(MediaError, match="damaged"):
        inspect_image(data[: len(data) // 2])


def test_decompression_bomb_is_refused_without_allocating() -> None:
    bomb = crafted_png(50_000, 50_000)  # 2.5 gigapixels declared in ~100 bytes
    assert len(bomb) < 200
    tracemalloc.start()
    try:
        with pytest.raises(MediaError, match="too large"):
            inspect_image(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 1024 * 1024


def test_image_over_our_pixel_budget_but_under_pillows_is_refused() -> None:
    # 48 Mpx: below Pillow's own bomb threshold (~89 Mpx), above our 40 Mpx default.
    with pytest.raises(MediaError, match=r"too large \(8000×6000"):
        inspect_image(crafted_png(8000, 6000))
    with pytest.raises(MediaError, match="too large"):
        inspect_image(encode(Image.new("RGB", (100, 100))), max_pixels=9_999)


# ----------------------------------------------------------------------------- fit_to_limit


def test_fit_returns_small_images_unchanged() -> None:
    png = encode(Image.new("RGB", (64, 48), (10, 20, 30)))
    fitted = fit_to_limit(png, 10_000, filename_stem="grid")
    assert fitted.data is png or fitted.data == png
    assert (fitted.filename, fitted.mime, fitted.reencoded) == ("grid.png", "image/png", False)
    assert (fitted.width, fitted.height) == (64, 48)

    jpeg = encode(noise(32, 32), "JPEG")
    fitted = fit_to_limit(jpeg, len(jpeg), filename_stem="x")
    assert (fitted.data, fitted.filename, fitted.mime) == (jpeg, "x.jpg", "image/jpeg")


def test_fit_refuses_non_images_even_when_small() -> None:
    with pytest.raises(MediaError, match="not an image"):
        fit_to_limit(b"<html>nope</html>", 10_000, filename_stem="x")


def test_fit_passes_a_fitting_png_on_only_if_it_is_whole() -> None:
    """A PNG that fits is not decoded, but verify() still reads it to the end: flipped
    bits (CRC), a cut-off file and an oversized one are refused as before."""
    png = encode(noise(64, 64))
    assert fit_to_limit(png, len(png), filename_stem="ok").data == png
    flipped = bytearray(png)
    flipped[flipped.index(b"IDAT") + 40] ^= 0xFF
    for damaged in (bytes(flipped), png[: len(png) // 2], png[:-12]):
        with pytest.raises(MediaError, match="damaged"):
            fit_to_limit(damaged, len(png), filename_stem="x")
    with pytest.raises(MediaError, match="too large"):
        fit_to_limit(crafted_png(8000, 6000), 10_000, filename_stem="x")


def test_fit_prefers_an_optimised_png_when_that_is_enough() -> None:
    # Stored without compression: big on disk, tiny once optimised; no need to lose quality.
    image = Image.new("RGB", (400, 400), (200, 100, 50))
    raw = encode(image, compress_level=0)
    assert len(raw) > 400_000
    fitted = fit_to_limit(raw, 100_000, filename_stem="flat")
    assert fitted.reencoded and fitted.mime == "image/png" and fitted.filename == "flat.png"
    assert len(fitted.data) <= 100_000
    assert (fitted.width, fitted.height) == (400, 400)
    assert decode(fitted.data).getpixel((10, 10)) == (200, 100, 50)


def test_fit_big_noisy_png_into_200kb() -> None:
    source = encode(noise(900, 700))
    assert len(source) > 1_500_000
    limit = 200_000
    fitted = fit_to_limit(source, limit, filename_stem="noisy")
    assert len(fitted.data) <= limit
    assert fitted.reencoded and fitted.mime == "image/jpeg" and fitted.filename == "noisy.jpg"
    info = inspect_image(fitted.data)
    assert (info.format, info.width, info.height) == ("JPEG", fitted.width, fitted.height)
    # Had to shrink, but kept the aspect ratio.
    assert fitted.width < 900
    assert fitted.width / fitted.height == pytest.approx(900 / 700, rel=0.02)


def test_fit_is_deterministic() -> None:
    source = encode(noise(300, 300, seed=3))
    first = fit_to_limit(source, 40_000, filename_stem="a")
    second = fit_to_limit(source, 40_000, filename_stem="a")
    assert first == second


def test_fit_keeps_transparency_as_webp() -> None:
    image = noise(400, 400, "RGBA", seed=5)
    source = encode(image)
    fitted = fit_to_limit(source, 150_000, filename_stem="cutout")
    assert len(fitted.data) <= 150_000
    assert fitted.mime == "image/webp" and fitted.filename == "cutout.webp"
    result = decode(fitted.data)
    assert result.mode == "RGBA"
    assert result.getchannel("A").getextrema()[0] < 255


def test_fit_treats_opaque_rgba_as_a_photo() -> None:
    image = noise(400, 400, seed=6).convert("RGBA")  # alpha channel, but all 255
    fitted = fit_to_limit(encode(image), 150_000, filename_stem="shot")
    assert fitted.mime == "image/jpeg" and len(fitted.data) <= 150_000


def test_fit_applies_exif_orientation_when_reencoding() -> None:
    image = noise(300, 150, seed=8)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    source = encode(image, "JPEG", quality=100, exif=exif.tobytes())
    fitted = fit_to_limit(source, len(source) - 1, filename_stem="phone")
    assert fitted.reencoded
    assert fitted.height > fitted.width  # upright now that the EXIF tag is gone


def test_fit_gives_up_cleanly_on_an_impossible_limit() -> None:
    source = encode(noise(200, 200))
    for limit in (100, 0, -5):
        with pytest.raises(MediaError, match=r"cannot be made to fit|too small"):
            fit_to_limit(source, limit, filename_stem="x")


def test_fit_sanitises_the_filename_stem() -> None:
    source = encode(noise(100, 100))
    fitted = fit_to_limit(source, 10_000, filename_stem="../../etc/pass wd?")
    assert fitted.filename == "etc_pass_wd.jpg"
    assert fit_to_limit(source, 10_000, filename_stem="///").filename == "image.jpg"


@settings(max_examples=25, deadline=None)
@given(
    width=st.integers(32, 400),
    height=st.integers(32, 400),
    limit=st.integers(5_000, 200_000),
    seed=st.integers(0, 1000),
    alpha=st.booleans(),
)
def test_fit_never_exceeds_the_limit(
    width: int, height: int, limit: int, seed: int, alpha: bool
) -> None:
    source = encode(noise(width, height, "RGBA" if alpha else "RGB", seed))
    fitted = fit_to_limit(source, limit, filename_stem="h")
    assert len(fitted.data) <= limit
    info = inspect_image(fitted.data)
    assert (info.width, info.height) == (fitted.width, fitted.height)
    assert fitted.width <= width and fitted.height <= height
    assert fitted.reencoded == (fitted.data != source)


# ----------------------------------------------------------------------------- crop_tile


@pytest.mark.parametrize("index", [1, 2, 3, 4])
def test_crop_tile_picks_the_right_quadrant(index: int) -> None:
    tile = decode(crop_tile(grid(200, 100), index))
    assert tile.format == "PNG"
    assert tile.size == (100, 50)
    colours = {colour for _, colour in tile.getcolors(maxcolors=16)}
    assert colours == {QUADRANT_COLOURS[index - 1]}


def test_crop_tile_covers_odd_sized_grids_exactly() -> None:
    sizes = [decode(crop_tile(grid(201, 101), i)).size for i in (1, 2, 3, 4)]
    assert sizes == [(100, 50), (101, 50), (100, 51), (101, 51)]


def test_crop_tile_validates_its_input() -> None:
    for bad in (0, 5, -1):
        with pytest.raises(ValueError, match="1-4"):
            crop_tile(grid(20, 20), bad)
    with pytest.raises(MediaError):
        crop_tile(b"not an image", 1)


# ----------------------------------------------------------------------------- masks

W, H = 120, 80

# (preset, a point that must be white, a point that must be black)
EXPECTED_POINTS = {
    "center": ((60, 40), (2, 2)),
    "left_half": ((10, 40), (110, 40)),
    "right_half": ((110, 40), (10, 40)),
    "top_half": ((60, 10), (60, 70)),
    "bottom_half": ((60, 70), (60, 10)),
    "subject": ((60, 40), (2, 2)),
    "background": ((2, 2), (60, 40)),
}


def test_every_preset_is_covered_here() -> None:
    assert set(EXPECTED_POINTS) == set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_mask_preset_shape(preset: str) -> None:
    mask = decode(mask_from_preset(W, H, preset))
    assert mask.format == "PNG" and mask.mode == "L" and mask.size == (W, H)
    assert {value for _, value in mask.getcolors()} == {0, 255}
    white, black = EXPECTED_POINTS[preset]
    assert mask.getpixel(white) == 255
    assert mask.getpixel(black) == 0


@pytest.mark.parametrize(
    ("a", "b"),
    [("left_half", "right_half"), ("top_half", "bottom_half"), ("subject", "background")],
)
@pytest.mark.parametrize("size", [(W, H), (7, 5), (1, 1)])
def test_opposite_presets_partition_the_image(a: str, b: str, size: tuple[int, int]) -> None:
    first = decode(mask_from_preset(*size, a)).tobytes()
    second = decode(mask_from_preset(*size, b)).tobytes()
    assert all(x ^ y == 255 for x, y in zip(first, second, strict=True))


def test_half_masks_are_exact_halves() -> None:
    left = decode(mask_from_preset(W, H, "left_half"))
    assert left.getcolors() is not None
    assert dict((v, n) for n, v in left.getcolors()) == {255: W * H // 2, 0: W * H // 2}


def test_unknown_preset_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="sky") as excinfo:
        mask_from_preset(W, H, "sky")
    for name in PRESETS:
        assert name in str(excinfo.value)
    with pytest.raises(ValueError):
        mask_from_preset(0, 10, "center")


def test_normalise_mask_thresholds_at_128_and_resizes() -> None:
    gradient = Image.new("L", (256, 4))
    gradient.putdata([x for _ in range(4) for x in range(256)])
    result = decode(normalise_mask(encode(gradient.convert("RGB"), "PNG"), 256, 4))
    assert result.mode == "L" and result.size == (256, 4)
    assert result.getpixel((127, 0)) == 0
    assert result.getpixel((128, 0)) == 255
    assert {value for _, value in result.getcolors()} == {0, 255}

    # A small drawn mask scaled up to the source size with hard (nearest) edges.
    small = Image.new("L", (10, 10), 0)
    small.paste(200, (0, 0, 5, 10))  # left half light grey
    big = decode(normalise_mask(encode(small, "JPEG", quality=95), 1000, 600))
    assert big.size == (1000, 600)
    assert {value for _, value in big.getcolors()} == {0, 255}
    assert big.getpixel((100, 300)) == 255 and big.getpixel((900, 300)) == 0


def test_normalise_mask_treats_transparency_as_keep() -> None:
    # White brush strokes on a transparent layer whose hidden colour is also white.
    layer = Image.new("RGBA", (20, 20), (255, 255, 255, 0))
    layer.paste((255, 255, 255, 255), (5, 5, 15, 15))
    result = decode(normalise_mask(encode(layer), 20, 20))
    assert result.getpixel((0, 0)) == 0
    assert result.getpixel((10, 10)) == 255


def test_normalise_mask_refuses_nothing_to_repaint() -> None:
    for shade in (0, 127):
        with pytest.raises(MediaError, match="all black"):
            normalise_mask(encode(Image.new("L", (32, 32), shade)), 64, 64)
    with pytest.raises(MediaError, match="not an image"):
        normalise_mask(b"GIF-ish? no", 64, 64)


def test_png_base64_has_no_data_prefix() -> None:
    png = mask_from_preset(16, 16, "center")
    encoded = png_base64(png)
    assert not encoded.startswith("data:")
    assert base64.b64decode(encoded, validate=True) == png
    with pytest.raises(ValueError):
        png_base64(b"\xff\xd8\xff not a png")


def test_compose_grid_puts_tiles_back_in_reading_order() -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    tiles = []
    for colour in colours:
        buffer = io.BytesIO()
        Image.new("RGB", (40, 30), colour).save(buffer, format="PNG")
        tiles.append(buffer.getvalue())
    grid = compose_grid(tiles)
    with Image.open(io.BytesIO(grid)) as image:
        assert image.size == (80, 60)
    for n, colour in enumerate(colours, start=1):
        with Image.open(io.BytesIO(crop_tile(grid, n))) as cell:
            assert cell.convert("RGB").getpixel((5, 5)) == colour
    with pytest.raises(MediaError):
        compose_grid(tiles[:3])


# ----------------------------------------------------------------------------- provider origin


def test_origin_of_makes_the_port_explicit_and_the_host_canonical() -> None:
    assert origin_of("http://10.0.0.5:8080") == ("http", "10.0.0.5", 8080)
    assert origin_of("HTTPS://MJ.Example.LAN./api") == ("https", "mj.example.lan", 443)
    assert origin_of("http://proxy.lan/") == ("http", "proxy.lan", 80)
    assert origin_of("ftp://10.0.0.5/") is None and origin_of("not a url") is None


async def test_a_self_hosted_providers_private_origin_passes_the_check_and_no_other() -> None:
    # The check alone (no request is sent): 10.0.0.5 is never contacted.
    own = origin_of("http://10.0.0.5:8080")
    assert own is not None
    policy = FetchPolicy(private_origins=frozenset({own}))

    async def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError("literal addresses need no lookup")

    target = await _check_target(httpx.URL("http://10.0.0.5:8080/mj/a.png"), policy, no_dns)
    assert target.request_url.host == "10.0.0.5"
    for other in (
        "http://10.0.0.5:8081/mj/a.png",  # another port
        "https://10.0.0.5:8080/mj/a.png",  # another scheme
        "http://10.0.0.6:8080/mj/a.png",  # another host
        "http://169.254.169.254/latest/meta-data/",
    ):
        with pytest.raises(MediaError, match="private or local"):
            await _check_target(httpx.URL(other), policy, no_dns)
    # Without the provider's origin, the provider's own address is refused as before.
    with pytest.raises(MediaError, match="private or local"):
        await _check_target(httpx.URL("http://10.0.0.5:8080/mj/a.png"), FetchPolicy(), no_dns)
