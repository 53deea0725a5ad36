with source as (
    select * from {{ source('pipeline_marts', 'icp_scores') }}
),

renamed as (
    select
        domain,
        icp_score,
        icp_tier,
        score_reasons,
        budget_signal,
        pain_signal,
        timing_signal,
        model_version,
        scored_at
    from source
)

select * from renamed
