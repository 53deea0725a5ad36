"""The ICP model's schema: what a model file may say, validated as pydantic models.

A model is criteria grouped in families (budget, pain, timing, fit), each of one kind —

- `field` + `bands`: points by the range a numeric profile field falls in;
- `technologies_any`: points when the site runs any listed technology;
- `technologies_none`: points when the site's stack is known and runs none of
  them (e.g. no site-search vendor at all: greenfield);
- `industries`: points for a NAICS sector in the list;
- `countries`: points for an ISO 3166-1 alpha-2 country in the list —

plus hard disqualifiers (a numeric range, excluded industries, excluded
countries) and tier thresholds.

Every rule raises `EntryProblem` with the path of the bad entry below the object
being validated; the loader (`loader.py`) turns those into `file:line: path` messages.
"""

from __future__ import annotations

import itertools
import re
import typing
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictStr,
    model_validator,
)

from enrichment_pipeline.lib.profiles import PROFILE_SCHEMA
from enrichment_pipeline.lib.units import NAICS_SECTORS

Family = Literal["budget", "pain", "timing", "fit"]
ValueFormat = Literal["int", "pct", "signed_pct", "float1", "usd", "raw"]
FAMILIES: tuple[str, ...] = typing.get_args(Family)
RECENT_TECH_CHANGES = "recent_tech_changes"
# Numeric profile columns, plus the count of recent technology changes the scoring asset joins on.
NUMERIC_FIELDS: tuple[str, ...] = (
    *(name for name, dtype in PROFILE_SCHEMA.items() if dtype.is_numeric()),
    RECENT_TECH_CHANGES,
)
CRITERION_KINDS = ("bands", "technologies_any", "technologies_none", "industries", "countries")
DISQUALIFIER_KINDS = ("field", "industries", "countries")
# The placeholders a reason may use, per kind.
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "bands": ("value",),
    "field": ("value",),
    "technologies_any": ("matched",),
    "technologies_none": (),
    "industries": ("value", "code"),
    "countries": ("value",),
}


