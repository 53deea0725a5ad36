with source as (
    select * from {{ source('pipeline_staging', 'technology_history') }}
),

renamed as (
    select
        {{ surrogate_key(['domain', 'technology', 'provider', 'valid_from']) }} as technology_span_id,
        domain,
        technology,
        provider,
        valid_from,
        valid_to,
        valid_to is null as is_current,
        first_detected,
        last_detected,
        baseline as is_baseline
    from source
)

select * from renamed
