"""Response and request bodies, as the OpenAPI document shows them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Tier = Literal["hot", "warm", "cool", "cold"]
Status = Literal["enriched", "partial", "failed", "not_found"]


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready", "unavailable"]
    source: str
    detail: str | None = None


class Score(BaseModel):
    icp_score: float
    icp_tier: str
    breakdown: dict[str, Any]
    reasons: list[Any]
    disqualified: bool
    disqualification_reason: str | None
    signals: dict[str, float | None]
    model_version: str | None
    scored_at: str | None


class FieldSource(BaseModel):
    provider: str | None
    observed_at: str | None


class Sources(BaseModel):
    groups: dict[str, str | None] = Field(description="provider that gave each field group")
    fields: dict[str, FieldSource] = Field(description="provider and observation time of each field")


class Freshness(BaseModel):
    enriched_at: str | None
    age_seconds: int | None
    scored_at: str | None


class Company(BaseModel):
    domain: str
    company_name: str | None
    status: str | None
    mode: str | None
    firmographics: dict[str, Any]
    financials: dict[str, Any]
    traffic: dict[str, Any]
    technographics: dict[str, Any]
    score: Score | None
    sources: Sources
    confidence: dict[str, float | None]
    disagreements: Any
    provider_statuses: Any
    freshness: Freshness


class CompanySummary(BaseModel):
    model_config = ConfigDict(extra="allow")
    domain: str
    company_name: str | None
    icp_score: float | None
    icp_tier: str | None
    status: str | None
    industry_naics: str | None
    industry_label: str | None
    country: str | None
    employees: int | None
    revenue_usd: float | None
    monthly_visits: float | None
    search_vendor: str | None
    ecommerce_platform: str | None
    enriched_at: str | None
    score_reasons: list[Any]


class CompanyPage(BaseModel):
    items: list[CompanySummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")
    limit: int
    sort: str


class TechnologyRow(BaseModel):
    model_config = ConfigDict(extra="allow")
    technology: str
    technology_tag: str | None
    is_premium: bool | None
    first_detected: str | None
    last_detected: str | None
    first_seen_at: str | None
    removed_at: str | None
    is_current: bool | None
    times_adopted: int | None


class TechChange(BaseModel):
    technology: str
    change_type: str
    seen_at: str | None
    provider: str | None


class Technologies(BaseModel):
    domain: str
    current: list[TechnologyRow]
    history: list[TechnologyRow]
    changes: list[TechChange]


class Stats(BaseModel):
    companies: int
    by_tier: dict[str, int]
    by_status: dict[str, int]
    providers: list[dict[str, Any]]
    freshness: dict[str, str | None]
