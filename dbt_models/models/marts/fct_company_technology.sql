-- Indexed by domain on PostgreSQL: the read API asks for one company's rows
-- (GET /v1/companies/{domain}/technologies). Not on DuckDB: the API reads the serving snapshot
-- there, and dbt-duckdb's index step fails when a rebuild swaps the table for its backup.
{{ config(indexes=([{'columns': ['domain']}] if target.type == 'postgres' else [])) }}

-- One row per company x technology ever seen: BuiltWith's first/last detected dates,
-- when the pipeline first saw it, when it disappeared, and whether it is in the current stack.
with history as (
    select * from {{ ref('stg_technology_history') }}
),

current_stack as (
    select * from {{ ref('stg_builtwith_technologies') }}
),

companies as (
    select domain from {{ ref('dim_company') }}
),

spans as (
    select
        domain,
        technology,
        min(valid_from) as first_seen_at,
        max(valid_to) as last_removed_at,
        max(case when is_current then 1 else 0 end) as has_open_span,
        count(*) as span_count,
        min(first_detected) as first_detected,
        max(last_detected) as last_detected
    from history
    group by domain, technology
),

pairs as (
    select domain, technology from spans
    union
    select domain, technology from current_stack
),

final as (
    select
        {{ surrogate_key(['pairs.domain', 'pairs.technology']) }} as company_technology_id,
        pairs.domain,
        pairs.technology,
        current_stack.technology_tag,
        current_stack.is_premium,
        coalesce(current_stack.first_detected, spans.first_detected) as first_detected,
        coalesce(current_stack.last_detected, spans.last_detected) as last_detected,
        coalesce(spans.first_seen_at, current_stack.observed_at) as first_seen_at,
        case
            when current_stack.domain is not null or spans.has_open_span = 1 then null
            else spans.last_removed_at
        end as removed_at,
        (current_stack.domain is not null or coalesce(spans.has_open_span, 0) = 1) as is_current,
        coalesce(spans.span_count, 1) as times_adopted
    from pairs
    inner join companies on companies.domain = pairs.domain
    left join spans
        on spans.domain = pairs.domain and spans.technology = pairs.technology
    left join current_stack
        on current_stack.domain = pairs.domain and current_stack.technology = pairs.technology
)

select * from final
