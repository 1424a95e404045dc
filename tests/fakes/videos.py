"""Deterministic small MP4 files for the fake providers' video results.

No codec ships with the project (and none is worth a heavy dependency for a fake), so these
are *container-only* MP4s: a real ISO BMFF file with the boxes a player and a sniffer look
at first — `ftyp` (brand isom, compatible iso2/avc1/mp41), `moov` with an `mvhd` (time scale
1000, the clip's duration) and a `trak`/`tkhd` of the frame size — and an `mdat` holding
seeded filler bytes instead of H.264 frames. Discord and the bot treat it as an .mp4 by
name and size; it parses as MP4 but does not decode to pictures.

`mp4(seed, size=…)` pads `mdat` so a test can ask for a video of an exact byte size
(larger than the upload limit, for instance).
"""

from __future__ import annotations

import hashlib
import struct

MIN_SIZE = 256
DEFAULT_SIZE = 48_000  # about what a 5 s 480p clip would be at a very low bitrate
MP4_MAGIC = b"ftyp"


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full_box(kind: bytes, version: int, payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version << 24) + payload)


_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def _mvhd(duration_ms: int) -> bytes:
    body = struct.pack(">IIII", 0, 0, 1000, duration_ms)
    body += struct.pack(">IH", 0x10000, 0x100) + b"\0" * 10 + _MATRIX + b"\0" * 24
    return _full_box(b"mvhd", 0, body + struct.pack(">I", 2))


def _tkhd(duration_ms: int, width: int, height: int) -> bytes:
    body = struct.pack(">IIIII", 0, 0, 1, 0, duration_ms) + b"\0" * 8
    body += struct.pack(">HHHH", 0, 0, 0, 0) + _MATRIX
    body += struct.pack(">II", width << 16, height << 16)
    return _box(b"tkhd", struct.pack(">I", 0x000003) + body)  # enabled, in movie


def _filler(seed: str, length: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:length])


def mp4(
    seed: str,
    *,
    size: int = DEFAULT_SIZE,
    duration_s: float = 5.0,
    width: int = 832,
    height: int = 464,
) -> bytes:
    """A container-only MP4 of exactly `size` bytes (at least MIN_SIZE), the same for the
    same arguments."""
    size = max(MIN_SIZE, size)
    duration_ms = round(duration_s * 1000)
    head = _box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2avc1mp41")
    moov = _box(b"moov", _mvhd(duration_ms) + _box(b"trak", _tkhd(duration_ms, width, height)))
    room = size - len(head) - len(moov) - 8
    return head + moov + _box(b"mdat", _filler(seed, max(0, room)))


def is_mp4(data: bytes) -> bool:
    """Whether `data` starts like an MP4: an `ftyp` box first."""
    return len(data) >= 12 and data[4:8] == MP4_MAGIC
