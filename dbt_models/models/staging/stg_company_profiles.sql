with source as (
    select * from {{ source('pipeline_marts', 'company_profiles') }}
),

renamed as (
    select
        domain,
        status as enrichment_status,
        technology_count,
        search_vendor,
        ecommerce_platform,
        cms,
        monthly_visits,
        visits_growth,
        bounce_rate,
        pages_per_visit,
        search_share,
        technologies_source,
        traffic_source,
        mode,
        enriched_at
    from source
)

select * from renamed
