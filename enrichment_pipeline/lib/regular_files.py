"""Reading a file that someone else may have planted: the one rule for domain files, drop-folder
files and configuration files.

Only a regular file is read (never a FIFO, device or directory, so nothing hangs), at most
`max_bytes` of it (nothing exhausts memory). With `follow_symlinks=False` a symbolic link is
refused when opened (O_NOFOLLOW, so no check-then-open race) and so is a file with several hard
links: neither can turn a drop folder into a window on another file. Callers phrase the problem
for their own kind of file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Literal

Problem = Literal["link", "open", "type", "links", "size"]


class UnreadableFile(ValueError):
    """Why a file was not read: `problem` for the caller's wording, `reason` a short text."""

    def __init__(self, problem: Problem, reason: str) -> None:
        super().__init__(reason)
        self.problem = problem
        self.reason = reason


def read_regular_file(path: str | Path, max_bytes: int, *, follow_symlinks: bool = True) -> bytes:
    """The file's bytes; `FileNotFoundError` when it is missing, else `UnreadableFile`."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)  # NONBLOCK: a FIFO never hangs
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise UnreadableFile("link", "is a symbolic link (only regular files are read)") from None
        raise UnreadableFile("open", exc.strerror or "cannot be opened") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a device, pipe or socket"
            raise UnreadableFile("type", f"{kind}, not a regular file")
        if not follow_symlinks and info.st_nlink > 1:
            raise UnreadableFile("links", f"has {info.st_nlink} hard links (only files with one are read)")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise UnreadableFile("size", f"larger than {max_bytes:,} bytes")
    return data


class NotUtf8(ValueError):
    """Bytes that are not UTF-8 text: the first bad byte and its 1-based line, for the caller's wording."""

    def __init__(self, byte: int, line: int) -> None:
        super().__init__(f"not UTF-8 text (byte 0x{byte:02x} on line {line})")
        self.byte = byte
        self.line = line


def utf8_text(data: bytes) -> str:
    """The text of a file's bytes, or `NotUtf8`."""
    try:
        # utf-8-sig: spreadsheet exports and Windows editors often start with a BOM that would
        # otherwise stick to the first entry or key.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NotUtf8(data[exc.start], data[: exc.start].count(b"\n") + 1) from None
