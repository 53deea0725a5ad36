"""What every simulator shares: seeded generators, the domain key, the shared size, range labels.

The simulators describe one world. A domain must therefore mean the same
company to all of them (one key, from the pipeline's own normalizer), draw
from generators that are stable across processes (SHA-256 seeds, never
Python's salted `hash()`), and have one size, so big-traffic sites are big
companies with big stacks in every provider.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from enrichment_pipeline.lib.domains import InvalidDomain, normalize_domain


def bundled_rows(name: str) -> list[dict[str, str]]:
    """The rows of a CSV file bundled beside the simulators; lines starting with ``#`` are comments.

    The simulators' catalogues and fact tables live in such files so a newcomer edits
    data, not code; each file is read once per process.
    """
    with Path(__file__).with_name(name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


def seeded(*parts: object) -> random.Random:
    """A generator seeded from SHA-256 of the parts: stable across runs, unlike hash()."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@functools.lru_cache(maxsize=65536)
def domain_key(domain: str) -> str:
    """The key a simulator knows a domain by: the domain as the pipeline normalizes it.

    So `WWW.Acme.com.`, `https://acme.com/about` and `acme.com` are one company to
    every simulator, as they are to the pipeline. Cached: the simulators ask for
    the same keys over and over.

    Input the pipeline refuses is still answered, as a real provider answers any
    string: the tests use reserved names such as `company-1.example`, which are
    not in the public suffix list, and providers are sent company names and
    dot-less words. Such input gets the same clean-up without the suffix list
    (lower case; no scheme, path, trailing dot or ``www.``); each simulator then
    decides whether it is an error.
    """
    try:
        return normalize_domain(domain)
    except InvalidDomain:
        host = domain.strip().lower().split("://", 1)[-1].split("/", 1)[0]
        return host.rstrip(".").removeprefix("www.")


def size_quantile(domain: str) -> float:
    """A domain's size in [0, 1), the same in every simulator (a uniform draw; each scales it)."""
    return seeded("size", domain_key(domain)).random()


def company_name(key: str) -> str:
    """A company name made from a domain key's first label: `acme-widgets.com` -> `Acme Widgets`.

    Empty when the label has no letters or digits; callers choose their fallback.
    """
    label = key.split(".")[0]
    return " ".join(part.capitalize() for part in label.replace("_", "-").split("-") if part)


@dataclass(frozen=True)
class Ranges:
    """A provider's range labels (employees, revenue): the first range whose upper bound holds a value."""

    bounds: Sequence[tuple[float, str]]  # (upper bound, label), ascending
    above: str  # the label past the last bound
    inclusive: bool  # True if an upper bound belongs to its own range (head counts: "1-10" holds 10)

    def label(self, value: float) -> str:
        for upper, label in self.bounds:
            if value < upper or (self.inclusive and value == upper):
                return label
        return self.above
