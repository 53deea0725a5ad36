-- Per provider and mode: which domains it was asked about, how they were answered, what it cost.
-- Rows of raw.provider_responses are the latest stored answer per endpoint and domain, so the
-- costs are those of the stored answers (each run's own cost is in its Dagster metadata).
with responses as (
    select * from {{ ref('stg_provider_responses') }}
),

per_domain as (
    -- One row per provider x mode x domain: did any endpoint answer, did any have data.
    select
        provider,
        mode,
        domain,
        max(case when status = 'ok' then 1 else 0 end) as has_data,
        max(case when is_answered then 1 else 0 end) as answered,
        min(case when status = 'skipped' then 1 else 0 end) as skipped
    from responses
    group by provider, mode, domain
),

domains as (
    select
        provider,
        mode,
        count(*) as domains_requested,
        count(case when answered = 1 then 1 end) as domains_answered,
        count(case when has_data = 1 then 1 end) as domains_with_data,
        count(case when answered = 1 and has_data = 0 then 1 end) as domains_not_found,
        count(case when answered = 0 and skipped = 0 then 1 end) as domains_unanswered,
        count(case when skipped = 1 then 1 end) as domains_skipped
    from per_domain
    group by provider, mode
),

calls as (
    select
        provider,
        mode,
        count(*) as responses,
        count(case when status <> 'skipped' then 1 end) as calls,
        cast(coalesce(sum(attempts), 0) as bigint) as attempts,
        count(case when status = 'ok' then 1 end) as status_ok,
        count(case when status = 'not_found' then 1 end) as status_not_found,
        count(case when status in ('rate_limited', 'quota_exhausted') then 1 end) as status_throttled,
        count(case when status in ('error', 'parse_error', 'provider_unavailable', 'auth_failed') then 1 end)
            as status_failed,
        count(case when status = 'pending' then 1 end) as status_pending,
        count(case when status = 'skipped' then 1 end) as status_skipped,
        sum(cost_usd) as cost_usd,
        avg(case when attempts > 0 then latency_ms end) as avg_latency_ms,
        avg(case when attempts > 0 then wait_ms end) as avg_wait_ms,
        min(fetched_at) as first_fetched_at,
        max(fetched_at) as last_fetched_at
    from responses
    group by provider, mode
),

final as (
    select
        {{ surrogate_key(['calls.provider', 'calls.mode']) }} as provider_mode_id,
        calls.provider,
        calls.mode,
        domains.domains_requested,
        domains.domains_answered,
        domains.domains_with_data,
        domains.domains_not_found,
        domains.domains_unanswered,
        domains.domains_skipped,
        {{ safe_ratio('domains.domains_answered', 'domains.domains_requested') }} as answered_share,
        {{ safe_ratio('domains.domains_with_data', 'domains.domains_requested') }} as data_share,
        calls.responses,
        calls.calls,
        calls.attempts,
        {{ safe_ratio('calls.attempts', 'calls.calls') }} as attempts_per_call,
        {{ safe_ratio('calls.status_ok', 'calls.responses') }} as share_ok,
        {{ safe_ratio('calls.status_not_found', 'calls.responses') }} as share_not_found,
        {{ safe_ratio('calls.status_throttled', 'calls.responses') }} as share_throttled,
        {{ safe_ratio('calls.status_failed', 'calls.responses') }} as share_failed,
        {{ safe_ratio('calls.status_pending', 'calls.responses') }} as share_pending,
        {{ safe_ratio('calls.status_skipped', 'calls.responses') }} as share_skipped,
        calls.cost_usd,
        {{ safe_ratio('calls.cost_usd', 'domains.domains_with_data') }} as cost_per_domain_with_data_usd,
        calls.avg_latency_ms,
        calls.avg_wait_ms,
        calls.first_fetched_at,
        calls.last_fetched_at
    from calls
    inner join domains on domains.provider = calls.provider and domains.mode = calls.mode
)

select * from final
