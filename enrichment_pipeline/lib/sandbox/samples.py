"""Plausible public facts for the bundled sample domains (``sample_companies.csv``).

The simulators draw every company from a seeded generator, which is fine for
arbitrary domains but makes well-known sample domains look absurd (3M as a
retailer). For the domains in the CSV, the simulators take industry, HQ
country, head count and listing from here instead; everything else (and every
other domain) stays deterministic as before.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

from enrichment_pipeline.lib.sandbox.shared import domain_key

SAMPLES_PATH = Path(__file__).with_name("sample_companies.csv")


@dataclass(frozen=True)
class SampleFact:
    domain: str
    name: str
    vertical: str  # a key of sandbox/clearbit.py CATEGORIES
    country: str  # ISO 3166-1 alpha-2
    employees: int
    ticker: str | None


@functools.cache
def _facts() -> dict[str, SampleFact]:
    facts: dict[str, SampleFact] = {}
    with SAMPLES_PATH.open(encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        for row in rows:
            domain = domain_key(row["domain"])
            facts[domain] = SampleFact(
                domain=domain,
                name=row["name"].strip(),
                vertical=row["vertical"].strip(),
                country=row["country"].strip().upper(),
                employees=int(row["employees"]),
                ticker=row["ticker"].strip() or None,
            )
    return facts


def sample_fact(domain: str) -> SampleFact | None:
    """The bundled facts for a sample domain (any spelling the pipeline accepts), else None."""
    return _facts().get(domain_key(domain))


def sample_domains() -> list[str]:
    return list(_facts())
