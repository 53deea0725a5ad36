"""The helpers every simulator shares: one domain key, seeded generators, range labels, one routing rule."""

from __future__ import annotations

import httpx
import pytest

from enrichment_pipeline.lib.sandbox import apollo, builtwith, clearbit, explorium, similarweb
from enrichment_pipeline.lib.sandbox.shared import Ranges, company_name, domain_key, seeded, size_quantile
from enrichment_pipeline.lib.sandbox.transport import sandbox_handler

ROUTES = [builtwith.route, similarweb.route, clearbit.route, apollo.route, explorium.route]


@pytest.mark.parametrize(
    "spelling", ["acme.com", "ACME.com.", "www.acme.com", "https://www.acme.com/about", " Acme.COM "]
)
def test_every_spelling_the_pipeline_accepts_is_one_key(spelling: str) -> None:
    assert domain_key(spelling) == "acme.com"


def test_the_key_is_the_pipelines_normalized_domain() -> None:
    assert domain_key("bücher.de") == "xn--bcher-kva.de"
    assert domain_key("shop.example.co.uk") == "example.co.uk"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("nodot", "nodot"),
        ("Acme Inc", "acme inc"),
        (" localhost. ", "localhost"),
        ("https://WWW.company-1.example/about", "company-1.example"),
    ],
)
def test_refused_input_gets_the_same_clean_up_so_simulators_can_answer_it(raw: str, key: str) -> None:
    assert domain_key(raw) == key


def test_one_company_is_one_company_to_every_simulator() -> None:
    # The shared size and each provider's draws follow the key, not the spelling.
    assert size_quantile("WWW.Acme.com") == size_quantile("acme.com")
    assert builtwith.domain_api_response("www.acme.com") == builtwith.domain_api_response("acme.com")
    assert similarweb.has_data("https://acme.com/") == similarweb.has_data("acme.com")
    assert clearbit.company_facts("acme.com.") == clearbit.company_facts("acme.com")


def test_seeded_generators_depend_on_the_parts_only() -> None:
    assert seeded("a", 1).random() == seeded("a", 1).random()
    assert seeded("a", 1).random() != seeded("a", 2).random()
    assert seeded("ab").random() != seeded("a", "b").random()  # parts are separated, not concatenated


def test_company_name_from_the_first_label() -> None:
    assert company_name("acme-widgets_co.com") == "Acme Widgets Co"
    assert company_name("-.com") == ""


def test_ranges_put_a_bound_in_its_own_range_only_when_inclusive() -> None:
    heads = Ranges(((10, "1-10"), (50, "11-50")), above="51+", inclusive=True)
    money = Ranges(((1e6, "0-1M"), (1e7, "1M-10M")), above="10M+", inclusive=False)
    assert [heads.label(n) for n in (10, 11, 50, 51)] == ["1-10", "11-50", "11-50", "51+"]
    assert [money.label(x) for x in (999_999, 1e6, 1e7)] == ["0-1M", "1M-10M", "10M+"]


def test_every_catalog_slot_has_a_category_at_each_provider() -> None:
    assert {tech.slot for tech in builtwith.CATALOG} == set(builtwith.SLOT_CATEGORIES)


@pytest.mark.parametrize(
    "path",
    [
        builtwith.DOMAIN_PATH,
        "/v1/website/acme.com/total-traffic-and-engagement/visits",
        clearbit.COMPANY_PATH,
        "/api/v1/organizations/enrich",
        explorium.MATCH_PATH,
    ],
)
def test_exactly_one_simulator_owns_each_path(path: str) -> None:
    request = httpx.Request("GET", f"https://any.host{path}")
    assert sum(route(request) is not None for route in ROUTES) == 1


def test_a_path_no_simulator_owns_is_a_404() -> None:
    response = sandbox_handler(httpx.Request("GET", "https://any.host/v9/nothing"))
    assert response.status_code == 404 and response.json() == {"error": "Not Found", "path": "/v9/nothing"}
