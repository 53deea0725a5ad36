"""The per-version body cache: bounded by bytes, least recently used out, one version at a time."""

from __future__ import annotations

from enrichment_pipeline.api.body_cache import Body, BodyCache


def test_bodies_are_kept_per_version_and_evicted_least_recently_used_first():
    body = Body(b"x" * 300)
    cache = BodyCache(max_bytes=3 * body.size)
    for k in "abc":
        cache.put("v1", k, body)
    assert cache.get("v1", "a") is body  # a is now the most recent
    cache.put("v1", "d", body)
    assert cache.get("v1", "b") is None and cache.get("v1", "a") is body and len(cache) == 3
    assert cache.get("v2", "a") is None  # another version never sees v1's body
    cache.put("v2", "a", Body(b"new"))
    assert len(cache) == 1 and cache.get("v1", "c") is None and cache.get("v2", "a").content == b"new"


def test_a_zero_budget_caches_nothing():
    cache = BodyCache(max_bytes=0)
    cache.put("v1", "a", Body(b"x"))
    assert cache.get("v1", "a") is None and len(cache) == 0
