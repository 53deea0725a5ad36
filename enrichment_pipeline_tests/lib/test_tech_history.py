"""Technology history: dead BuiltWith technologies enter it as closed rows, never the stack."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from enrichment_pipeline.lib import tech_history

T0 = datetime(2026, 9, 1, tzinfo=UTC)
OLD_FIRST = datetime(2018, 1, 1, tzinfo=UTC)
OLD_LAST = datetime(2019, 4, 11, tzinfo=UTC)


def _stack(*rows: tuple[str, datetime, datetime]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "domain": "a.com",
                "technology": name,
                "provider": "builtwith",
                "observed_at": T0,
                "first_detected": first,
                "last_detected": last,
            }
            for name, first, last in rows
        ]
    )


def test_dead_technologies_are_closed_rows_ending_at_their_last_detection() -> None:
    empty = pl.DataFrame(schema=tech_history.HISTORY_SCHEMA)
    snapshots = pl.DataFrame(schema=tech_history.SNAPSHOTS_SCHEMA)
    history, snapshots = tech_history.advance(empty, snapshots, _stack(("Shopify", OLD_FIRST, T0)))
    history = tech_history.record_ended(history, _stack(("Algolia", OLD_FIRST, OLD_LAST)))

    rows = {r["technology"]: r for r in history.iter_rows(named=True)}
    assert rows["Shopify"]["valid_to"] is None
    assert (rows["Algolia"]["valid_from"], rows["Algolia"]["valid_to"]) == (OLD_FIRST, OLD_LAST)
    changes = tech_history.changes(history)
    assert changes.select("technology", "change").to_dicts() == [
        {"technology": "Algolia", "change": "removed"}
    ]
    # Idempotent: recording the same dead technology again adds nothing.
    assert tech_history.record_ended(history, _stack(("Algolia", OLD_FIRST, OLD_LAST))).height == 2
    assert tech_history.record_ended(history, _stack()[:0]).height == 2
