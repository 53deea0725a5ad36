"""The enrichment blueprint: for an ICP, which data points to collect, from which provider, at what cost.

Data points come from the model's criteria and disqualifiers, sorted by purpose:
`qualify` (firmographics, financials, traffic scale: does the lead fit?),
`target` (technographics: what to pitch against) and `personalize` (recent
technology changes, traffic growth, funding: why now). Each lists the providers
the waterfall would ask, in order, with their coverage *measured* in this
warehouse (share of companies whose value came from that provider), cost per
call and cache TTL. For a domain: what is known, what is missing, and the
expected cost to fill the gaps (each provider's cost weighted by the chance the
ones before it leave the field empty), with the worst case.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from enrichment_pipeline.lib.fields import FIELD_GROUP
from enrichment_pipeline.lib.read_sources import Session
from enrichment_pipeline.lib.scoring.model import RECENT_TECH_CHANGES, IcpModel
from enrichment_pipeline.lib.waterfall import Waterfall

PERSONALIZE = {
    RECENT_TECH_CHANGES: "technologies",
    "visits_growth": "traffic",
    "total_funding_usd": "financials",
}
# Always part of outreach personalization, whether or not the model scores them.
ALWAYS = (RECENT_TECH_CHANGES, "visits_growth", "total_funding_usd")


@dataclass(frozen=True)
class ProviderFacts:
    name: str
    cost_per_call: float
    calls_per_domain: int
    ttl_days: float


def data_points(model: IcpModel) -> dict[str, dict[str, Any]]:
    """field -> {group, purpose, used_by: [criterion ids]}."""
    points: dict[str, dict[str, Any]] = {}

    def add(field: str, used_by: str, family: str | None) -> None:
        group = "technologies" if field in ("technologies", RECENT_TECH_CHANGES) else FIELD_GROUP.get(field)
        if group is None:
            return
        if field in PERSONALIZE or family == "timing":
            purpose = "personalize"
        elif group == "technologies":
            purpose = "target"
        else:
            purpose = "qualify"
        entry = points.setdefault(field, {"field": field, "group": group, "purpose": purpose, "used_by": []})
        if used_by and used_by not in entry["used_by"]:
            entry["used_by"].append(used_by)

    for c in model.criteria:
        kind = c.kind
        field = {"industries": "industry_naics", "countries": "country"}.get(
            kind, "technologies" if kind.startswith("technologies") else c.field
        )
        add(field, c.id, c.family)
    for d in model.disqualifiers:
        field = {"industries": "industry_naics", "countries": "country"}.get(d.kind, d.field)
        add(field, d.id, None)
    for field in ALWAYS:
        add(field, "", None)
    return points


def _filled(field: str) -> str:
    if field == "technologies":
        return "p.technologies IS NOT NULL AND p.technologies NOT IN ('', '[]', 'null')"
    if field == RECENT_TECH_CHANGES:
        return "EXISTS (SELECT 1 FROM marts.fct_tech_changes c WHERE c.domain = p.domain)"
    return f'p."{field}" IS NOT NULL'


def measured_coverage(session: Session, fields: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Per field: companies, filled share, and share filled by each provider (the group's source)."""
    total = int(session.rows("SELECT count(*) AS n FROM marts.company_profiles")[0]["n"])
    out: dict[str, Any] = {"companies": total, "fields": {}}
    for field, group in fields:
        rows = session.rows(
            f"SELECT p.{group}_source AS provider, count(*) AS n FROM marts.company_profiles p "
            f"WHERE {_filled(field)} GROUP BY p.{group}_source"
        )
        by_provider = {r["provider"]: int(r["n"]) for r in rows if r["provider"]}
        filled = sum(int(r["n"]) for r in rows)
        out["fields"][field] = {
            "filled_share": round(filled / total, 4) if total else None,
            "by_provider": {p: round(n / total, 4) for p, n in by_provider.items()} if total else {},
        }
    return out


