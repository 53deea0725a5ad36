"""Plausible public facts for the bundled sample domains (``sample_companies.csv``).

The simulators draw every company from a seeded generator, which is fine for
arbitrary domains but makes well-known sample domains look absurd (3M as a
retailer). For the domains in the CSV, the simulators take industry, HQ
country, head count and listing from here instead; everything else (and every
other domain) stays deterministic as before.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from enrichment_pipeline.lib.sandbox.shared import bundled_rows, domain_key


@dataclass(frozen=True)
class SampleFact:
    domain: str
    name: str
    vertical: str  # a vertical of sandbox/verticals.csv
    country: str  # ISO 3166-1 alpha-2
    employees: int
    ticker: str | None


@functools.cache
def _facts() -> dict[str, SampleFact]:
    facts: dict[str, SampleFact] = {}
    for row in bundled_rows("sample_companies.csv"):
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
