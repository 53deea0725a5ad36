-- Indexed by domain: the read API asks for one company's rows (GET /v1/companies/{domain}/technologies).
{{ config(indexes=[{'columns': ['domain']}]) }}

with changes as (
    select * from {{ ref('stg_tech_changes') }}
),

companies as (
    select * from {{ ref('dim_company') }}
),

final as (
    select
        changes.tech_change_id,
        changes.domain,
        companies.company_name,
        companies.industry_naics,
        companies.industry_label,
        changes.technology,
        changes.change_type,
        changes.seen_at,
        cast(changes.seen_at at time zone 'UTC' as date) as seen_date,
        changes.provider
    from changes
    inner join companies on companies.domain = changes.domain
)

select * from final
