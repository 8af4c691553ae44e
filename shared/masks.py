"""The 22 mask planes of a Rubin difference image, their bits and display colours.

Bits 0-8 follow the order the LSST pipelines register their core planes in; the rest follow in
alphabetical order. The FITS mask extension records the mapping as ``MP_<NAME> = bit`` cards, so
a reader never has to trust this table for a file it did not write.
"""
from __future__ import annotations

MASK_PLANES: dict[str, int] = {
    name: bit
    for bit, name in enumerate(
        [
            "BAD", "SAT", "INTRP", "CR", "EDGE", "DETECTED", "DETECTED_NEGATIVE", "SUSPECT",
            "NO_DATA", "CLIPPED", "CROSSTALK", "INEXACT_PSF", "INJECTED", "INJECTED_TEMPLATE",
            "ITL_DIP", "NOT_DEBLENDED", "REJECTED", "SAT_TEMPLATE", "SENSOR_EDGE", "STREAK",
            "UNMASKEDNAN", "VIGNETTED",
        ]
    )
}

#: Colours a display gives each plane (the defaults the tutorial prints).
MASK_COLORS: dict[str, str] = {
    "BAD": "red", "CLIPPED": "blue", "CR": "magenta", "CROSSTALK": "cyan", "DETECTED": "blue",
    "DETECTED_NEGATIVE": "cyan", "EDGE": "yellow", "INEXACT_PSF": "magenta", "INJECTED": "yellow",
    "INJECTED_TEMPLATE": "orange", "INTRP": "green", "ITL_DIP": "red", "NOT_DEBLENDED": "green",
    "NO_DATA": "orange", "REJECTED": "blue", "SAT": "green", "SAT_TEMPLATE": "cyan",
    "SENSOR_EDGE": "magenta", "STREAK": "green", "SUSPECT": "yellow", "UNMASKEDNAN": "yellow",
    "VIGNETTED": "red",
}


def bit_value(name: str) -> int:
    return 1 << MASK_PLANES[name]


def planes_from_header(header) -> dict[str, int]:
    """Read ``MP_*`` cards of a FITS mask header into a name -> bit mapping."""
    return {key[3:]: int(header[key]) for key in header if key.startswith("MP_")}


def plane_cards() -> list[tuple[str, int, str]]:
    return [(f"MP_{name}", bit, "mask plane bit") for name, bit in MASK_PLANES.items()]


def interpret(value: int, planes: dict[str, int] | None = None) -> str:
    """Names of the planes set in ``value``, comma-separated, as the pipelines print them."""
    planes = MASK_PLANES if planes is None else planes
    return ",".join(name for name, bit in sorted(planes.items()) if value & (1 << bit))
