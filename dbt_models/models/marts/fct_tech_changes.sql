-- Indexed by domain on PostgreSQL: the read API asks for one company's rows
-- (GET /v1/companies/{domain}/technologies). Not on DuckDB: the API reads the serving snapshot
-- there, and dbt-duckdb's index step fails when a rebuild swaps the table for its backup.
{{ config(indexes=([{'columns': ['domain']}] if target.type == 'postgres' else [])) }}

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
