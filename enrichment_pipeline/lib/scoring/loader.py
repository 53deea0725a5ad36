"""Read an ICP model file (YAML, or JSON) into a validated `IcpModel`.

Every problem is reported with the file, the line and the path of the bad entry
(`model.yaml:23: criteria[3].bands[1]: overlapping bands ...`), one line per
problem: the schema (`model.py`) says what is wrong and where in the object, this
module finds the line from the YAML nodes. Also where a model file may come from:
an argument, `ICP_MODEL`, the bundled file, or a name inside `ICP_MODELS_DIR`.
"""

from __future__ import annotations

import hashlib
import os
import re
import typing
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from enrichment_pipeline.lib.config_files import (
    ConfigFileError,
    StrictLoader,
    decode_config,
    read_config_bytes,
    yaml_problem,
)
from enrichment_pipeline.lib.scoring.model import EntryProblem, IcpModel


class ModelError(ConfigFileError):
    """The ICP model file is invalid; the message says where (file:line: path) and why, one line
    per problem. A configuration error: the CLI prints it and exits 2."""


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
        if isinstance(error, EntryProblem):
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
