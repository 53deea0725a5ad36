-- Technology x NAICS sector: how many companies of the sector run the technology now,
-- and what share of the sector (all companies, and those with a known stack) that is.
with companies as (
    select
        domain,
        coalesce(industry_naics, 'unknown') as industry_naics,
        industry_label,
        technologies_source is not null as has_stack
    from {{ ref('dim_company') }}
),

current_usage as (
    select domain, technology
    from {{ ref('fct_company_technology') }}
    where is_current
),

sectors as (
    select
        industry_naics,
        min(industry_label) as industry_label,
        count(*) as sector_companies,
        count(case when has_stack then 1 end) as sector_companies_with_stack
    from companies
    group by industry_naics
),

adoption as (
    select
        companies.industry_naics,
        current_usage.technology,
        count(distinct current_usage.domain) as companies_using
    from current_usage
    inner join companies on companies.domain = current_usage.domain
    group by companies.industry_naics, current_usage.technology
),

final as (
    select
        {{ surrogate_key(['adoption.technology', 'adoption.industry_naics']) }} as technology_industry_id,
        adoption.technology,
        adoption.industry_naics,
        sectors.industry_label,
        adoption.companies_using,
        sectors.sector_companies,
        sectors.sector_companies_with_stack,
        {{ safe_ratio('adoption.companies_using', 'sectors.sector_companies') }} as share_of_sector,
        {{ safe_ratio('adoption.companies_using', 'sectors.sector_companies_with_stack') }}
            as share_of_sector_with_stack
    from adoption
    inner join sectors on sectors.industry_naics = adoption.industry_naics
)

select * from final
