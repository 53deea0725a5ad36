with scores as (
    select * from {{ ref('stg_icp_scores') }}
),

profiles as (
    select * from {{ ref('stg_company_profiles') }}
),

ranked as (
    select
        row_number() over (order by scores.icp_score desc, scores.domain) as rank,
        scores.domain,
        scores.icp_score,
        scores.icp_tier,
        profiles.enrichment_status,
        profiles.monthly_visits,
        profiles.search_vendor,
        profiles.ecommerce_platform,
        scores.score_reasons,
        scores.model_version,
        scores.scored_at
    from scores
    inner join profiles on profiles.domain = scores.domain
)

select * from ranked
