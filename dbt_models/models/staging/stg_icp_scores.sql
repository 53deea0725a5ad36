with source as (
    select * from {{ source('pipeline_marts', 'icp_scores') }}
),

renamed as (
    select
        domain,
        icp_score,
        icp_tier,
        disqualified as is_disqualified,
        disqualification_reason,
        score_breakdown as score_breakdown_json,
        score_reasons as score_reasons_json,
        budget_signal,
        pain_signal,
        timing_signal,
        model_version,
        model_hash,
        scored_at
    from source
)

select * from renamed
