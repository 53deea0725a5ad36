"""Reading loosely typed JSON values from provider payloads, the same way everywhere.

Providers send numbers as strings, booleans where numbers belong, NaN and
empty strings for "unknown". These helpers turn all of that into a value or
None, so every provider module reads payloads by one rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any


def text(value: Any) -> str | None:
    """A non-empty stripped string, else None (numbers are accepted as text; booleans, objects
    and arrays are not)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    result = str(value).strip()
    return result or None


def number(value: Any) -> float | None:
    """A finite float from a JSON number or numeric string; None for junk, booleans, NaN, infinity."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int too big for a float
        return None
    return result if math.isfinite(result) else None


def mapping(value: Any) -> Mapping[str, Any]:
    """The value if it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def array(value: Any) -> list[Any]:
    """The value if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def host(value: Any) -> str | None:
    """The lower-case host of a URL or bare domain (scheme, port, path and query dropped), else None."""
    found = text(value)
    if found is None:
        return None
    found = re.sub(r"^[a-z][a-z0-9+.-]*://", "", found.lower())
    return re.split(r"[/?#:]", found, maxsplit=1)[0].rstrip(".") or None
