with source as (
    select * from {{ source('pipeline_staging', 'builtwith_technologies') }}
),

renamed as (
    select
        {{ surrogate_key(['domain', 'technology']) }} as company_technology_id,
        domain,
        technology,
        tag as technology_tag,
        is_premium,
        first_detected,
        last_detected,
        provider,
        observed_at
    from source
    -- BuiltWith also lists technologies it no longer detects (is_live false):
    -- those live in the technology history, never in the current stack.
    where coalesce(is_live, true)
)

select * from renamed
