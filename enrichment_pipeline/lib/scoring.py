"""Score company profiles against an ICP model file, vectorized in polars.

The model is data (YAML, `config/icp_model.yaml`): criteria grouped in families
(budget, pain, timing, fit), each of one kind —

- `field` + `bands`: points by the range a numeric profile field falls in;
- `technologies_any`: points when the site runs any listed technology;
- `technologies_none`: points when the site's stack is known and runs none of
  them (e.g. no site-search vendor at all: greenfield);
- `industries`: points for a NAICS sector in the list;
- `countries`: points for an ISO 3166-1 alpha-2 country in the list —

plus hard disqualifiers (a numeric range, excluded industries, excluded
countries) and tier thresholds. Unknown values (null) never earn points and
never disqualify. The score is the points earned as a share of all criteria's
best points (0-100); a disqualified company scores 0 and is `cold`.

The model is validated on load; every problem is reported with the file, the
line and the path of the bad entry (`model.yaml:23: criteria[3].bands[1]:
overlapping bands ...`). Scoring reads only the profiles table (and the count of
recent technology changes joined onto it), so changing the model and
re-scoring never calls a provider.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import typing
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import reduce
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import polars as pl
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictStr,
    ValidationError,
    model_validator,
)

from enrichment_pipeline.lib.config_files import (
    ConfigFileError,
    StrictLoader,
    decode_config,
    read_config_bytes,
    yaml_problem,
)
from enrichment_pipeline.lib.profiles import PROFILE_SCHEMA
from enrichment_pipeline.lib.units import NAICS_SECTORS

Family = Literal["budget", "pain", "timing", "fit"]
ValueFormat = Literal["int", "pct", "signed_pct", "float1", "usd", "raw"]
FAMILIES: tuple[str, ...] = typing.get_args(Family)
SIGNAL_FAMILIES = ("budget", "pain", "timing")
TIERS = ("hot", "warm", "cool", "cold")
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

SCORE_SCHEMA: dict[str, pl.DataType] = {
    "domain": pl.String(),
    "icp_score": pl.Float64(),
    "icp_tier": pl.String(),
    "score_breakdown": pl.String(),
    "score_reasons": pl.String(),
    "disqualified": pl.Boolean(),
    "disqualification_reason": pl.String(),
    "budget_signal": pl.Float64(),
    "pain_signal": pl.Float64(),
    "timing_signal": pl.Float64(),
    "model_version": pl.String(),
    "model_hash": pl.String(),
    "scored_at": pl.Datetime("us", "UTC"),
}


class ModelError(ConfigFileError):
    """The ICP model file is invalid; the message says where (file:line: path) and why, one line
    per problem. A configuration error: the CLI prints it and exits 2."""


class _At(ValueError):
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


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _range_text(low: float | None, high: float | None) -> str:
    return f"[{'-inf' if low is None else _num(low)}, {'inf' if high is None else _num(high)})"


def _check_placeholders(text: str, kind: str, path: tuple[str | int, ...]) -> None:
    allowed = PLACEHOLDERS[kind]
    for name in re.findall(r"\{(\w*)\}", text):
        if name not in allowed:
            can = ", ".join(f"{{{a}}}" for a in allowed) or "no placeholders"
            raise _At(path, f"unknown placeholder {{{name}}} in reason; a {kind} entry can use {can}")


def _check_list(values: Sequence[str], key: str) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise _At((key, i), f"{value!r} is listed twice")
        seen.add(value)
        if key == "industries" and value not in NAICS_SECTORS:
            hint = next((s for s in NAICS_SECTORS if "-" in s and s[:2] <= value <= s[3:]), None)
            more = f" (did you mean {hint!r}?)" if hint else ""
            raise _At(
                (key, i),
                f"unknown NAICS sector code {value!r}{more}; known: {', '.join(NAICS_SECTORS)}",
            )
        if key == "countries" and not re.fullmatch(r"[A-Z]{2}", value):
            raise _At(
                (key, i), f"country codes are ISO 3166-1 alpha-2 in upper case, like 'US' (got {value!r})"
            )


def _check_field(field: str | None) -> None:
    if field is None:
        raise _At((), "a numeric criterion or disqualifier needs `field`")
    if field not in NUMERIC_FIELDS:
        raise _At(("field",), f"unknown field {field!r}; known numeric fields: {', '.join(NUMERIC_FIELDS)}")


class Band(_Strict):
    """Points for values in [min, max): min included, max excluded; a missing bound is open."""

    min: Number | None = None
    max: Number | None = None
    points: Points
    reason: Text

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise _At(("min",), f"band min {_num(self.min)} must be below max {_num(self.max)}")
        _check_placeholders(self.reason, "bands", ("reason",))
        return self


class Criterion(_Strict):
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

    @property
    def kind(self) -> str:
        return next(k for k in CRITERION_KINDS if getattr(self, k) is not None)

    @model_validator(mode="after")
    def _one_kind(self) -> Criterion:
        kinds = [k for k in CRITERION_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = f" (found {' and '.join(kinds)})" if kinds else ""
            raise _At(
                (kinds[1],) if len(kinds) > 1 else (),
                f"a criterion needs exactly one of {', '.join(CRITERION_KINDS)}{found}",
            )
        if self.bands is not None:
            _check_field(self.field)
            for key in ("points", "reason"):
                if getattr(self, key) is not None:
                    raise _At((key,), f"`{key}` of a `bands` criterion goes on each band")
            ordered = sorted(
                enumerate(self.bands), key=lambda ib: float("-inf") if ib[1].min is None else ib[1].min
            )
            for (i, low), (j, high) in itertools.pairwise(ordered):
                low_max = float("inf") if low.max is None else low.max
                if high.min is None or high.min < low_max:
                    (first, a), (later, b) = sorted([(i, low), (j, high)], key=lambda ib: ib[0])
                    raise _At(
                        ("bands", later),
                        f"overlapping bands: {_range_text(b.min, b.max)} overlaps "
                        f"bands[{first}] {_range_text(a.min, a.max)} of {self.id!r}",
                    )
            return self
        kind = kinds[0]
        for key in ("field", "format"):
            if key in self.model_fields_set:
                raise _At((key,), f"`{key}` is only for `bands` criteria")
        if self.points is None or self.reason is None:
            raise _At((), f"a {kind} criterion needs `points` and `reason`")
        _check_list(getattr(self, kind), kind)
        _check_placeholders(self.reason, kind, ("reason",))
        return self

    @property
    def max_points(self) -> float:
        return max(b.points for b in self.bands) if self.bands else float(self.points or 0)


class Disqualifier(_Strict):
    """Disqualifies a company whose `field` lies in [min, max) (the same rule as bands), whose
    NAICS sector is in `industries` or whose country is in `countries`. Unknown never disqualifies."""

    id: Identifier
    description: str | None = None
    field: str | None = None
    format: ValueFormat = "raw"
    min: Number | None = None
    max: Number | None = None
    industries: list[Code] | None = Field(default=None, min_length=1)
    countries: list[Code] | None = Field(default=None, min_length=1)
    reason: Text

    @property
    def kind(self) -> str:
        return next(k for k in DISQUALIFIER_KINDS if getattr(self, k) is not None)

    @model_validator(mode="after")
    def _checked(self) -> Disqualifier:
        kinds = [k for k in DISQUALIFIER_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = f" (found {' and '.join(kinds)})" if kinds else ""
            raise _At(
                (kinds[1],) if len(kinds) > 1 else (),
                f"a disqualifier needs exactly one of {', '.join(DISQUALIFIER_KINDS)}{found}",
            )
        kind = kinds[0]
        if kind == "field":
            _check_field(self.field)
            if self.min is None and self.max is None:
                raise _At((), f"disqualifier {self.id!r} needs `min`, `max` or both")
            if self.min is not None and self.max is not None and self.min >= self.max:
                raise _At(
                    ("min",),
                    f"disqualifier {self.id!r}: min {_num(self.min)} must be below max {_num(self.max)}",
                )
        else:
            for key in ("min", "max", "format"):
                if key in self.model_fields_set:
                    raise _At((key,), f"`{key}` is only for `field` disqualifiers")
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
            raise _At(
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
                    raise _At((section, i, "id"), f"duplicate id {item.id!r} (also {s}[{j}])")
                seen[item.id] = (section, i)
        if self.max_points <= 0:
            raise _At(("criteria",), "the criteria can give no points")
        for key in ("industries", "countries"):
            rewarded = {v: i for i, c in enumerate(self.criteria) for v in getattr(c, key) or ()}
            for i, d in enumerate(self.disqualifiers):
                for j, value in enumerate(getattr(d, key) or ()):
                    if value in rewarded:
                        k = rewarded[value]
                        raise _At(
                            ("disqualifiers", i, key, j),
                            f"{value!r} is excluded here but rewarded by criteria[{k}] "
                            f"({self.criteria[k].id!r})",
                        )
        return self

    @property
    def max_points(self) -> float:
        return sum(c.max_points for c in self.criteria)


# --------------------------------------------------------------------------- loading


class ModelLoader(StrictLoader):
    """YAML 1.2 scalars where 1.1 surprises: only true/false are booleans (so `NO`, Norway,
    stays a string) and `1e6` is a number, not the string "1e6". No aliases (`StrictLoader`)."""


ModelLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ModelLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
ModelLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def default_model_path() -> Path:
    return Path(str(resources.files("enrichment_pipeline") / "config" / "icp_model.yaml"))


MODELS_DIR_ENV = "ICP_MODELS_DIR"
_MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}\.ya?ml$")


def models_dir(environ: typing.Mapping[str, str] | None = None) -> Path:
    """Where run config may pick a model from: `ICP_MODELS_DIR`, else the bundled config folder."""
    env = os.environ if environ is None else environ
    configured = env.get(MODELS_DIR_ENV, "").strip()
    return Path(configured) if configured else default_model_path().parent


def model_in_dir(name: str, environ: typing.Mapping[str, str] | None = None) -> Path:
    """The model file `name` inside `models_dir()`; a path, a hidden file, another suffix or a link
    out of the folder is refused (ModelError), so run config cannot point the loader elsewhere."""
    folder = models_dir(environ)
    if not _MODEL_NAME.match(name) or ".." in name:
        raise ModelError(
            f"model {name[:100]!r}: give the file name of a .yaml model "
            f"in {folder} ({MODELS_DIR_ENV}), not a path"
        )
    path = folder / name
    try:
        inside = path.resolve(strict=True).parent == folder.resolve(strict=True)
    except OSError:
        raise ModelError(f"no model {name!r} in {folder} ({MODELS_DIR_ENV})") from None
    if not inside:
        raise ModelError(f"model {name!r} links out of {folder}; models must live in that folder")
    return path


def _compose(text: str) -> tuple[yaml.Node | None, Any]:
    loader = ModelLoader(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _duplicate_keys(node: yaml.Node, path: tuple[str | int, ...] = ()) -> list[tuple[int, tuple, str]]:
    """(line, path, message) for every key written twice in one mapping (YAML keeps the last silently)."""
    found: list[tuple[int, tuple, str]] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            line = key.start_mark.line + 1
            if name is not None and name in first:
                found.append((line, path, f"duplicate key {name!r} (first at line {first[name]})"))
            elif name is not None:
                first[name] = line
            found += _duplicate_keys(value, (*path, name if name is not None else "?"))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += _duplicate_keys(item, (*path, i))
    return found


def _line(root: yaml.Node, loc: Sequence[str | int]) -> int:
    """1-based line of the deepest node the path reaches (a mapping entry's key line)."""
    node, line = root, root.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            entry = next(
                ((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None
            )
            if entry is None:
                break
            line, node = entry[0].start_mark.line + 1, entry[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _dotted(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _model_class_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The pydantic model that validates the object at `loc` (for listing its allowed keys)."""
    cls: type[BaseModel] = IcpModel
    for part in loc:
        if isinstance(part, int):
            continue
        info = cls.model_fields.get(part)
        if info is None:
            return None
        stack, found = [info.annotation], None
        while stack and found is None:
            ann = stack.pop()
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                found = ann
            else:
                stack.extend(typing.get_args(ann))
        if found is None:
            return None
        cls = found
    return cls


def _problems(exc: ValidationError) -> list[tuple[tuple[str | int, ...], str, tuple[str | int, ...]]]:
    """(shown path, message, path to locate) for each pydantic error, in words a model author reads."""
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, _At):
            full = loc + error.path
            out.append((full, str(error), full))
        elif err["type"] == "extra_forbidden":
            cls = _model_class_at(loc[:-1])
            allowed = f" (allowed: {', '.join(cls.model_fields)})" if cls else ""
            out.append((loc[:-1], f"unknown key {loc[-1]!r}{allowed}", loc))
        elif err["type"] == "missing":
            out.append((loc[:-1], f"missing required key {loc[-1]!r}", loc))
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
            if not isinstance(err["input"], dict | list):
                message += f" (got {err['input']!r})"
            out.append((loc, message, loc))
    return out


def load_model(path: str | Path | None = None) -> IcpModel:
    """Read and validate the model (`path`, else $ICP_MODEL, else the bundled file)."""
    path = Path(path or os.environ.get("ICP_MODEL") or default_model_path())
    try:
        raw = read_config_bytes(path, "ICP model")
    except ConfigFileError as exc:
        raise ModelError(str(exc)) from None
    return parse_model(raw, path)


def parse_model(raw: bytes, path: str | Path = "<model>") -> IcpModel:
    """Validate a model given as YAML (or JSON) bytes; `path` names it in the error messages."""
    try:
        text = decode_config(path, raw, "ICP model")
    except ConfigFileError as exc:
        raise ModelError(str(exc)) from None
    try:
        node, data = _compose(text)
    except yaml.YAMLError as exc:
        raise ModelError(yaml_problem(path, exc)) from None
    if node is None or not isinstance(data, dict):
        raise ModelError(f"{path}: expected a mapping at the top level")
    located: list[tuple[int, str]] = [
        (line, f"{_dotted(where)}: {message}" if where else message)
        for line, where, message in _duplicate_keys(node)
    ]
    if not located:
        try:
            model = IcpModel.model_validate(data)
        except ValidationError as exc:
            for shown, message, loc in _problems(exc):
                located.append((_line(node, loc), f"{_dotted(shown)}: {message}" if shown else message))
    if located:
        raise ModelError("\n".join(f"{path}:{line}: {text}" for line, text in sorted(located)))
    model._file_hash = hashlib.sha256(raw).hexdigest()[:16]
    return model


# --------------------------------------------------------------------------- scoring

_NULL_TEXT = pl.lit(None, dtype=pl.String)


def _number(name: str) -> pl.Expr:
    """A numeric field as Float64, NaN as unknown (polars orders NaN above every number)."""
    return pl.col(name).cast(pl.Float64).fill_nan(None)


def _formatted(expr: pl.Expr, fmt: ValueFormat) -> pl.Expr:
    """A number as reason text (vectorized); values too large for an integer show as "?"."""
    if fmt == "int":
        return expr.round(0).cast(pl.Int64, strict=False).cast(pl.String)
    if fmt == "pct":
        return (expr * 100).round(0).cast(pl.Int64, strict=False).cast(pl.String) + pl.lit("%")
    if fmt == "signed_pct":
        pct = (expr * 100).round(0).cast(pl.Int64, strict=False)
        return pl.when(pct >= 0).then(pl.lit("+")).otherwise(pl.lit("")) + pct.cast(pl.String) + pl.lit("%")
    if fmt == "float1":
        return expr.round(1).cast(pl.String)
    if fmt == "usd":  # $1.2B, $350M, $12K, $900
        size = expr.abs()
        sign = pl.when(expr < 0).then(pl.lit("-")).otherwise(pl.lit(""))

        def scaled(div: float, suffix: str) -> pl.Expr:
            return (size / div).round(1).cast(pl.String).str.strip_suffix(".0") + pl.lit(suffix)

        body = (
            pl.when(size >= 1e9)
            .then(scaled(1e9, "B"))
            .when(size >= 1e6)
            .then(scaled(1e6, "M"))
            .when(size >= 1e3)
            .then(scaled(1e3, "K"))
            .otherwise(size.round(0).cast(pl.Int64, strict=False).cast(pl.String))
        )
        return sign + pl.lit("$") + body
    return expr.cast(pl.String)


def _template(text: str, fills: dict[str, pl.Expr]) -> pl.Expr:
    """Fill `{name}` placeholders vectorized (no per-row Python); validated names only."""
    pieces = re.split(r"\{(\w*)\}", text)
    parts: list[pl.Expr] = []
    for i, piece in enumerate(pieces):
        if i % 2:
            parts.append(fills[piece].fill_null("?"))
        elif piece:
            parts.append(pl.lit(piece))
    return pl.concat_str(parts) if parts else pl.lit("")


def _in_range(col: pl.Expr, low: float | None, high: float | None) -> pl.Expr:
    cond = col.is_not_null()
    if low is not None:
        cond = cond & (col >= low)
    if high is not None:
        cond = cond & (col < high)
    return cond


def _json_patterns(names: Sequence[str]) -> dict[str, str]:
    """Each name as a quoted JSON string (UTF-8 and ASCII-escaped spellings) -> the name."""
    return {json.dumps(n, ensure_ascii=ascii): n for n in names for ascii in (False, True)}


_ELEMENT_START = r"[\[,]\s*"


def _element_regex(names: Sequence[str]) -> str:
    """A regex for any of the names as a whole element of a JSON array of strings: the quoted
    name right after `[` or `,`. Inside an encoded string a quote is always escaped, so the
    match can neither start nor end inside another element (`Quote"Tech` never matches `Tech`)."""
    return _ELEMENT_START + "(?:" + "|".join(re.escape(p) for p in _json_patterns(names)) + ")"


def _stack_has_any(names: Sequence[str]) -> pl.Expr:
    """Whether the stack (`technologies`, a JSON array of strings) lists any of the names; null
    when the stack is unknown. One regex pass over the JSON text, no decoding of millions of arrays."""
    return pl.col("technologies").str.contains(_element_regex(names))


def _stack_matches(names: Sequence[str]) -> pl.Expr:
    """The listed names the stack contains, in stack order, joined with ", "."""
    patterns = _json_patterns(names)
    name = pl.element().str.replace(_ELEMENT_START, "").replace_strict(patterns, return_dtype=pl.String)
    return (
        pl.col("technologies")
        .str.extract_all(_element_regex(names))
        .list.eval(name)
        .list.unique(maintain_order=True)
        .list.join(", ")
    )


def _membership(column: str, values: Sequence[str]) -> pl.Expr:
    return pl.col(column).is_in(list(values)).fill_null(False)


def _band_index(c: Criterion) -> pl.Expr:
    """Which band the value falls in (null: none, or unknown)."""
    assert c.bands is not None and c.field is not None
    col = _number(c.field)
    index: pl.Expr = pl.lit(None, dtype=pl.Int32)
    for i in reversed(range(len(c.bands))):
        band = c.bands[i]
        index = pl.when(_in_range(col, band.min, band.max)).then(pl.lit(i, dtype=pl.Int32)).otherwise(index)
    return index


def _hit(item: Criterion | Disqualifier) -> pl.Expr:
    """Stage 1: per criterion the band index (bands) or whether it applies; per disqualifier
    whether it applies. Computed once, then read by the points and the reasons."""
    if isinstance(item, Criterion) and item.bands is not None:
        return _band_index(item)
    if isinstance(item, Disqualifier) and item.field is not None:
        return _in_range(_number(item.field), item.min, item.max)
    if item.industries is not None:
        return _membership("industry_naics", item.industries)
    if item.countries is not None:
        return _membership("country", item.countries)
    assert isinstance(item, Criterion)
    if item.technologies_any is not None:
        return _stack_has_any(item.technologies_any).fill_null(False)
    # Only a known stack can show an absence: an unknown stack earns nothing.
    assert item.technologies_none is not None
    return (~_stack_has_any(item.technologies_none)).fill_null(False)


def _fills(item: Criterion | Disqualifier) -> dict[str, pl.Expr]:
    """The placeholder values a reason of this criterion or disqualifier can use."""
    if item.field is not None:
        return {"value": _formatted(_number(item.field), item.format)}
    if item.industries is not None:
        return {"value": pl.coalesce("industry_label", "industry_naics"), "code": pl.col("industry_naics")}
    if item.countries is not None:
        return {"value": pl.col("country")}
    wants_matched = "{matched}" in (getattr(item, "reason", None) or "")
    if isinstance(item, Criterion) and item.technologies_any is not None and wants_matched:
        return {"matched": _stack_matches(item.technologies_any)}
    return {}


def _criterion(c: Criterion, hit: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Stage 2: (points, reason-or-null) of one criterion from its stage-1 column."""
    fills = _fills(c)
    if c.bands is not None:
        points: pl.Expr = pl.lit(0.0)
        template: pl.Expr = _NULL_TEXT
        for i in reversed(range(len(c.bands))):
            band = c.bands[i]
            points = pl.when(hit == i).then(pl.lit(float(band.points))).otherwise(points)
            template = pl.when(hit == i).then(pl.lit(band.reason)).otherwise(template)
        # Bands know one placeholder, {value}: one replacing pass over the chosen template.
        if any("{value}" in b.reason for b in c.bands):
            template = template.str.replace_all("{value}", fills["value"].fill_null("?"), literal=True)
        return points, template
    return (
        pl.when(hit).then(pl.lit(float(c.points or 0))).otherwise(pl.lit(0.0)),
        pl.when(hit).then(_template(c.reason or "", fills)).otherwise(_NULL_TEXT),
    )


def _disqualifier(d: Disqualifier, hit: pl.Expr) -> pl.Expr:
    """Stage 2: the reason (null when the company is not disqualified by `d`)."""
    return pl.when(hit).then(_template(d.reason, _fills(d))).otherwise(_NULL_TEXT)


def _json_string(text: pl.Expr, *, plain: bool = False) -> pl.Expr:
    """A string as a JSON string literal, null stays null. `plain`: the text is known to need no
    escaping (our own template text with numbers or model-listed names filled in): just quote it."""
    if plain:
        return pl.lit('"') + text + pl.lit('"')
    encoded = pl.struct(text.alias("v")).struct.json_encode().str.slice(5).str.head(-1)
    return pl.when(text.is_not_null()).then(encoded)


def _plain(text: str) -> bool:
    return json.dumps(text, ensure_ascii=False)[1:-1] == text


def _plain_reason(item: Criterion | Disqualifier) -> bool:
    """Whether every reason this item can produce is JSON-safe as it is: template text without
    quotes, backslashes or control characters, filled with formatted numbers or names from the
    model. Provider text (industry labels, countries) is always escaped."""
    if item.industries is not None or item.countries is not None:
        return False
    bands = item.bands if isinstance(item, Criterion) else None
    texts = [b.reason for b in bands] if bands else [item.reason or ""]
    if isinstance(item, Criterion) and item.technologies_any is not None:
        texts += item.technologies_any
    return all(_plain(t) for t in texts)


def _total(exprs: Sequence[pl.Expr]) -> pl.Expr:
    return reduce(lambda a, b: a + b, exprs)


def score_profiles(profiles: pl.DataFrame, model: IcpModel, scored_at: datetime) -> pl.DataFrame:
    """One row per profile (SCORE_SCHEMA): score, tier, breakdown, reasons, signals. No per-row Python.

    `recent_tech_changes` is read when the frame has it (`with_recent_tech_changes`); otherwise
    it is unknown and criteria on it earn nothing."""
    frame = profiles.lazy()
    if RECENT_TECH_CHANGES not in profiles.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Int64).alias(RECENT_TECH_CHANGES))
    frame = frame.with_columns(
        *(_hit(c).alias(f"_h_{c.id}") for c in model.criteria),
        *(_hit(d).alias(f"_hd_{d.id}") for d in model.disqualifiers),
    )
    columns = []
    for c in model.criteria:
        points, reason = _criterion(c, pl.col(f"_h_{c.id}"))
        columns += [points.alias(f"_p_{c.id}"), reason.alias(f"_r_{c.id}")]
    columns += [_disqualifier(d, pl.col(f"_hd_{d.id}")).alias(f"_dq_{d.id}") for d in model.disqualifiers]
    frame = frame.with_columns(columns)

    dq_reasons = [pl.col(f"_dq_{d.id}") for d in model.disqualifiers]
    disqualified = pl.any_horizontal(*(r.is_not_null() for r in dq_reasons)) if dq_reasons else pl.lit(False)
    earned = _total([pl.col(f"_p_{c.id}") for c in model.criteria])
    raw_score = (earned / model.max_points * 100).clip(0, 100).round(1)
    frame = frame.with_columns(disqualified.alias("disqualified")).with_columns(
        pl.when(pl.col("disqualified")).then(pl.lit(0.0)).otherwise(raw_score).alias("icp_score")
    )
    disqualified, score = pl.col("disqualified"), pl.col("icp_score")
    tier = (
        pl.when(score >= model.tiers.hot)
        .then(pl.lit("hot"))
        .when(score >= model.tiers.warm)
        .then(pl.lit("warm"))
        .when(score >= model.tiers.cool)
        .then(pl.lit("cool"))
        .otherwise(pl.lit("cold"))
    )

    def signal(family: str) -> pl.Expr:
        members = [c for c in model.criteria if c.family == family]
        possible = sum(c.max_points for c in members)
        if possible <= 0:
            return pl.lit(None, dtype=pl.Float64)
        got = _total([pl.col(f"_p_{c.id}") for c in members])
        return (got / possible * 100).clip(0, 100).round(1)

    breakdown = pl.struct(*(pl.col(f"_p_{c.id}").alias(c.id) for c in model.criteria)).struct.json_encode()
    # A JSON array of the non-null reasons: each one JSON-encoded by polars, joined as text
    # (2-3x faster than concat_list + drop_nulls + encoding the list).
    reasons = pl.concat_str(
        pl.lit("["),
        pl.concat_str(
            [
                *(_json_string(pl.col(f"_dq_{d.id}"), plain=_plain_reason(d)) for d in model.disqualifiers),
                *(_json_string(pl.col(f"_r_{c.id}"), plain=_plain_reason(c)) for c in model.criteria),
            ],
            separator=",",
            ignore_nulls=True,
        ),
        pl.lit("]"),
    )
    dq_text = (
        pl.when(disqualified).then(pl.concat_str(dq_reasons, separator="; ", ignore_nulls=True))
        if dq_reasons
        else _NULL_TEXT
    )
    return (
        frame.select(
            pl.col("domain").cast(pl.String),
            score,
            tier.alias("icp_tier"),
            breakdown.alias("score_breakdown"),
            reasons.alias("score_reasons"),
            disqualified,
            dq_text.alias("disqualification_reason"),
            *(signal(f).alias(f"{f}_signal") for f in SIGNAL_FAMILIES),
            pl.lit(model.version).alias("model_version"),
            pl.lit(model.file_hash).alias("model_hash"),
            pl.lit(scored_at, dtype=pl.Datetime("us", "UTC")).alias("scored_at"),
        )
        .cast(SCORE_SCHEMA)  # type: ignore[arg-type]
        .collect()
    )


# --------------------------------------------------------------------------- recent technology changes


def recent_tech_change_counts(changes: pl.DataFrame, model: IcpModel, scored_at: datetime) -> pl.DataFrame:
    """Per domain, the technology changes (marts.tech_changes) of the kinds the model counts seen in
    the model's window before `scored_at` (domain, recent_tech_changes)."""
    window = model.recent_tech_changes
    since = scored_at - timedelta(days=window.window_days)
    return (
        changes.lazy()
        .filter(pl.col("change").is_in(list(window.changes)) & (pl.col("seen_at") > since))
        .group_by("domain")
        .agg(pl.len().cast(pl.Int64).alias(RECENT_TECH_CHANGES))
        .collect()
    )


def with_recent_tech_changes(
    profiles: pl.DataFrame, changes: pl.DataFrame | None, model: IcpModel, scored_at: datetime
) -> pl.DataFrame:
    """The profiles with `recent_tech_changes`: the count in the window; 0 when the stack is known
    and nothing changed; unknown (null) when neither the stack nor any change is known, or when
    there is no changes table at all."""
    if changes is None:
        return profiles.with_columns(pl.lit(None, dtype=pl.Int64).alias(RECENT_TECH_CHANGES))
    counts = recent_tech_change_counts(changes, model, scored_at)
    return (
        profiles.drop(RECENT_TECH_CHANGES, strict=False)
        .join(counts, on="domain", how="left")
        .with_columns(
            pl.coalesce(
                pl.col(RECENT_TECH_CHANGES),
                pl.when(pl.col("technologies").is_not_null()).then(pl.lit(0, dtype=pl.Int64)),
            ).alias(RECENT_TECH_CHANGES)
        )
    )
