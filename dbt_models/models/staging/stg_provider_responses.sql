with source as (
    select * from {{ source('pipeline_raw', 'provider_responses') }}
),

renamed as (
    select
        {{ surrogate_key(['provider', 'endpoint', 'domain']) }} as response_id,
        provider,
        endpoint,
        domain,
        status,
        status in ('ok', 'not_found') as is_answered,
        http_status,
        attempts,
        latency_ms,
        wait_ms,
        cost_usd,
        fetched_at,
        expires_at,
        mode,
        run_id
    from source
)

select * from renamed
