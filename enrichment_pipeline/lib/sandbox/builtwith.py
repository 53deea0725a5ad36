"""Deterministic BuiltWith simulator: Domain API v22 and Free API answers.

A domain's technology stack is drawn from a catalog of real products with
BuiltWith-style tags and categories, by generators seeded with SHA-256 of the
domain (`shared.seeded`), so the same domain and epoch always get the same
answer. Stack size grows with the size every simulator shares
(`shared.size_quantile`): big sites run more, and more enterprise, tools.

`epoch` is the index run: epoch 1 is indexed at `EPOCH_1`, each later epoch 30
days after the previous. At every epoch >= 2 about 30% of domains swap one
technology for another (often a migration within the same slot, e.g. one site
search vendor for another). A swapped-out technology disappears from later
answers, as with BuiltWith's LIVEONLY=yes, which keeps change detection simple
for tests; technologies already dead before epoch 1 stay listed as dead.

About 1 in 25 domains is unknown to BuiltWith: HTTP 200 with an ``Errors`` entry
of code -10 from the Domain API, and no groups from the Free API.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from enrichment_pipeline.lib.sandbox.shared import company_name, domain_key, seeded, size_quantile

JsonObject = dict[str, Any]

DOMAIN_PATH = "/v22/api.json"
FREE_PATH = "/free1/api.json"
UNKNOWN_ONE_IN = 25
UNKNOWN_CODE = -10
EPOCH_1 = datetime(2026, 9, 1, tzinfo=UTC)
EPOCH_SPACING = timedelta(days=30)
CHANGE_RATE = 0.3
_DAY_MS = 86_400_000


@dataclass(frozen=True)
class CatalogTech:
    """One product BuiltWith can detect, with how likely small and large sites are to run it."""

    name: str
    tag: str
    categories: tuple[str, ...]
    premium: bool
    weight_small: float
    weight_large: float
    site: str  # vendor site, BuiltWith's "Link"
    slot: str  # what it competes with: one CMS, one shop platform, one site search, ...

    def weight(self, size: float) -> float:
        """Popularity for a site of the given size quantile (0 small, 1 large)."""
        return self.weight_small * (1 - size) + self.weight_large * size


_Row = tuple[str, str, tuple[str, ...], bool, float, float, str]
# slot -> (name, tag, categories, premium, weight for small sites, for large sites, vendor site)
_CATALOG_ROWS: dict[str, tuple[_Row, ...]] = {
    "cms": (
        ("WordPress", "cms", ("Open Source", "Blog"), False, 6, 1.5, "wordpress.org"),
        ("Drupal", "cms", ("Open Source",), False, 1.5, 1.5, "drupal.org"),
        ("Adobe Experience Manager", "cms", ("Enterprise",), True, 0.1, 3, "business.adobe.com"),
        ("Contentful", "cms", ("Headless CMS",), True, 0.3, 2, "www.contentful.com"),
        ("Sitecore", "cms", ("Enterprise",), True, 0.1, 2, "www.sitecore.com"),
        ("Webflow", "cms", ("Hosted Solution",), False, 1.5, 0.3, "webflow.com"),
    ),
    "ecommerce": (
        ("Shopify", "shop", ("Hosted Solution",), False, 5, 1, "www.shopify.com"),
        ("Shopify Plus", "shop", ("Enterprise", "Hosted Solution"), True, 0.5, 2.5, "www.shopify.com"),
        ("Magento", "shop", ("Open Source",), False, 1.5, 1.5, "business.adobe.com"),
        ("Salesforce Commerce Cloud", "shop", ("Enterprise",), True, 0.1, 3, "www.salesforce.com"),
        ("BigCommerce", "shop", ("Hosted Solution",), False, 1.5, 0.8, "www.bigcommerce.com"),
        ("WooCommerce", "shop", ("WordPress Plugins", "Open Source"), False, 4, 0.3, "woocommerce.com"),
    ),
    "search": (
        ("Algolia", "widgets", ("Site Search",), True, 1.5, 2, "www.algolia.com"),
        ("Elasticsearch", "widgets", ("Site Search",), False, 1, 1.5, "www.elastic.co"),
        ("Coveo", "widgets", ("Site Search", "Personalization"), True, 0.1, 1.5, "www.coveo.com"),
        ("Bloomreach", "widgets", ("Site Search", "Personalization"), True, 0.2, 1.5, "www.bloomreach.com"),
        ("Constructor.io", "widgets", ("Site Search",), True, 0.2, 1.2, "constructor.io"),
        ("Lucidworks Fusion", "widgets", ("Site Search",), True, 0.1, 1, "lucidworks.com"),
        ("Klevu", "widgets", ("Site Search",), True, 1, 0.4, "www.klevu.com"),
        ("Searchspring", "widgets", ("Site Search",), True, 1, 0.5, "searchspring.com"),
    ),
    "analytics": (
        ("Google Analytics 4", "analytics", ("Analytics",), False, 8, 6, "marketingplatform.google.com"),
        ("Adobe Analytics", "analytics", ("Enterprise", "Analytics"), True, 0.05, 1.2, "business.adobe.com"),
        ("Segment", "analytics", ("Customer Data Platform",), True, 0.2, 1, "segment.com"),
        ("Hotjar", "analytics", ("Heat Maps", "Conversion Optimization"), True, 2, 1, "www.hotjar.com"),
        ("Mixpanel", "analytics", ("Product Analytics",), True, 0.3, 0.8, "mixpanel.com"),
        ("Microsoft Clarity", "analytics", ("Heat Maps",), False, 1.5, 0.5, "clarity.microsoft.com"),
        ("Optimizely", "analytics", ("A/B Testing",), True, 0.05, 0.8, "www.optimizely.com"),
        ("New Relic", "analytics", ("Application Performance",), True, 0.2, 1, "newrelic.com"),
    ),
    "cdn": (
        ("Cloudflare", "cdn", ("Content Delivery Network",), False, 5, 2, "www.cloudflare.com"),
        ("Akamai", "cdn", ("Content Delivery Network",), True, 0.1, 3, "www.akamai.com"),
        ("Fastly", "cdn", ("Content Delivery Network",), True, 0.3, 2, "www.fastly.com"),
        ("Amazon CloudFront", "cdn", ("Content Delivery Network",), True, 1.5, 2, "aws.amazon.com"),
    ),
    "marketing": (
        ("HubSpot", "analytics", ("Marketing Automation", "CRM"), True, 1.5, 1.2, "www.hubspot.com"),
        ("Marketo", "analytics", ("Marketing Automation",), True, 0.1, 1, "business.adobe.com"),
        ("Salesforce Pardot", "analytics", ("Marketing Automation",), True, 0.1, 0.8, "www.salesforce.com"),
        ("Klaviyo", "analytics", ("Marketing Automation", "Email"), True, 1.5, 0.8, "www.klaviyo.com"),
        ("Facebook Pixel", "ads", ("Retargeting / Remarketing",), False, 3, 2.5, "www.facebook.com"),
        ("LinkedIn Insight Tag", "analytics", ("Lead Generation",), False, 0.8, 1.5, "business.linkedin.com"),
    ),
    "payments": (
        ("Stripe", "payment", ("Payments Processor",), False, 3, 1.5, "stripe.com"),
        ("Adyen", "payment", ("Payments Processor",), True, 0.2, 2, "www.adyen.com"),
        ("PayPal", "payment", ("Payments Processor",), False, 3, 2, "www.paypal.com"),
        ("Klarna", "payment", ("Buy Now Pay Later",), False, 1, 1.5, "www.klarna.com"),
        ("Apple Pay", "payment", ("Mobile Payments",), False, 1, 2, "www.apple.com"),
    ),
    "framework": (
        ("React", "javascript", ("JavaScript Library",), False, 2, 3, "react.dev"),
        ("Next.js", "framework", ("JavaScript Framework",), False, 0.8, 2, "nextjs.org"),
        ("Vue.js", "javascript", ("JavaScript Library",), False, 1, 1, "vuejs.org"),
        ("Angular", "javascript", ("JavaScript Framework",), False, 0.3, 1, "angular.dev"),
        ("jQuery", "javascript", ("JavaScript Library",), False, 5, 2, "jquery.com"),
    ),
    "infra": (  # what most sites run besides their platform
        ("Google Tag Manager", "analytics", ("Tag Management",), False, 6, 5, "tagmanager.google.com"),
        ("Nginx", "Web Server", ("Web Server",), False, 3, 2, "nginx.org"),
        ("Apache", "Web Server", ("Web Server",), False, 2, 0.5, "httpd.apache.org"),
        ("Amazon Web Services", "hosting", ("Cloud Hosting", "Cloud PaaS"), False, 2, 3, "aws.amazon.com"),
        ("Google Cloud", "hosting", ("Cloud Hosting", "Cloud PaaS"), False, 1, 1.5, "cloud.google.com"),
        ("Let's Encrypt", "ssl", ("Root Authority",), False, 4, 1, "letsencrypt.org"),
        ("DigiCert SSL", "ssl", ("Root Authority",), False, 0.5, 2.5, "www.digicert.com"),
        ("Google Workspace", "mx", ("Business Email Hosting",), False, 3, 1.5, "workspace.google.com"),
        ("Microsoft 365", "mx", ("Business Email Hosting",), False, 2, 2.5, "www.microsoft.com"),
        ("OneTrust", "widgets", ("Privacy Compliance",), True, 0.3, 2.5, "www.onetrust.com"),
        ("Cookiebot", "widgets", ("Privacy Compliance",), False, 1.5, 0.8, "www.cookiebot.com"),
        ("reCAPTCHA", "widgets", ("CAPTCHA",), False, 2, 1.5, "www.google.com"),
        ("Google Font API", "widgets", ("Fonts",), False, 4, 2, "fonts.google.com"),
        ("Zendesk", "widgets", ("Live Chat", "Ticketing System"), True, 0.5, 1.5, "www.zendesk.com"),
        ("Intercom", "widgets", ("Live Chat",), True, 0.8, 1, "www.intercom.com"),
        ("YouTube", "media", ("Online Video Platform",), False, 2, 2.5, "www.youtube.com"),
        ("Vimeo", "media", ("Online Video Platform",), False, 0.8, 0.8, "vimeo.com"),
        ("HSTS", "docinfo", ("Security",), False, 2, 3, "developer.mozilla.org"),
        ("Open Graph Protocol", "docinfo", ("Social Sharing",), False, 3, 3, "ogp.me"),
    ),
}
CATALOG: tuple[CatalogTech, ...] = tuple(
    CatalogTech(*row, slot=slot) for slot, rows in _CATALOG_ROWS.items() for row in rows
)
_BY_NAME: dict[str, CatalogTech] = {tech.name: tech for tech in CATALOG}


@dataclass(frozen=True)
class SlotCategories:
    """What the other simulated providers call a catalog slot when they report its technologies."""

    clearbit: str  # techCategories
    apollo: str  # current_technologies[].category
    explorium: str  # the technographics category key


SLOT_CATEGORIES: dict[str, SlotCategories] = {
    "cms": SlotCategories("cms", "Content Management Systems", "product_and_design"),
    "ecommerce": SlotCategories("ecommerce", "E-commerce Platforms", "ecommerce"),
    "search": SlotCategories("site_search", "Search Marketing", "product_and_design"),
    "analytics": SlotCategories("analytics", "Analytics and Tracking", "marketing"),
    "cdn": SlotCategories("cdn", "Content Delivery Networks", "platform_and_storage"),
    "marketing": SlotCategories("marketing_automation", "Marketing Automation", "marketing"),
    "payments": SlotCategories("payment", "Payments", "finance_and_accounting"),
    "framework": SlotCategories(
        "web_framework", "Frameworks and Programming Languages", "prog_langs_and_frameworks"
    ),
    "infra": SlotCategories("hosting", "Hosting", "platform_and_storage"),
}
_SLOT_LOCKED = frozenset({"cms", "ecommerce"})  # never swapped between epochs: the site's platform
_VERTICALS = ("Retail", "Technology", "Business And Industrial", "Finance", "Health", "Travel", "Education")
_COUNTRIES = (
    ("US", "New York", "NY", "10001"),
    ("GB", "London", "", "EC1A 1BB"),
    ("DE", "Berlin", "", "10115"),
)
_SUBDOMAINS = ("shop", "blog", "help", "www", "careers")


@dataclass
class StackEntry:
    """One technology on a domain: when BuiltWith first and last saw it (epoch ms)."""

    tech: CatalogTech
    first_ms: int
    last_ms: int
    live: bool
    subdomain: str | None = None  # also seen on this subdomain (de-dup fodder for the parser)


def is_known(domain: str) -> bool:
    """False for about 1 in 25 domains (independent of SimilarWeb's: different salt)."""
    return seeded("builtwith-known", domain_key(domain)).randrange(UNKNOWN_ONE_IN) != 0


def index_time(epoch: int = 1) -> datetime:
    """When the simulated crawl of `epoch` ran (UTC midnight)."""
    if epoch < 1:
        raise ValueError(f"epoch must be >= 1, not {epoch}")
    return EPOCH_1 + EPOCH_SPACING * (epoch - 1)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def technology_stack(domain: str, epoch: int = 1) -> list[StackEntry]:
    """The simulated stack of a known domain at `epoch` (6 to 30 technologies)."""
    key = domain_key(domain)
    stack = _initial_stack(key)
    for e in range(2, epoch + 1):
        _apply_epoch_change(key, stack, e)
    t_ms = _ms(index_time(epoch))
    for entry in stack:
        if entry.live:
            seen = seeded("bw-last-seen", key, entry.tech.name, epoch)
            entry.last_ms = max(entry.first_ms, t_ms - seen.randrange(0, 14) * _DAY_MS)
    return stack


def _pick(rng: random.Random, pool: list[CatalogTech], size: float) -> CatalogTech | None:
    """One weighted draw from `pool`, removed from it so nothing is picked twice."""
    if not pool:
        return None
    choice = rng.choices(pool, weights=[t.weight(size) for t in pool])[0]
    pool.remove(choice)
    return choice


def _initial_stack(key: str) -> list[StackEntry]:
    """Epoch-1 stack: platform slots first (by archetype and size), then common tools up to the target."""
    rng = seeded("bw-stack", key)
    size = size_quantile(key)
    by_slot: dict[str, list[CatalogTech]] = {}
    for tech in CATALOG:
        by_slot.setdefault(tech.slot, []).append(tech)

    ecommerce = rng.random() < 0.45
    chosen: list[CatalogTech] = []

    def take(slot: str, count: int = 1) -> None:
        for _ in range(count):
            tech = _pick(rng, by_slot[slot], size)
            if tech is not None and tech not in chosen:
                chosen.append(tech)

    if ecommerce:
        take("ecommerce")
        if chosen[-1].name == "WooCommerce":
            chosen.append(_BY_NAME["WordPress"])
        elif rng.random() < 0.4:
            take("cms")
    elif rng.random() < 0.9:
        take("cms")
    if rng.random() < min(0.9, 0.2 + 0.5 * size + (0.15 if ecommerce else 0.0)):
        take("search")
    take("analytics", 1 + (size > 0.5))
    if rng.random() < 0.85:
        take("cdn")
    take("marketing", rng.randint(0, 1 + round(size)))
    if ecommerce:
        take("payments", rng.randint(1, 2))
    elif rng.random() < 0.15:
        take("payments")
    take("framework", rng.randint(1, 2))

    target = round(6 + 24 * min(1.0, 0.55 * size + 0.45 * rng.random()))
    filler = [t for slot in ("infra", "analytics", "marketing", "framework") for t in by_slot[slot]]
    while len(chosen) < target:
        tech = _pick(rng, filler, size)
        if tech is None:
            break
        if tech not in chosen:
            chosen.append(tech)
    chosen = chosen[:30]

    t1 = _ms(EPOCH_1)
    stack: list[StackEntry] = []
    for tech in chosen:
        dead = tech.slot in {"infra", "analytics", "marketing", "framework"} and rng.random() < 0.15
        if dead:
            # Dead: last seen well over a year before the crawl (how the provider tells them apart).
            first = t1 - rng.randrange(430, 10 * 365) * _DAY_MS
            last = first + rng.randrange(30, max(31, (t1 - first) // _DAY_MS - 400)) * _DAY_MS
            stack.append(StackEntry(tech, first, last, live=False))
        else:
            first = t1 - rng.randrange(60, 10 * 365) * _DAY_MS
            sub = rng.choice(_SUBDOMAINS) if rng.random() < 0.12 else None
            stack.append(StackEntry(tech, first, t1, live=True, subdomain=sub))
    return stack


def _apply_epoch_change(key: str, stack: list[StackEntry], epoch: int) -> None:
    """For ~30% of domains: drop one live tool and add one (same slot when possible: a migration)."""
    rng = seeded("bw-epoch", key, epoch)
    if rng.random() >= CHANGE_RATE:
        return
    removable = [e for e in stack if e.live and e.tech.slot not in _SLOT_LOCKED]
    if not removable:
        return
    gone = rng.choice(removable)
    present = {e.tech.name for e in stack}
    same_slot = [t for t in CATALOG if t.slot == gone.tech.slot and t.name not in present]
    fallback = [t for t in CATALOG if t.slot in {"infra", "analytics"} and t.name not in present]
    pool = same_slot or fallback
    if not pool:
        return
    added = _pick(rng, pool, size_quantile(key))
    if added is None:
        return
    stack.remove(gone)
    first = _ms(index_time(epoch)) - rng.randrange(1, 25) * _DAY_MS
    stack.append(StackEntry(added, first, first, live=True))


def _technology_json(entry: StackEntry, first_ms: int, last_ms: int) -> JsonObject:
    tech = entry.tech
    return {
        "Categories": list(tech.categories),
        "IsPremium": "yes" if tech.premium else "no",
        "Name": tech.name,
        "Description": f"{tech.name} ({', '.join(tech.categories)}).",
        "Link": f"https://{tech.site}",
        "Tag": tech.tag,
        "FirstDetected": first_ms,
        "LastDetected": last_ms,
    }


def domain_api_response(domain: str, epoch: int = 1) -> tuple[int, JsonObject]:
    """(HTTP status, body) of ``/v22/api.json?LOOKUP=domain`` in BuiltWith's v22 JSON shape."""
    key = domain_key(domain)
    if not is_known(key):
        error = {"Lookup": key, "Message": "No data available for this lookup", "Code": UNKNOWN_CODE}
        return 200, _no_results(error)

    stack = technology_stack(key, epoch)
    rng = seeded("bw-meta", key)
    size = size_quantile(key)
    t_ms = _ms(index_time(epoch))
    first_indexed = min(e.first_ms for e in stack)

    root = [_technology_json(e, e.first_ms, e.last_ms) for e in stack]
    # Real answers also list versions of a technology, with a Parent: an older one,
    # long gone, for some live frameworks (the provider rolls them up into the parent).
    versions = seeded("bw-versions", key)
    for e in stack:
        if e.live and e.tech.slot == "framework" and versions.random() < 0.5:
            old_last = min(e.last_ms, e.first_ms + versions.randrange(30, 200) * _DAY_MS)
            old = _technology_json(e, e.first_ms, old_last)
            old["Name"] = f"{e.tech.name} {versions.randrange(1, 4)}.{versions.randrange(0, 10)}"
            old["Parent"] = e.tech.name
            root.append(old)
    paths: list[JsonObject] = [_path_json(key, "", root, first_indexed, t_ms)]
    for sub in _SUBDOMAINS:
        on_sub = [e for e in stack if e.subdomain == sub]
        if not on_sub:
            continue
        techs = []
        for e in on_sub:
            later = seeded("bw-sub", key, e.tech.name).randrange(0, 180) * _DAY_MS
            first = min(e.first_ms + later, e.last_ms)
            techs.append(_technology_json(e, first, e.last_ms))
        paths.append(_path_json(key, sub, techs, min(t["FirstDetected"] for t in techs), t_ms))

    spend = sum(rng.randrange(50, 200 + int(4000 * size)) for e in stack if e.tech.premium and e.live)
    label = key.split(".")[0]
    country, city, state, postcode = rng.choice(_COUNTRIES)
    ecommerce = any(e.tech.slot == "ecommerce" for e in stack)
    result = {
        "Result": {"IsDB": "True", "Spend": spend, "Paths": paths},
        "Meta": {
            "CompanyName": f"{company_name(key)} {rng.choice(('Inc.', 'Ltd', 'LLC', 'GmbH', 'Group'))}",
            "Vertical": "Retail" if ecommerce else rng.choice(_VERTICALS),
            "Social": [f"https://twitter.com/{label}", f"https://www.linkedin.com/company/{label}"],
            "Telephones": None,
            "Emails": [f"info@{key}"],
            "City": city,
            "State": state or None,
            "Postcode": postcode,
            "Country": country,
            "Names": None,
            "ARank": -1,
            "QRank": round(10 ** (7 - 5 * size)) if size > 0.2 else -1,
        },
        "Attributes": {
            "Employees": round(10 ** (1 + 3.5 * size)),
            "MJRank": round(10 ** (6.5 - 5 * size)),
            "MJTLDRank": round(10 ** (6 - 5 * size)),
            "RefSN": round(10 ** (1 + 4 * size)),
            "RefIP": round(10 ** (1 + 3.5 * size)),
            "Followers": round(10 ** (2 + 4 * size)),
            "Sitemap": round(10 ** (1 + 4 * size)),
            "GTMTags": sum(e.tech.name == "Google Tag Manager" for e in stack),
            "QubitTags": 0,
            "TealiumTags": 0,
            "AdobeTags": sum(e.tech.name.startswith("Adobe") for e in stack),
            "CDimensions": 0,
            "CGoals": 0,
            "CMetrics": 0,
            "ProductCount": round(10 ** (1 + 4 * size)) if ecommerce else 0,
        },
        "FirstIndexed": first_indexed,
        "LastIndexed": t_ms,
        "Lookup": key,
        "SalesRevenue": 0,
    }
    return 200, {"Results": [result], "Errors": [], "Trust": None, "NextOffset": None}


def _no_results(error: JsonObject) -> JsonObject:
    """A Domain API body with no results and one ``Errors`` entry."""
    return {"Results": [], "Errors": [error], "Trust": None, "NextOffset": None}


def _path_json(key: str, sub: str, techs: list[JsonObject], first_ms: int, last_ms: int) -> JsonObject:
    return {
        "FirstIndexed": first_ms,
        "LastIndexed": last_ms,
        "Domain": key,
        "Url": "",
        "SubDomain": sub,
        "Technologies": techs,
    }


def free_api_response(domain: str, epoch: int = 1) -> tuple[int, JsonObject]:
    """(HTTP status, body) of ``/free1/api.json?LOOKUP=domain``: live/dead counts per tag and category.

    Derived from the same stack as the Domain API answer, so both APIs agree.
    Timestamps are epoch seconds, as in the real Free API.
    """
    key = domain_key(domain)
    if not is_known(key):
        return 200, {"domain": key, "first": 0, "last": 0, "groups": []}
    stack = technology_stack(key, epoch)
    groups: dict[str, list[StackEntry]] = {}
    for entry in stack:
        groups.setdefault(entry.tech.tag, []).append(entry)

    def counts(name: str, entries: list[StackEntry]) -> JsonObject:
        return {
            "name": name,
            "live": sum(e.live for e in entries),
            "dead": sum(not e.live for e in entries),
            "latest": max(e.last_ms for e in entries) // 1000,
            "oldest": min(e.first_ms for e in entries) // 1000,
        }

    out = []
    for tag, entries in sorted(groups.items()):
        categories: dict[str, list[StackEntry]] = {}
        for entry in entries:
            for category in entry.tech.categories:
                categories.setdefault(category, []).append(entry)
        group = counts(tag, entries)
        group["categories"] = [counts(name, members) for name, members in sorted(categories.items())]
        out.append(group)
    return 200, {
        "domain": key,
        "first": min(e.first_ms for e in stack) // 1000,
        "last": max(e.last_ms for e in stack) // 1000,
        "groups": out,
    }


def route(request: httpx.Request, *, epoch: int = 1) -> httpx.Response | None:
    """Answer a BuiltWith request; None for a path this simulator does not own.

    A missing key is a 401; other lookup problems are HTTP 200 with ``Errors``, as at BuiltWith.
    """
    path = request.url.path
    if path not in (DOMAIN_PATH, FREE_PATH):
        return None
    if request.method != "GET":
        return httpx.Response(
            405, json={"Errors": [{"Lookup": None, "Message": "Method not allowed", "Code": -1}]}
        )
    params = request.url.params
    lookup = (params.get("LOOKUP") or "").strip()
    if not (params.get("KEY") or "").strip():
        error = {"Lookup": lookup or None, "Message": "API key is missing or invalid", "Code": -4}
        return httpx.Response(401, json=_no_results(error))
    if not lookup:
        error = {"Lookup": None, "Message": "LOOKUP parameter is required", "Code": -3}
        return httpx.Response(200, json=_no_results(error))
    answer = free_api_response if path == FREE_PATH else domain_api_response
    status, body = answer(lookup, epoch)
    return httpx.Response(status, json=body)
