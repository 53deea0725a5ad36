with source as (
    select * from {{ source('pipeline_marts', 'tech_changes') }}
),

renamed as (
    select
        {{ surrogate_key(['domain', 'technology', 'provider', 'change', 'seen_at']) }} as tech_change_id,
        domain,
        technology,
        change as change_type,
        seen_at,
        provider
    from source
)

select * from renamed
