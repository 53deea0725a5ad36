with source as (
    select * from {{ source('pipeline_marts', 'company_profiles') }}
),

renamed as (
    select
        domain,
        domain_unicode,

        -- firmographics
        company_name,
        industry_naics,
        industry_label,
        employees,
        employees_range,
        country,
        founded_year,

        -- financials
        revenue_usd,
        revenue_low_usd,
        revenue_high_usd,
        revenue_growth,
        gross_margin,
        operating_margin,
        market_cap_usd,
        ticker,
        is_public,
        total_funding_usd,

        -- technologies (the list itself is JSON text: fct_company_technology has one row per item)
        technologies as technologies_json,
        technology_count,
        search_vendor,
        ecommerce_platform,
        cms,

        -- traffic
        monthly_visits,
        visits_growth,
        bounce_rate,
        pages_per_visit,
        avg_visit_duration_s,
        global_rank,
        search_share,
        direct_share,

        -- provenance and confidence
        firmographics_source,
        financials_source,
        technologies_source,
        traffic_source,
        field_sources as field_sources_json,
        employees_confidence,
        revenue_usd_confidence,
        industry_naics_confidence,
        technologies_confidence,
        profile_confidence,
        disagreements as disagreements_json,
        provider_statuses as provider_statuses_json,

        status as enrichment_status,
        mode,
        enriched_at
    from source
)

select * from renamed
