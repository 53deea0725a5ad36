"""Reading the project's configuration files (waterfall, ICP model, ticker map) safely.

A configuration file may come from a careless operator or from anyone who can
set an environment variable or edit a mounted file, so reading one must never
hang (a FIFO, a device), exhaust memory (a huge file, a YAML "billion laughs"
alias bomb) or end in a traceback. Every problem is one `ConfigFileError`
naming the file and what is wrong; the CLI prints it and exits 2.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from enrichment_pipeline.lib.regular_files import NotUtf8, UnreadableFile, read_regular_file, utf8_text
from enrichment_pipeline.lib.settings import SettingsError

# Our largest bundled configuration file is a few KB; 1 MB leaves room and bounds the parse.
MAX_CONFIG_BYTES = 1024 * 1024


class ConfigFileError(SettingsError):
    """A configuration file that cannot be used; one line naming the file and the problem."""


def read_config_bytes(path: str | Path, what: str, max_bytes: int = MAX_CONFIG_BYTES) -> bytes:
    """The bytes of a regular file of at most `max_bytes` (`what` names it in errors)."""
    path = Path(path)
    try:
        return read_regular_file(path, max_bytes)
    except FileNotFoundError as exc:
        raise ConfigFileError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnreadableFile as exc:
        if exc.problem == "size":
            raise ConfigFileError(f"{path}: {what} {exc.reason}") from None
        raise ConfigFileError(f"cannot read {what} {path}: {exc.reason}") from None


def decode_config(path: str | Path, data: bytes, what: str) -> str:
    try:
        return utf8_text(data)
    except NotUtf8 as exc:
        raise ConfigFileError(
            f"{path}:{exc.line}: {what} is not UTF-8 text (byte 0x{exc.byte:02x}); save it as UTF-8"
        ) from None


def read_config_text(path: str | Path, what: str, max_bytes: int = MAX_CONFIG_BYTES) -> str:
    return decode_config(path, read_config_bytes(path, what, max_bytes), what)


class StrictLoader(yaml.SafeLoader):
    """Safe YAML without aliases: `*name` is refused where it is read, before anything is built.

    Aliases are what a "billion laughs" file multiplies (each level refers to the one above ten
    times: 452 bytes took 20 s, ten times more per level); configuration never needs them.
    """

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in configuration files", event.start_mark
            )
        return super().compose_node(parent, index)  # type: ignore[arg-type]


def yaml_problem(path: str | Path, exc: yaml.YAMLError) -> str:
    """One line for a YAML error: `path:line: not valid YAML: problem`."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or str(exc).replace("\n", " ")
    context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and start is not None and (mark is None or start.line != mark.line):
        problem += f" ({context} at line {start.line + 1})"
    return f"{where}: not valid YAML: {problem}"


def load_yaml(path: str | Path, what: str) -> object:
    """Parse a YAML configuration file with `StrictLoader`; every failure is a ConfigFileError."""
    text = read_config_text(path, what)
    try:
        return yaml.load(text, Loader=StrictLoader)
    except yaml.YAMLError as exc:
        raise ConfigFileError(yaml_problem(path, exc)) from None
