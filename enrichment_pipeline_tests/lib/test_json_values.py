"""`lib/json_values.py`: the one way provider modules read loosely typed JSON values."""

from __future__ import annotations

from typing import Any

import pytest

from enrichment_pipeline.lib.json_values import array, host, mapping, number, text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (" Acme ", "Acme"),
        (42, "42"),
        (2.5, "2.5"),
        ("", None),
        ("   ", None),
        (True, None),
        (None, None),
        (["x"], None),
        ({"name": "x"}, None),
    ],
)
def test_text(value: Any, expected: str | None) -> None:
    assert text(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3.0), ("2.5", 2.5), ("n/a", None), (float("nan"), None), (10**400, None), (False, None)],
)
def test_number(value: Any, expected: float | None) -> None:
    assert number(value) == expected


def test_containers_default_to_empty() -> None:
    assert mapping({"a": 1}) == {"a": 1} and mapping([1]) == {}
    assert array([1]) == [1] and array({"a": 1}) == [] and array(None) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://Investor.Example.com/path?q=1", "investor.example.com"),
        ("www.example.com:8080", "www.example.com"),
        ("example.com.", "example.com"),
        ("  ", None),
        (None, None),
        ("https://", None),
    ],
)
def test_host(value: Any, expected: str | None) -> None:
    assert host(value) == expected
