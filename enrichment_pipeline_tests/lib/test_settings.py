"""`lib/settings.py`: the one rule every numeric environment variable is read by."""

from __future__ import annotations

import pytest

from enrichment_pipeline.lib.settings import SettingsError, env_float, env_int


def test_unset_or_blank_gives_the_default() -> None:
    assert env_int({}, "N", None) is None
    assert env_int({"N": "  "}, "N", 7) == 7
    assert env_float({}, "X", 0.5) == 0.5


def test_values_are_read_with_spaces_around() -> None:
    assert env_int({"N": " 12 "}, "N", 0) == 12
    assert env_float({"X": "2.5"}, "X", 0.0) == 2.5
    assert env_float({"X": "3"}, "X", 0.0) == 3.0


@pytest.mark.parametrize(
    ("read", "raw", "message"),
    [
        (env_int, "1.5", "N must be a whole number, not '1.5'"),
        (env_int, "-2", "N must not be negative, not '-2'"),
        (env_float, "fast", "N must be a number, not 'fast'"),
        (env_float, "-0.1", "N must not be negative, not '-0.1'"),
        (env_float, "nan", "N must be a number, not 'nan'"),
        (env_float, "inf", "N must be a number, not 'inf'"),
    ],
)
def test_junk_and_negatives_are_an_error_naming_the_variable(read: object, raw: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        read({"N": raw}, "N", 0)  # type: ignore[operator]
    assert str(caught.value) == message
