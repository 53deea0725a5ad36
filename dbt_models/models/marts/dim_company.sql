with profiles as (
    select * from {{ ref('stg_company_profiles') }}
),

scores as (
    select * from {{ ref('stg_icp_scores') }}
),

final as (
    select
        profiles.domain,
        profiles.domain_unicode,
        profiles.company_name,
        profiles.industry_naics,
        profiles.industry_label,
        profiles.employees,
        profiles.employees_range,
        profiles.country,
        profiles.founded_year,
        profiles.revenue_usd,
        profiles.revenue_low_usd,
        profiles.revenue_high_usd,
        profiles.revenue_growth,
        profiles.gross_margin,
        profiles.operating_margin,
        profiles.market_cap_usd,
        profiles.ticker,
        profiles.is_public,
        profiles.total_funding_usd,
        profiles.technology_count,
        profiles.search_vendor,
        profiles.ecommerce_platform,
        profiles.cms,
        profiles.monthly_visits,
        profiles.visits_growth,
        profiles.bounce_rate,
        profiles.pages_per_visit,
        profiles.avg_visit_duration_s,
        profiles.global_rank,
        profiles.search_share,
        profiles.direct_share,
        profiles.firmographics_source,
        profiles.financials_source,
        profiles.technologies_source,
        profiles.traffic_source,
        profiles.employees_confidence,
        profiles.revenue_usd_confidence,
        profiles.industry_naics_confidence,
        profiles.technologies_confidence,
        profiles.profile_confidence,
        profiles.enrichment_status,
        scores.icp_score,
        scores.icp_tier,
        scores.is_disqualified,
        scores.disqualification_reason,
        scores.model_version as icp_model_version,
        profiles.mode,
        profiles.enriched_at,
        scores.scored_at
    from profiles
    left join scores on scores.domain = profiles.domain
)

select * from final
