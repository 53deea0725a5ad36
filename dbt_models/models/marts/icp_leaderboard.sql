with scores as (
    select * from {{ ref('stg_icp_scores') }}
),

companies as (
    select * from {{ ref('dim_company') }}
),

ranked as (
    select
        row_number() over (order by scores.icp_score desc, scores.domain) as rank,
        scores.domain,
        companies.domain_unicode,
        companies.company_name,
        scores.icp_score,
        scores.icp_tier,
        scores.is_disqualified,
        scores.disqualification_reason,
        scores.budget_signal,
        scores.pain_signal,
        scores.timing_signal,
        companies.industry_naics,
        companies.industry_label,
        companies.country,
        companies.employees,
        companies.employees_range,
        companies.revenue_usd,
        companies.is_public,
        companies.ticker,
        companies.monthly_visits,
        companies.search_vendor,
        companies.ecommerce_platform,
        companies.cms,
        companies.profile_confidence,
        companies.enrichment_status,
        scores.score_reasons_json as score_reasons,
        scores.model_version,
        scores.scored_at
    from scores
    inner join companies on companies.domain = scores.domain
)

select * from ranked