def _expected_cost(chain: list[dict[str, Any]]) -> tuple[float, float]:
    """Expected and worst-case cost of walking the chain until a provider fills the field."""
    expected, reach, worst = 0.0, 1.0, 0.0
    for p in chain:
        cost = p["cost_per_call"] * p["calls_per_domain"]
        expected += reach * cost
        worst += cost
        reach *= 1.0 - min(1.0, max(0.0, p["measured_coverage"] or 0.0))
    return expected, worst


def build(
    model: IcpModel,
    waterfall: Waterfall,
    providers: Mapping[str, ProviderFacts],
    coverage: Mapping[str, Any],
    profile: Mapping[str, Any] | None = None,
    domain: str | None = None,
) -> dict[str, Any]:
    points = data_points(model)
    doc_points = []
    for field, p in points.items():
        chain = []
        for name in waterfall.order(p["group"]):
            facts = providers.get(name)
            chain.append(
                {
                    "provider": name,
                    "configured": facts is not None,
                    "measured_coverage": coverage["fields"]
                    .get(field, {})
                    .get("by_provider", {})
                    .get(name, 0.0),
                    "cost_per_call": facts.cost_per_call if facts else None,
                    "calls_per_domain": facts.calls_per_domain if facts else None,
                    "freshness_ttl_days": facts.ttl_days if facts else None,
                }
            )
        doc_points.append(
            {
                **p,
                "filled_share": coverage["fields"].get(field, {}).get("filled_share"),
                "providers": chain,
            }
        )
    doc_points.sort(key=lambda d: (("qualify", "target", "personalize").index(d["purpose"]), d["field"]))
    doc: dict[str, Any] = {
        "model": {"name": model.name, "version": model.version},
        "companies_measured": coverage["companies"],
        "data_points": doc_points,
        "domain": None,
    }
    if domain is not None:
        doc["domain"] = _for_domain(domain, doc_points, profile)
    return doc


def _value(profile: Mapping[str, Any], field: str) -> Any:
    if field == RECENT_TECH_CHANGES:
        return profile.get("_recent_tech_changes")
    value = profile.get(field)
    if field == "technologies" and isinstance(value, str):
        try:
            value = json.loads(value) or None
        except ValueError:
            value = None
    return value


def _for_domain(
    domain: str, points: list[dict[str, Any]], profile: Mapping[str, Any] | None
) -> dict[str, Any]:
    if profile is None:
        known: dict[str, Any] = {}
        missing = [p["field"] for p in points]
    else:
        known = {
            p["field"]: _value(profile, p["field"]) for p in points if _value(profile, p["field"]) is not None
        }
        missing = [p["field"] for p in points if p["field"] not in known]
    # One call per provider fills every missing field of its group: cost per group, not per field.
    # A provider's chance to fill a group's gaps: its mean measured coverage over the missing fields.
    groups: dict[str, list[dict[str, Any]]] = {}
    for group in dict.fromkeys(p["group"] for p in points if p["field"] in missing):
        gap_points = [p for p in points if p["group"] == group and p["field"] in missing]
        chain = []
        for c in gap_points[0]["providers"]:
            if not c["configured"]:
                continue
            shares = [
                next(x["measured_coverage"] for x in p["providers"] if x["provider"] == c["provider"])
                for p in gap_points
            ]
            chain.append({**c, "measured_coverage": sum(shares) / len(shares)})
        groups[group] = chain
    expected = worst = 0.0
    gaps = []
    for group, chain in groups.items():
        e, w = _expected_cost(chain)
        expected += e
        worst += w
        gaps.append(
            {
                "group": group,
                "fields": [p["field"] for p in points if p["group"] == group and p["field"] in missing],
                "providers": [c["provider"] for c in chain],
                "expected_cost_usd": round(e, 4),
                "max_cost_usd": round(w, 4),
            }
        )
    return {
        "domain": domain,
        "in_warehouse": profile is not None,
        "known": known,
        "missing": missing,
        "gaps": gaps,
        "estimated_cost_usd": round(expected, 4),
        "max_cost_usd": round(worst, 4),
    }
