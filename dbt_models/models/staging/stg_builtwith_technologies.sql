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
)

select * from renamed
