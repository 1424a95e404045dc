"""Discord's ids as the store keeps them: strings, None where Discord gives none (a DM)."""

from __future__ import annotations


def optional_str(value: int | None) -> str | None:
    return str(value) if value is not None else None