class EntryProblem(ValueError):
    """A problem at `path` below the object being validated (so the error names the exact entry)."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


def _code_text(value: Any) -> Any:
    """NAICS codes may be written unquoted (`51`): YAML reads them as numbers."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# Numbers must be numbers (not "5", not true), finite.
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Points = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
Threshold = Annotated[float, Field(strict=True, gt=0, le=100, allow_inf_nan=False)]
Text = Annotated[StrictStr, Field(min_length=1)]
Identifier = Annotated[StrictStr, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]
Code = Annotated[StrictStr, BeforeValidator(_code_text)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _OneKind(_Strict):
    """An entry that is exactly one of `KINDS`, told apart by which of those keys it sets."""

    KINDS: ClassVar[tuple[str, ...]]
    NOUN: ClassVar[str]

    @property
    def kind(self) -> str:
        return next(k for k in self.KINDS if getattr(self, k) is not None)

    def _single_kind(self) -> str:
        """The one kind set; a problem at the second key when two are set, or when none is."""
        kinds = [k for k in self.KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = f" (found {' and '.join(kinds)})" if kinds else ""
            raise EntryProblem(
                (kinds[1],) if len(kinds) > 1 else (),
                f"a {self.NOUN} needs exactly one of {', '.join(self.KINDS)}{found}",
            )
        return kinds[0]


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _range_text(low: float | None, high: float | None) -> str:
    return f"[{'-inf' if low is None else _num(low)}, {'inf' if high is None else _num(high)})"


def _check_placeholders(text: str, kind: str, path: tuple[str | int, ...]) -> None:
    allowed = PLACEHOLDERS[kind]
    for name in re.findall(r"\{(\w*)\}", text):
        if name not in allowed:
            can = ", ".join(f"{{{a}}}" for a in allowed) or "no placeholders"
            raise EntryProblem(
                path, f"unknown placeholder {{{name}}} in reason; a {kind} entry can use {can}"
            )


def _check_list(values: Sequence[str], key: str) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise EntryProblem((key, i), f"{value!r} is listed twice")
        seen.add(value)
        if key == "industries" and value not in NAICS_SECTORS:
            hint = next((s for s in NAICS_SECTORS if "-" in s and s[:2] <= value <= s[3:]), None)
            more = f" (did you mean {hint!r}?)" if hint else ""
            raise EntryProblem(
                (key, i),
                f"unknown NAICS sector code {value!r}{more}; known: {', '.join(NAICS_SECTORS)}",
            )
        if key == "countries" and not re.fullmatch(r"[A-Z]{2}", value):
            raise EntryProblem(
                (key, i), f"country codes are ISO 3166-1 alpha-2 in upper case, like 'US' (got {value!r})"
            )


def _check_field(field: str | None) -> None:
    if field is None:
        raise EntryProblem((), "a numeric criterion or disqualifier needs `field`")
    if field not in NUMERIC_FIELDS:
        raise EntryProblem(
            ("field",), f"unknown field {field!r}; known numeric fields: {', '.join(NUMERIC_FIELDS)}"
        )


class Band(_Strict):
    """Points for values in [min, max): min included, max excluded; a missing bound is open."""

    min: Number | None = None
    max: Number | None = None
    points: Points
    reason: Text

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise EntryProblem(("min",), f"band min {_num(self.min)} must be below max {_num(self.max)}")
        _check_placeholders(self.reason, "bands", ("reason",))
        return self


class Criterion(_OneKind):
    KINDS = CRITERION_KINDS
    NOUN = "criterion"

    id: Identifier
    family: Family
    description: str | None = None
    field: str | None = None
    format: ValueFormat = "raw"
    bands: list[Band] | None = Field(default=None, min_length=1)
    technologies_any: list[Text] | None = Field(default=None, min_length=1)
    technologies_none: list[Text] | None = Field(default=None, min_length=1)
    industries: list[Code] | None = Field(default=None, min_length=1)
    countries: list[Code] | None = Field(default=None, min_length=1)
    points: Points | None = None
    reason: Text | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Criterion:
        kind = self._single_kind()
        if self.bands is not None:
            _check_field(self.field)
            for key in ("points", "reason"):
                if getattr(self, key) is not None:
                    raise EntryProblem((key,), f"`{key}` of a `bands` criterion goes on each band")
            ordered = sorted(
                enumerate(self.bands), key=lambda ib: float("-inf") if ib[1].min is None else ib[1].min
            )
            for (i, low), (j, high) in itertools.pairwise(ordered):
                low_max = float("inf") if low.max is None else low.max
                if high.min is None or high.min < low_max:
                    (first, a), (later, b) = sorted([(i, low), (j, high)], key=lambda ib: ib[0])
                    raise EntryProblem(
                        ("bands", later),
                        f"overlapping bands: {_range_text(b.min, b.max)} overlaps "
                        f"bands[{first}] {_range_text(a.min, a.max)} of {self.id!r}",
                    )
            return self
        for key in ("field", "format"):
            if key in self.model_fields_set:
                raise EntryProblem((key,), f"`{key}` is only for `bands` criteria")
        if self.points is None or self.reason is None:
            raise EntryProblem((), f"a {kind} criterion needs `points` and `reason`")
        _check_list(getattr(self, kind), kind)
        _check_placeholders(self.reason, kind, ("reason",))
        return self

    @property
    def max_points(self) -> float:
        return max(b.points for b in self.bands) if self.bands else float(self.points or 0)


class Disqualifier(_OneKind):
    """Disqualifies a company whose `field` lies in [min, max) (the same rule as bands), whose
    NAICS sector is in `industries` or whose country is in `countries`. Unknown never disqualifies."""

    KINDS = DISQUALIFIER_KINDS
    NOUN = "disqualifier"

    id: Identifier
    description: str | None = None
    field: str | None = None
    format: ValueFormat = "raw"
    min: Number | None = None
    max: Number | None = None
    industries: list[Code] | None = Field(default=None, min_length=1)
    countries: list[Code] | None = Field(default=None, min_length=1)
    reason: Text

    @model_validator(mode="after")
    def _checked(self) -> Disqualifier:
        kind = self._single_kind()
        if kind == "field":
            _check_field(self.field)
            if self.min is None and self.max is None:
                raise EntryProblem((), f"disqualifier {self.id!r} needs `min`, `max` or both")
            if self.min is not None and self.max is not None and self.min >= self.max:
                raise EntryProblem(
                    ("min",),
                    f"disqualifier {self.id!r}: min {_num(self.min)} must be below max {_num(self.max)}",
                )
        else:
            for key in ("min", "max", "format"):
                if key in self.model_fields_set:
                    raise EntryProblem((key,), f"`{key}` is only for `field` disqualifiers")
            _check_list(getattr(self, kind), kind)
        _check_placeholders(self.reason, kind, ("reason",))
        return self


class Tiers(_Strict):
    """The lowest score of each tier; below `cool` is `cold`."""

    hot: Threshold
    warm: Threshold
    cool: Threshold

    @model_validator(mode="after")
    def _descending(self) -> Tiers:
        if not self.hot > self.warm > self.cool:
            where = "hot" if self.hot <= self.warm else "cool"
            raise EntryProblem(
                (where,),
                f"tier thresholds must satisfy hot > warm > cool "
                f"(got hot {_num(self.hot)}, warm {_num(self.warm)}, cool {_num(self.cool)})",
            )
        return self


class TechChangeWindow(_Strict):
    """How `recent_tech_changes` is counted from marts.tech_changes."""

    window_days: Annotated[int, Field(strict=True, gt=0, le=3650)] = 90
    changes: list[Literal["added", "removed"]] = Field(default=["added", "removed"], min_length=1)


class IcpModel(_Strict):
    version: Text
    name: Text
    description: str | None = None
    tiers: Tiers
    recent_tech_changes: TechChangeWindow = TechChangeWindow()
    criteria: list[Criterion] = Field(min_length=1)
    disqualifiers: list[Disqualifier] = []
    _file_hash: str = PrivateAttr(default="")

    @property
    def file_hash(self) -> str:
        """First 16 hex digits of the SHA-256 of the model file's bytes ("" if not loaded from a file)."""
        return self._file_hash

    @model_validator(mode="after")
    def _consistent(self) -> IcpModel:
        seen: dict[str, tuple[str, int]] = {}
        for section, items in (("criteria", self.criteria), ("disqualifiers", self.disqualifiers)):
            for i, item in enumerate(items):
                if item.id in seen:
                    s, j = seen[item.id]
                    raise EntryProblem((section, i, "id"), f"duplicate id {item.id!r} (also {s}[{j}])")
                seen[item.id] = (section, i)
        if self.max_points <= 0:
            raise EntryProblem(("criteria",), "the criteria can give no points")
        for key in ("industries", "countries"):
            rewarded = {v: i for i, c in enumerate(self.criteria) for v in getattr(c, key) or ()}
            for i, d in enumerate(self.disqualifiers):
                for j, value in enumerate(getattr(d, key) or ()):
                    if value in rewarded:
                        k = rewarded[value]
                        raise EntryProblem(
                            ("disqualifiers", i, key, j),
                            f"{value!r} is excluded here but rewarded by criteria[{k}] "
                            f"({self.criteria[k].id!r})",
                        )
        return self

    @property
    def max_points(self) -> float:
        return sum(c.max_points for c in self.criteria)
