"""The read API: a FastAPI face over `lib/` (companies, scores, stats, enrichments, blueprint)."""
