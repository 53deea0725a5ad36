"""The read endpoints against a real uvicorn: auth, scopes, limits, lookups, lists, pagination, ETags."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from enrichment_pipeline_tests.api import marts_data
from enrichment_pipeline_tests.api.conftest import N_COMPANIES

PROBLEM = "application/problem+json"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "enrichment_pipeline.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_health_and_ready_need_no_key(server):
    with server.client() as c:
        assert c.get("/health").json() == {"status": "ok"}
        ready = c.get("/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_ready_is_503_without_a_snapshot(tmp_path):
    from enrichment_pipeline.api.app import create_app
    from enrichment_pipeline_tests.api.conftest import LiveServer, api_config

    with (
        LiveServer(create_app(api_config(tmp_path, tmp_path / "missing.duckdb"))) as live,
        live.client() as c,
    ):
        r = c.get("/ready")
        assert r.status_code == 503 and r.json()["status"] == "unavailable"


def test_keys_from_the_cli_authenticate_and_revocation_takes_effect(server, config):
    env = {**os.environ, "API_STATE_DB": str(config.state_path)}
    created = _cli("api-keys", "create", "--name", "crm", "--scopes", "read", env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("epk_") and len(key) > 50
    listed = _cli("api-keys", "list", "--format", "json", env=env)
    assert key not in listed.stdout and key.split("_")[1] in listed.stdout
    assert key not in config.state_path.read_bytes().decode("latin-1")  # digest only

    with server.client(key) as c:
        assert c.get("/v1/stats").status_code == 200
        key_id = key.split("_")[1]
        revoked = _cli("api-keys", "revoke", key_id, env=env)
        assert revoked.returncode == 0, revoked.stderr
        r = c.get("/v1/stats")
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    again = _cli("api-keys", "revoke", key_id, env=env)
    assert again.returncode == 2 and "already revoked" in again.stderr
    bad = _cli("api-keys", "create", "--name", "x", "--scopes", "write", env=env)
    assert bad.returncode == 2 and "unknown scope" in bad.stderr and "Traceback" not in bad.stderr


def test_missing_wrong_and_malformed_keys_are_401_problems(server, make_key):
    key = make_key()
    with server.client() as c:
        for headers in (
            {},
            {"Authorization": "Bearer nope"},
            {"Authorization": f"Basic {key}"},
            {"Authorization": f"Bearer {key[:-1]}x"},
        ):
            r = c.get("/v1/companies/company000001.com", headers=headers)
            assert r.status_code == 401
            assert r.headers["content-type"] == PROBLEM
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert r.json()["code"] == "unauthorized"


def test_a_key_without_the_scope_is_403(server, make_key):
    read_only = make_key(("read",))
    enrich_only = make_key(("enrich",))
    with server.client(enrich_only) as c:
        r = c.get("/v1/stats")
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
    with server.client(read_only) as c:
        r = c.post("/v1/enrichments", json={"domains": ["example.com"]})
        assert r.status_code == 403 and r.json()["code"] == "forbidden"


def test_reads_over_the_tier_limit_are_429_with_retry_after(server, make_key):
    key = make_key(tier="standard")
    admin = make_key(tier="admin")
    with server.client(key) as c:
        first = c.get("/health")
        statuses = []
        for _ in range(100):
            r = c.get("/v1/companies/company000001.com")
            statuses.append(r.status_code)
        if 429 in statuses:  # the minute rolled over mid-test: the count restarted
            return test_reads_over_the_tier_limit_are_429_with_retry_after(server, make_key)
        assert set(statuses) == {200}
        assert r.headers["ratelimit-limit"] == "100" and r.headers["ratelimit-remaining"] == "0"
        over = c.get("/v1/companies/company000001.com")
        if over.status_code == 200 and over.headers["ratelimit-remaining"] == "99":  # a new minute
            return test_reads_over_the_tier_limit_are_429_with_retry_after(server, make_key)
        assert over.status_code == 429 and over.json()["code"] == "rate_limited"
        assert 1 <= int(over.headers["retry-after"]) <= 60
        assert over.headers["ratelimit-remaining"] == "0"
        assert first.status_code == 200
    with server.client(admin) as c:  # admin: unlimited; another key is not affected
        assert all(c.get("/v1/stats").status_code == 200 for _ in range(120))


def test_any_pasted_form_finds_the_company(server, make_key):
    with server.client(make_key()) as c:
        for form in (
            "company000005.com",
            "HTTPS://WWW.Company000005.COM/about?x=1",
            "www.company000005.com.",
        ):
            r = c.get(f"/v1/companies/{form}")
            assert r.status_code == 200, (form, r.text)
            body = r.json()
            assert body["domain"] == "company000005.com"
        assert body["score"]["icp_tier"] in ("hot", "warm", "cool", "cold")
        assert body["score"]["reasons"] == ["reason for company000005.com"]
        assert body["sources"]["fields"]["employees"]["provider"] == "clearbit"
        assert body["sources"]["groups"]["technologies"] == "builtwith"
        assert body["confidence"]["profile"] == 0.85
        assert body["freshness"]["enriched_at"].endswith("Z") and body["freshness"]["age_seconds"] >= 0
        assert body["technographics"]["technologies"]


def test_unknown_domain_is_404_naming_the_normalized_domain_and_junk_is_422(server, make_key):
    with server.client(make_key()) as c:
        r = c.get("/v1/companies/https://www.Unknown-Co.io/x")
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM
        body = r.json()
        assert body["code"] == "company_not_found" and body["domain"] == "unknown-co.io"
        assert "POST /v1/enrichments" in body["detail"]
        junk = c.get("/v1/companies/not a domain")
        assert junk.status_code == 422 and junk.json()["code"] == "invalid_domain"


def test_etag_and_if_none_match(server, make_key):
    with server.client(make_key()) as c:
        r = c.get("/v1/companies/company000007.com")
        etag = r.headers["etag"]
        again = c.get("/v1/companies/company000007.com", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        other = c.get("/v1/companies/company000007.com", headers={"If-None-Match": '"stale"'})
        assert other.status_code == 200 and other.headers["etag"] == etag
        assert c.get("/v1/companies/company000008.com").headers["etag"] != etag


def test_filters_sort_and_cursor_pagination_walk_every_row_once(server, make_key):
    frames = marts_data.marts(N_COMPANIES)
    scores = frames["marts.icp_scores"]
    with server.client(make_key(tier="power")) as c:
        seen: list[dict] = []
        cursor = None
        while True:
            params = {"limit": 7, "sort": "-icp_score", **({"cursor": cursor} if cursor else {})}
            page = c.get("/v1/companies", params=params).json()
            seen.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == N_COMPANIES == len({r["domain"] for r in seen})
        keys = [(-r["icp_score"], r["domain"]) for r in seen]
        assert keys == sorted(keys)

        hot = c.get("/v1/companies", params={"tier": "hot", "limit": 500}).json()["items"]
        assert {r["domain"] for r in hot} == set(scores.filter(scores["icp_tier"] == "hot")["domain"])
        ranged = c.get("/v1/companies", params={"min_score": 40, "max_score": 60}).json()["items"]
        assert ranged and all(40 <= r["icp_score"] <= 60 for r in ranged)
        with_algolia = c.get("/v1/companies", params={"technology": "algolia", "limit": 500}).json()["items"]
        without = c.get("/v1/companies", params={"without_technology": "Algolia", "limit": 500}).json()[
            "items"
        ]
        assert with_algolia and without and len(with_algolia) + len(without) == N_COMPANIES
        gb = c.get("/v1/companies", params={"country": "gb", "status": "enriched", "industry": "51"}).json()
        assert gb["items"] and all(r["country"] == "GB" and r["industry_naics"] == "51" for r in gb["items"])
        by_visits = c.get("/v1/companies", params={"sort": "monthly_visits", "limit": 500}).json()["items"]
        assert len(by_visits) == N_COMPANIES

        bad_sort = c.get("/v1/companies", params={"sort": "password"})
        assert bad_sort.status_code == 422 and bad_sort.json()["code"] == "validation_error"
        too_many = c.get("/v1/companies", params={"limit": 501})
        assert too_many.status_code == 422 and "limit" in too_many.json()["detail"]
        bad_cursor = c.get("/v1/companies", params={"cursor": "garbage!"})
        assert bad_cursor.status_code == 400 and bad_cursor.json()["code"] == "invalid_cursor"
        first = c.get("/v1/companies", params={"limit": 2}).json()
        wrong_sort = c.get("/v1/companies", params={"cursor": first["next_cursor"], "sort": "domain"})
        assert wrong_sort.status_code == 400


def test_technologies_and_stats(server, make_key):
    with server.client(make_key()) as c:
        tech = c.get("/v1/companies/www.company000001.com/technologies").json()
        assert tech["domain"] == "company000001.com"
        assert tech["current"] and all(t["is_current"] for t in tech["current"])
        assert (
            any(t["removed_at"] for t in tech["history"]) and tech["changes"][0]["change_type"] == "removed"
        )
        assert c.get("/v1/companies/unknown-co.io/technologies").status_code == 404
        stats = c.get("/v1/stats").json()
        assert stats["companies"] == N_COMPANIES
        assert sum(stats["by_tier"].values()) == N_COMPANIES
        assert {p["provider"] for p in stats["providers"]} == set(marts_data.PROVIDERS)


def test_a_new_snapshot_is_served_without_restart_while_requests_run(
    server, make_key, snapshot_dir, tmp_path
):
    import threading

    key = make_key(tier="admin")
    path = Path(snapshot_dir) / "serving.duckdb"
    errors: list[str] = []
    names: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        with server.client(key) as c:
            while not stop.is_set():
                r = c.get("/v1/companies/company000003.com")
                if r.status_code != 200:
                    errors.append(r.text)
                else:
                    names.add(r.json()["company_name"])

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        marts_data.write_snapshot(path, marts_data.marts(N_COMPANIES, tag=" v2"), tmp_path / "work")
        with server.client(key) as c:
            deadline = __import__("time").monotonic() + 10
            while c.get("/v1/companies/company000003.com").json()["company_name"] != "Company 3 v2":
                assert __import__("time").monotonic() < deadline, "new snapshot not picked up"
    finally:
        stop.set()
        for t in threads:
            t.join()
        marts_data.write_snapshot(path, marts_data.marts(N_COMPANIES), tmp_path / "work2")
    assert not errors
    assert names <= {"Company 3", "Company 3 v2"}


def test_oversized_bodies_are_413(server, make_key):
    with server.client(make_key(("read", "enrich"))) as c:
        r = c.post(
            "/v1/enrichments",
            content=b"{" + b" " * 2_000_000 + b"}",
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413 and r.json()["code"] == "payload_too_large"


def test_the_documented_sorts_are_the_sortable_columns():
    from typing import get_args

    from enrichment_pipeline.lib import company_queries as q

    assert set(get_args(q.SortChoice)) == set(q.SORT_CHOICES)


def test_cached_answers_never_outlive_their_snapshot(server, make_key, snapshot_dir, tmp_path):
    """Lookups and pages are cached per snapshot: the request right after a swap gets the new data."""
    path = Path(snapshot_dir) / "serving.duckdb"
    page_params = {"tier": "hot", "limit": 5, "sort": "domain"}
    with server.client(make_key(tier="admin")) as c:
        for _ in range(3):  # cached after the first
            assert c.get("/v1/companies/company000003.com").json()["company_name"] == "Company 3"
            names = [r["company_name"] for r in c.get("/v1/companies", params=page_params).json()["items"]]
            assert names and not any(n.endswith(" v2") for n in names)
        etag = c.get("/v1/companies/company000003.com").headers["etag"]
        try:
            marts_data.write_snapshot(path, marts_data.marts(N_COMPANIES, tag=" v2"), tmp_path / "work")
            r = c.get("/v1/companies/company000003.com", headers={"If-None-Match": etag})
            assert r.status_code == 200 and r.json()["company_name"] == "Company 3 v2"
            assert r.headers["etag"] != etag
            page = c.get("/v1/companies", params=page_params).json()["items"]
            assert [r["company_name"] for r in page] == [n + " v2" for n in names]
        finally:
            marts_data.write_snapshot(path, marts_data.marts(N_COMPANIES), tmp_path / "work2")
        assert c.get("/v1/companies/company000003.com").json()["company_name"] == "Company 3"


def test_a_cached_company_keeps_its_etag_while_its_age_grows(server, make_key):
    import time

    with server.client(make_key()) as c:
        first = c.get("/v1/companies/company000009.com")
        time.sleep(1.1)
        second = c.get("/v1/companies/company000009.com")
        assert first.headers["etag"] == second.headers["etag"] and first.headers["etag"].startswith('W/"')
        assert second.json()["freshness"]["age_seconds"] > first.json()["freshness"]["age_seconds"]
        body = second.json()
        body["freshness"]["age_seconds"] = first.json()["freshness"]["age_seconds"]
        assert body == first.json()  # only the age moved
        again = c.get("/v1/companies/company000009.com", headers={"If-None-Match": second.headers["etag"]})
        assert again.status_code == 304


def test_the_same_question_in_another_order_is_one_answer(server, make_key):
    with server.client(make_key(tier="power")) as c:
        one = c.get("/v1/companies", params=[("tier", "hot"), ("tier", "warm"), ("technology", "Shopify")])
        two = c.get("/v1/companies", params=[("technology", "shopify"), ("tier", "warm"), ("tier", "hot")])
        assert one.status_code == two.status_code == 200 and one.content == two.content
        items = one.json()["items"]
        assert items and all(r["icp_tier"] in ("hot", "warm") for r in items)
