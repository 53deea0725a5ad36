"""Domain partitions: their name, and how a set of keys splits into runs."""

from __future__ import annotations

from collections.abc import Sequence

DOMAINS_PARTITIONS = "domains"


def contiguous_ranges(ordered_keys: Sequence[str], wanted: Sequence[str]) -> list[tuple[str, str]]:
    """Split the wanted partition keys into runs of neighbours in the partition order.

    Dagster runs one partition *range* per run; new domains are appended, so a
    typical request is a single range.
    """
    position = {key: i for i, key in enumerate(ordered_keys)}
    indices = sorted(position[k] for k in set(wanted))
    ranges: list[tuple[str, str]] = []
    for i in indices:
        if ranges and position[ranges[-1][1]] == i - 1:
            ranges[-1] = (ranges[-1][0], ordered_keys[i])
        else:
            ranges.append((ordered_keys[i], ordered_keys[i]))
    return ranges


# Run tags: where a run came from; the read API's job id (its worker rebuilds the marts itself).
SOURCE_TAG = "enrichment/source"
API_JOB_TAG = "enrichment/api_job"
