"""The enrichment blueprint for the configured ICP model (GET) or one sent in the body (POST)."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from enrichment_pipeline.api.problems import ApiProblem, problem_doc
from enrichment_pipeline.api.security import read_writer, reader
from enrichment_pipeline.lib import blueprint, settings
from enrichment_pipeline.lib.api_keys import ApiKey
from enrichment_pipeline.lib.domains import InvalidDomain, normalize_domain
from enrichment_pipeline.lib.providers.registry import configured_providers
from enrichment_pipeline.lib.scoring.loader import ModelError, load_model, parse_model
from enrichment_pipeline.lib.scoring.model import IcpModel
from enrichment_pipeline.lib.waterfall import load_waterfall

router = APIRouter(prefix="/v1", tags=["blueprint"])
ERRORS = problem_doc(401, 403, 422, 429, 503)
_CACHE_SIZE = 256


class Blueprint(BaseModel):
    model: dict[str, Any]
    companies_measured: int
    data_points: list[dict[str, Any]]
    domain: dict[str, Any] | None


class BlueprintRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: dict[str, Any] | None = Field(
        None, description="an ICP model (the shape of config/icp_model.yaml), as JSON"
    )
    model_yaml: str | None = Field(None, max_length=200_000, description="the same, as YAML text")
    domain: str | None = Field(None, max_length=2048)


class _Cache:
    """Blueprints by (warehouse version, model hash, domain): recomputed only when the data changes."""

    def __init__(self) -> None:
        self._items: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> dict[str, Any] | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: tuple, value: dict[str, Any]) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > _CACHE_SIZE:
                self._items.popitem(last=False)


def _providers() -> dict[str, blueprint.ProviderFacts]:
    facts = {}
    for provider, provider_settings in configured_providers(settings.enrichment_mode())[0]:
        try:
            calls = max(1, len(provider.requests_for("example.com")))
        except Exception:  # batch-only providers: one call covers the domain
            calls = 1
        facts[provider.name] = blueprint.ProviderFacts(
            provider.name, provider_settings.cost_per_call, calls, provider.ttl / timedelta(days=1)
        )
    return facts


def _profile(session, domain: str, model: IcpModel) -> dict[str, Any] | None:
    rows = session.rows("SELECT * FROM marts.company_profiles WHERE domain = ?", [domain])
    if not rows:
        return None
    profile = rows[0]
    if profile.get("technologies") not in (None, "", "[]"):
        since = datetime.now(UTC) - timedelta(days=model.recent_tech_changes.window_days)
        n = session.rows(
            "SELECT count(*) AS n FROM marts.fct_tech_changes WHERE domain = ? AND seen_at >= ?::TIMESTAMPTZ",
            [domain, since.isoformat()],
        )[0]["n"]
        profile["_recent_tech_changes"] = int(n)
    return profile


def _blueprint(request: Request, model: IcpModel, raw_domain: str | None) -> dict[str, Any]:
    domain = None
    if raw_domain:
        try:
            domain = normalize_domain(raw_domain)
        except InvalidDomain as exc:
            raise ApiProblem("invalid_domain", f"{raw_domain!r}: {exc.reason}", field="domain") from None
    api = request.app.state.api
    cache = api.extras.setdefault("blueprints", _Cache())
    key = (api.source.version(), getattr(model, "_file_hash", None) or model.model_dump_json(), domain)
    hit = cache.get(key)
    if hit is not None:
        return hit
    points = blueprint.data_points(model)
    with api.source.session() as s:
        coverage = blueprint.measured_coverage(s, [(f, p["group"]) for f, p in points.items()])
        profile = _profile(s, domain, model) if domain else None
    doc = blueprint.build(model, load_waterfall(), _providers(), coverage, profile, domain)
    cache.put(key, doc)
    return doc


@router.get(
    "/blueprint",
    response_model=Blueprint,
    responses=ERRORS,
    summary="What to collect for the configured ICP, from which provider, at what cost; gaps for a domain",
)
def get_blueprint(
    request: Request,
    key: ApiKey = Depends(reader),
    domain: Annotated[str | None, Query(max_length=2048, description="any pasted form of a domain")] = None,
) -> dict[str, Any]:
    try:
        model = load_model()
    except ModelError as exc:
        raise ApiProblem("invalid_model", f"the configured ICP_MODEL is not valid: {exc}") from None
    return _blueprint(request, model, domain)


@router.post(
    "/blueprint",
    response_model=Blueprint,
    responses=ERRORS,
    summary="The blueprint for an ICP model sent in the body (validated like ICP_MODEL)",
)
def post_blueprint(
    request: Request, body: BlueprintRequest, key: ApiKey = Depends(read_writer)
) -> dict[str, Any]:
    if (body.model is None) == (body.model_yaml is None):
        raise ApiProblem(
            "validation_error",
            "send exactly one of `model` (JSON) or `model_yaml` (text)",
            errors=[{"field": "body.model", "message": "exactly one of model, model_yaml"}],
        )
    raw = body.model_yaml.encode() if body.model_yaml is not None else json.dumps(body.model).encode()
    try:
        model = parse_model(raw, "body.model_yaml" if body.model_yaml is not None else "body.model")
    except ModelError as exc:
        raise ApiProblem("invalid_model", str(exc), errors=str(exc).splitlines()) from None
    return _blueprint(request, model, body.domain)
