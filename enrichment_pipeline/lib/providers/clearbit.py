"""Clearbit Company API: firmographics and financials for one web domain.

One ``GET /v2/companies/find?domain=<domain>`` per domain, the key sent as the
HTTP Basic user (no password), as Clearbit documents.

What Clearbit's status codes mean here, and why:

* **202** — Clearbit does not know the company yet and has *queued* a lookup.
  That is not "missing": the record usually exists minutes later. It becomes
  ``pending``, which the fetcher stores with a short expiry and never caches as
  not found, so the next run asks again.
* **404** — Clearbit looked and has no record: ``not_found`` (negative cache
  for `not_found_ttl`).
* **422** — the domain failed Clearbit's validation. Asking again cannot help
  (and the policy never retries 4xx), so it is a plain ``error``.
* **402** — over the plan's quota. Every further call this run would fail the
  same way, so it is ``auth_failed``, which makes the policy stop calling
  Clearbit for the rest of the run instead of spending a call per domain.

Clearbit only bills 200/201/202/404 answers, and only once per unique lookup
per billing period; the policy's per-call cost is therefore an upper bound.

`Clearbit.extract` maps the answer onto the standard fields through
`lib/units.py`, so ranges ("$10M-$50M", "251-1K") become the same USD numbers
and head-count bands as every other provider's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from enrichment_pipeline.lib import units
from enrichment_pipeline.lib.json_values import array as _array
from enrichment_pipeline.lib.json_values import mapping as _mapping
from enrichment_pipeline.lib.json_values import number as _number
from enrichment_pipeline.lib.json_values import text as _text
from enrichment_pipeline.lib.providers.base import Auth, Interpretation, Provider, ProviderRequest

COMPANY_PATH = "/v2/companies/find"
COMPANY_ENDPOINT = "company"

# Clearbit reports technologies as slugs; these are the ones whose display name
# is not the slug title-cased, mapped to the names BuiltWith uses so the
# providers' technology lists can be compared and merged.
TECH_NAMES: dict[str, str] = {
    "google_analytics": "Google Analytics",
    "google_analytics_4": "Google Analytics 4",
    "google_tag_manager": "Google Tag Manager",
    "shopify": "Shopify",
    "shopify_plus": "Shopify Plus",
    "wordpress": "WordPress",
    "woocommerce": "WooCommerce",
    "bigcommerce": "BigCommerce",
    "hubspot": "HubSpot",
    "pardot": "Salesforce Pardot",
    "salesforce_pardot": "Salesforce Pardot",
    "paypal": "PayPal",
    "jquery": "jQuery",
    "next_js": "Next.js",
    "nextjs": "Next.js",
    "vue_js": "Vue.js",
    "vuejs": "Vue.js",
    "constructor_io": "Constructor.io",
    "cloud_flare": "Cloudflare",
    "cloudfront": "Amazon CloudFront",
    "amazon_cloudfront": "Amazon CloudFront",
    "aws": "Amazon Web Services",
    "amazon_web_services": "Amazon Web Services",
    "lets_encrypt": "Let's Encrypt",
    "digicert": "DigiCert SSL",
    "digicert_ssl": "DigiCert SSL",
    "google_apps": "Google Workspace",
    "google_workspace": "Google Workspace",
    "office_365": "Microsoft 365",
    "microsoft_office_365": "Microsoft 365",
    "microsoft_365": "Microsoft 365",
    "onetrust": "OneTrust",
    "recaptcha": "reCAPTCHA",
    "google_fonts": "Google Font API",
    "google_font_api": "Google Font API",
    "youtube": "YouTube",
    "hsts": "HSTS",
    "open_graph": "Open Graph Protocol",
    "open_graph_protocol": "Open Graph Protocol",
    "linkedin_insight_tag": "LinkedIn Insight Tag",
    "mailchimp": "Mailchimp",
    "doubleclick": "DoubleClick",
}

_SLUG_SEPARATORS = re.compile(r"[_\-\s]+")


class Clearbit(Provider):
    """Clearbit Company API (Enrichment), one lookup per domain."""

    name: ClassVar[str] = "clearbit"
    default_base_url: ClassVar[str] = "https://company.clearbit.com"
    default_rps: ClassVar[float] = 10.0  # Clearbit's documented 600 requests per minute
    default_cost_per_call: ClassVar[float] = 0.10
    ttl: ClassVar[timedelta] = timedelta(days=30)
    not_found_ttl: ClassVar[timedelta] = timedelta(days=7)

    def requests_for(self, domain: str) -> list[ProviderRequest]:
        """One GET of the company record for the domain."""
        return [ProviderRequest(COMPANY_ENDPOINT, "GET", COMPANY_PATH, {"domain": domain})]

    def auth(self, api_key: str) -> Auth:
        """Clearbit takes the key as the HTTP Basic user with an empty password."""
        return Auth(basic_user=api_key)

    def interpret(self, request: ProviderRequest, http_status: int, body: Any) -> Interpretation | None:
        """202 queued → pending, 404 → not_found, 422 → error, 402 → stop; others to the policy."""
        message = _error_message(body)
        if http_status == 202:
            return Interpretation("pending", None, "lookup queued by Clearbit; asked again on a later run")
        if http_status == 404:
            return Interpretation("not_found", body, message or "Clearbit has no record for this domain")
        if http_status == 422:
            return Interpretation("error", body, "invalid domain")
        if http_status == 402:
            return Interpretation("auth_failed", None, "HTTP 402: Clearbit plan is over its quota")
        if 200 <= http_status < 300:
            if not isinstance(body, Mapping):
                return Interpretation("parse_error", body, "Clearbit answer is not a JSON object")
            return Interpretation("ok", body)
        return None

    def extract(self, domain: str, payloads: Mapping[str, Any]) -> dict[str, Any]:
        """Standard firmographic, financial and technology fields from a company record."""
        payload = payloads.get(COMPANY_ENDPOINT)
        if not isinstance(payload, Mapping):
            return {}
        return company_fields(payload)


def company_fields(company: Mapping[str, Any]) -> dict[str, Any]:
    """Standard fields (`lib/fields.py`) from one Clearbit company record (no I/O).

    Unknown values are left out rather than set to None, so a merge never lets
    an empty Clearbit field hide another provider's value.
    """
    category = _mapping(company.get("category"))
    metrics = _mapping(company.get("metrics"))
    geo = _mapping(company.get("geo"))
    out: dict[str, Any] = {}

    name = _text(company.get("name")) or _text(company.get("legalName"))
    out["company_name"] = name

    naics = _text(category.get("naicsCode")) or _text(category.get("naics6Code"))
    industry = units.industry_from_naics(naics)
    if industry is None:
        industry = units.industry_from_text(
            _text(category.get("industry")),
            _text(category.get("subIndustry")),
            _text(category.get("industryGroup")),
            _text(category.get("sector")),
        )
    out.update(units.industry_fields(industry))

    employees = _number(metrics.get("employees"))
    if employees is None:
        span = units.count_range(_text(metrics.get("employeesRange")))
        employees = span.mid if span else None
    if employees is not None and employees >= 1:
        out["employees"] = round(employees)
        out["employees_range"] = units.employee_band(employees)

    country = units.country_code(_text(geo.get("countryCode")))
    out["country"] = country or units.country_code(_text(geo.get("country")))
    founded = _number(company.get("foundedYear"))
    out["founded_year"] = int(founded) if founded else None

    exact = _number(metrics.get("annualRevenue"))
    estimate = units.money_range(_text(metrics.get("estimatedAnnualRevenue")))
    if estimate is not None:
        out["revenue_low_usd"] = estimate.low
        out["revenue_high_usd"] = estimate.high
    out["revenue_usd"] = exact if exact is not None else (estimate.mid if estimate else None)

    out["market_cap_usd"] = _number(metrics.get("marketCap"))
    ticker = _text(company.get("ticker"))
    out["ticker"] = ticker
    kind = _text(company.get("type"))
    if ticker or kind:
        out["is_public"] = bool(ticker) or (kind or "").lower() == "public"
    out["total_funding_usd"] = _number(metrics.get("raised"))

    technologies = technology_names(company.get("tech"))
    if technologies:
        out["technologies"] = technologies
    return {k: v for k, v in out.items() if v is not None}


def technology_name(slug: str) -> str:
    """A Clearbit tech slug ("google_analytics") → the display name BuiltWith uses."""
    key = slug.strip().lower()
    known = TECH_NAMES.get(key)
    if known:
        return known
    return " ".join(word.capitalize() for word in _SLUG_SEPARATORS.split(key) if word)


def technology_names(value: Any) -> list[str]:
    """Display names for a ``tech`` list, de-duplicated, in Clearbit's order."""
    names: list[str] = []
    for slug in _array(value):
        if isinstance(slug, str) and slug.strip():
            name = technology_name(slug)
            if name not in names:
                names.append(name)
    return names


def _error_message(body: Any) -> str | None:
    """Clearbit errors look like ``{"error": {"type": ..., "message": ...}}``."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        return _text(error.get("message")) or _text(error.get("type"))
    return _text(error) if isinstance(error, str) else None
