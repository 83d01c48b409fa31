"""Sizes as people read them. One unit system everywhere (API messages, CLI, web UI, README): binary
multiples written KiB, MiB, GiB (1 MiB = 1,048,576 bytes), as the limits themselves are (10 GiB, 2 MiB)."""

from __future__ import annotations

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_bytes(size: float) -> str:
    """`512 B`, `1.5 KiB`, `38.8 MiB`, `10 GiB` (a whole number of a unit shows no decimals)."""
    value = float(size)
    for unit in UNITS:
        if abs(value) < 1024 or unit == UNITS[-1]:
            if unit == "B" or value == int(value):
                return f"{value:.0f} {unit}"
            return f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
