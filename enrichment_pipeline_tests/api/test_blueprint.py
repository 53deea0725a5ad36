"""GET/POST /v1/blueprint on a real uvicorn: data points by purpose, measured coverage, gaps and cost."""

from __future__ import annotations

from pathlib import Path

import yaml

from enrichment_pipeline.lib import blueprint
from enrichment_pipeline.lib.scoring.loader import default_model_path, load_model
from enrichment_pipeline.lib.waterfall import load_waterfall


def test_data_points_are_sorted_by_purpose():
    points = blueprint.data_points(load_model())
    assert (
        points["industry_naics"]["purpose"] == "qualify"
        and "industry_fit" in points["industry_naics"]["used_by"]
    )
    assert points["technologies"]["purpose"] == "target"
    assert points["recent_tech_changes"]["purpose"] == "personalize"
    assert points["visits_growth"]["purpose"] == "personalize"
    assert (
        points["total_funding_usd"]["purpose"] == "personalize"
        and points["total_funding_usd"]["used_by"] == []
    )


def test_expected_cost_weights_each_provider_by_the_chance_it_is_reached():
    model = load_model()
    facts = {
        "clearbit": blueprint.ProviderFacts("clearbit", 0.10, 1, 30),
        "apollo": blueprint.ProviderFacts("apollo", 0.05, 1, 30),
        "explorium": blueprint.ProviderFacts("explorium", 0.02, 1, 30),
    }
    coverage = {
        "companies": 10,
        "fields": {"employees": {"filled_share": 0.9, "by_provider": {"clearbit": 0.8, "apollo": 0.5}}},
    }
    doc = blueprint.build(
        model,
        load_waterfall(),
        facts,
        coverage,
        profile={"domain": "x.com", "industry_naics": "51", "country": "US"},
        domain="x.com",
    )
    firmo = next(g for g in doc["domain"]["gaps"] if g["group"] == "firmographics")
    # clearbit always, apollo when clearbit (80 %) misses, explorium (0 % measured) when both miss.
    assert firmo["expected_cost_usd"] == round(0.10 + 0.2 * 0.05 + 0.2 * 0.5 * 0.02, 4)
    assert firmo["max_cost_usd"] == round(0.17, 4)


def test_get_blueprint_for_a_known_and_an_unknown_domain(server, make_key):
    with server.client(make_key()) as c:
        r = c.get("/v1/blueprint", params={"domain": "WWW.company000004.com"})
        assert r.status_code == 200, r.text
        doc = r.json()
        purposes = {p["purpose"] for p in doc["data_points"]}
        assert purposes == {"qualify", "target", "personalize"}
        tech = next(p for p in doc["data_points"] if p["field"] == "technologies")
        assert tech["providers"][0]["provider"] == "builtwith"
        assert (
            tech["providers"][0]["measured_coverage"] == 1.0
        )  # every test company's stack came from BuiltWith
        assert tech["providers"][0]["cost_per_call"] is not None
        known = doc["domain"]
        assert known["domain"] == "company000004.com" and known["in_warehouse"]
        assert "technologies" in known["known"] and "total_funding_usd" in known["missing"]
        unknown = c.get("/v1/blueprint", params={"domain": "never-seen.io"}).json()["domain"]
        assert not unknown["in_warehouse"] and unknown["known"] == {}
        assert unknown["estimated_cost_usd"] > 0 and unknown["max_cost_usd"] >= unknown["estimated_cost_usd"]
        assert c.get("/v1/blueprint", params={"domain": "a b"}).json()["code"] == "invalid_domain"


def test_post_blueprint_validates_the_model_like_the_loader(server, make_key):
    text = Path(default_model_path()).read_text()
    model = yaml.safe_load(text)
    with server.client(make_key()) as c:
        as_json = c.post("/v1/blueprint", json={"model": model})
        assert as_json.status_code == 200, as_json.text
        as_yaml = c.post("/v1/blueprint", json={"model_yaml": text, "domain": "company000004.com"})
        assert as_yaml.status_code == 200 and as_yaml.json()["domain"]["domain"] == "company000004.com"
        broken = dict(model, tiers={"hot": 10, "warm": 45, "cool": 25})
        bad = c.post("/v1/blueprint", json={"model": broken})
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_model"
        assert "hot > warm > cool" in bad.json()["detail"]
        neither = c.post("/v1/blueprint", json={})
        assert neither.status_code == 422
        not_yaml = c.post("/v1/blueprint", json={"model_yaml": "tiers: [unclosed"})
        assert not_yaml.status_code == 422 and not_yaml.json()["code"] == "invalid_model"
