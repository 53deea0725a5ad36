"""The one domain normalizer every input path (CLI, files, sensors, assets) goes through.

Providers are keyed by company domain, so two spellings of the same company must collapse to one key
and anything that is not a public company domain must be refused up front, with a reason a person can
act on, before it costs provider calls. Pure Python on purpose: no Dagster imports, no network.
"""

from __future__ import annotations

import csv
import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import idna
from publicsuffixlist import PublicSuffixList

from enrichment_pipeline.lib.regular_files import NotUtf8, UnreadableFile, read_regular_file, utf8_text

__all__ = [
    "MAX_FILE_BYTES",
    "DomainFileError",
    "InvalidDomain",
    "Rejected",
    "normalize_domain",
    "normalize_domains",
    "read_domain_file",
    "sniff_delimiter",
]

_MAX_LABEL = 63
_MAX_NAME = 253
_ALLOWED_SCHEMES = frozenset({"http", "https"})
# "word:" not followed by a digit is a scheme; "host:8080" is a port and must not match.
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+\-]*):(?!\d)")
_BAD_LABEL_CHAR_RE = re.compile(r"[^a-z0-9-]")
_ASCII_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
_HEADER_NAMES = ("domain", "website", "url")


class InvalidDomain(ValueError):
    """Raised when an input cannot be turned into a registrable company domain.

    ``reason`` is meant for people (logs, rejected-rows tables), so it names the problem rather than
    the failing check.
    """

    def __init__(self, raw: object, reason: str) -> None:
        # Both values go to ValueError so the exception survives pickling across process boundaries.
        super().__init__(raw, reason)
        self.raw = raw
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.raw!r} is not a valid company domain: {self.reason}"


@dataclass(frozen=True)
class Rejected:
    """An input entry that was refused, kept so callers can report it instead of dropping it silently."""

    raw: str
    reason: str


@functools.cache
def _psl() -> PublicSuffixList:
    """Build the public suffix list once, on first use, from the copy shipped inside the package.

    The full list (including the private section such as ``github.io`` or ``myshopify.com``) is used
    on purpose: ``acme.myshopify.com`` and ``beta.myshopify.com`` are different companies and must not
    both collapse to Shopify's own domain.
    """
    return PublicSuffixList()


def _is_ip_like(host: str) -> bool:
    """True for IP literals, including shorthand forms like ``1.2.3`` that browsers treat as IPv4."""
    last = host.rstrip(".").rsplit(".", 1)[-1]
    if last.isascii() and last.isdigit():
        return True  # every IPv4 literal ends so; the parser is only needed for IPv6
    if ":" not in host:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _extract_host(raw: str, text: str) -> str:
    """Cut scheme, port, path, query and fragment away and return the bare host as typed."""
    scheme_match = _SCHEME_RE.match(text)
    if scheme_match:
        scheme = scheme_match.group(1).lower()
        if scheme not in _ALLOWED_SCHEMES:
            raise InvalidDomain(raw, f"unsupported URL scheme {scheme!r} (only http and https)")
        rest = text[scheme_match.end() :]
        if not rest.startswith("//"):
            raise InvalidDomain(raw, "malformed URL (expected scheme://host)")
        text = rest[2:]
    elif text.startswith("//"):
        text = text[2:]

    authority = re.split(r"[/?#]", text, maxsplit=1)[0]

    if authority.startswith("["):
        inside, closed, _ = authority[1:].partition("]")
        if closed and _is_ip_like(inside):
            raise InvalidDomain(raw, "IP address literals are not company domains")
        raise InvalidDomain(raw, "malformed bracketed host")

    if authority.count(":") > 1:
        if _is_ip_like(authority):
            raise InvalidDomain(raw, "IP address literals are not company domains")
        raise InvalidDomain(raw, "invalid character ':' in host name")

    host, _, port = authority.partition(":")
    # An empty port ("example.com:") is legal URL syntax and means the default port.
    if port and not (port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 65535):
        raise InvalidDomain(raw, f"invalid port {port!r}")
    return host


def _check_labels(raw: str, host: str) -> list[str]:
    """Enforce DNS hostname syntax on an ASCII, lowercase host and return its labels."""
    if len(host) > _MAX_NAME:
        raise InvalidDomain(raw, f"name longer than {_MAX_NAME} characters")
    labels = host.split(".")
    for label in labels:
        if not label:
            raise InvalidDomain(raw, "empty label (leading, trailing or consecutive dots)")
        if len(label) > _MAX_LABEL:
            raise InvalidDomain(raw, f"label longer than {_MAX_LABEL} characters")
        bad = _BAD_LABEL_CHAR_RE.search(label)
        if bad:
            raise InvalidDomain(raw, f"invalid character {bad.group()!r} (only letters, digits, '-' and '.')")
        if label.startswith("-") or label.endswith("-"):
            raise InvalidDomain(raw, "labels must not start or end with a hyphen")
    return labels


def _to_ascii(raw: str, host: str) -> str:
    """Turn a Unicode host into its punycode form with UTS46 mapping, the way browsers resolve it."""
    try:
        encoded = idna.encode(host, uts46=True).decode("ascii")
    except UnicodeError as exc:  # idna.IDNAError is a UnicodeError
        raise InvalidDomain(raw, f"not a valid internationalized domain name ({exc})") from exc
    return encoded.removesuffix(".")


def _check_punycode(raw: str, labels: list[str]) -> None:
    """Refuse ``xn--`` labels that do not decode, or that would not re-encode to themselves.

    Without this, garbage such as ``xn--zz.com`` would pass as ASCII, and a non-canonical A-label
    would give one company two keys.
    """
    for label in labels:
        if not label.startswith("xn--"):
            continue
        try:
            canonical = idna.alabel(idna.ulabel(label)).decode("ascii")
        except UnicodeError as exc:
            raise InvalidDomain(raw, f"invalid punycode label {label!r} ({exc})") from exc
        if canonical != label:
            raise InvalidDomain(raw, f"non-canonical punycode label {label!r}")


def normalize_domain(raw: str) -> str:
    """Return the registrable domain (eTLD+1) of ``raw`` in lowercase ASCII/punycode.

    Accepts bare hosts and http(s) URLs in any case, with ``www.``/subdomains, a trailing dot, a port,
    path, query or fragment. Raises :class:`InvalidDomain` with a human-readable ``reason`` otherwise.
    The result is a fixed point: ``normalize_domain(normalize_domain(x)) == normalize_domain(x)``.
    """
    if not isinstance(raw, str):
        raise InvalidDomain(raw, f"expected a string, got {type(raw).__name__}")
    text = raw.strip()
    if not text:
        raise InvalidDomain(raw, "empty or whitespace-only input")
    # Whitespace (but the ASCII space) and control characters are all non-printable: one C-level
    # scan clears the common case, the character loops only run to name the problem.
    if " " in text or not text.isprintable():
        if any(ch.isspace() for ch in text):
            raise InvalidDomain(raw, "contains whitespace")
        if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in text):
            raise InvalidDomain(raw, "contains control characters")
    if "\\" in text:
        raise InvalidDomain(raw, "contains a backslash")
    if "../" in text or "/.." in text:
        raise InvalidDomain(raw, "contains a path traversal sequence ('../')")
    if "%" in text:
        raise InvalidDomain(raw, "percent-encoding (such as '%2F') is not allowed")
    if "@" in text:
        raise InvalidDomain(raw, "contains '@' (an e-mail address or URL userinfo, not a domain)")

    host = _extract_host(raw, text)
    host = host.removesuffix(".")
    if not host:
        raise InvalidDomain(raw, "no host name")
    if _is_ip_like(host):
        raise InvalidDomain(raw, "IP address literals are not company domains")
    bad_ascii = next((ch for ch in host if ch.isascii() and ch not in _ASCII_ALLOWED), None)
    if bad_ascii is not None:
        raise InvalidDomain(raw, f"invalid character {bad_ascii!r} (only letters, digits, '-' and '.')")
    if "" in host.split("."):
        raise InvalidDomain(raw, "empty label (leading, trailing or consecutive dots)")

    host = host.lower() if host.isascii() else _to_ascii(raw, host)
    # Checked again after IDNA: UTS46 maps full-width digits and dots, so such IPs only show up now.
    if _is_ip_like(host):
        raise InvalidDomain(raw, "IP address literals are not company domains")
    if host == "localhost" or host.endswith(".localhost"):
        raise InvalidDomain(raw, "localhost is not a company domain")
    labels = _check_labels(raw, host)
    _check_punycode(raw, labels)

    psl = _psl()
    registrable = psl.privatesuffix(host, accept_unknown=False)
    if registrable is not None:
        return registrable
    # Not registrable: the public suffix says why.
    suffix = psl.publicsuffix(host, accept_unknown=False)
    if suffix == host:
        raise InvalidDomain(
            raw, f"{host!r} is a public suffix (registry or shared hosting), not a registrable domain"
        )
    if len(labels) < 2:
        raise InvalidDomain(raw, f"single-label name {host!r} is not a public domain")
    raise InvalidDomain(raw, f"unknown top-level domain '.{labels[-1]}' (not in the public suffix list)")


def display_domain(domain: str) -> str:
    """The domain as people write it: `bücher.de` for the key `xn--bcher-kva.de`.

    Keys stay punycode (one spelling per company); this is for showing them. A
    label that does not decode (never the case for a normalized key) is kept as is.
    """
    if "xn--" not in domain:
        return domain
    labels = []
    for label in domain.split("."):
        try:
            labels.append(idna.ulabel(label) if label.startswith("xn--") else label)
        except UnicodeError:
            labels.append(label)
    return ".".join(labels)


def normalize_domains(raws: Iterable[str]) -> tuple[list[str], list[Rejected]]:
    """Normalize many inputs; keep the first occurrence of each domain and report every rejection.

    Never raises for bad entries, so one typo in a file does not sink a whole run.
    """
    seen: set[str] = set()
    accepted: list[str] = []
    rejected: list[Rejected] = []
    for raw in raws:
        try:
            domain = normalize_domain(raw)
        except InvalidDomain as exc:
            rejected.append(Rejected(raw=raw if isinstance(raw, str) else repr(raw), reason=exc.reason))
            continue
        if domain not in seen:
            seen.add(domain)
            accepted.append(domain)
    return accepted, rejected


def _is_entry(value: str) -> bool:
    return bool(value) and not value.startswith("#")


# A domain is at most 253 characters: 10 MB is some 400,000 entries, far beyond one run, and bounds
# the memory and time one file can cost (a file is read whole, then parsed in linear time).
MAX_FILE_BYTES = 10 * 1024 * 1024
# The delimiter is guessed from this much of a CSV file, in one pass.
SNIFF_BYTES = 64 * 1024
_DELIMITERS = (",", ";", "\t")


class DomainFileError(ValueError):
    """A domain file that cannot be used; the message names the file and what is wrong with it."""


def _read_bytes(path: Path, max_bytes: int, follow_symlinks: bool) -> bytes:
    """The file's bytes under the one rule for planted files (`regular_files`), worded for a domain file."""
    try:
        return read_regular_file(path, max_bytes, follow_symlinks=follow_symlinks)
    except FileNotFoundError:
        raise FileNotFoundError(f"domain file not found: {path}") from None
    except UnreadableFile as exc:
        if exc.problem == "open":
            raise DomainFileError(f"{path}: cannot be opened ({exc.reason})") from None
        if exc.problem == "size":
            raise DomainFileError(f"{path}: {exc.reason} (split it into smaller files)") from None
        raise DomainFileError(f"{path}: {exc.reason}") from None


def _decode(path: Path, data: bytes) -> str:
    try:
        return utf8_text(data)
    except NotUtf8 as exc:
        raise DomainFileError(
            f"{path}: not valid UTF-8 text (byte 0x{exc.byte:02x} on line {exc.line}); save it as UTF-8"
        ) from None


def sniff_delimiter(sample: str) -> str:
    """`,`, `;` or tab: the candidate found on the most lines of `sample`, in one pass (no regexes
    over the whole sample, unlike `csv.Sniffer`, which is quadratic on crafted input). Quoted text
    is skipped. A one-column file has none of them and reads as `,`."""
    counts = dict.fromkeys(_DELIMITERS, 0)
    seen: set[str] = set()
    quoted = False
    for ch in sample:
        if ch == '"':
            quoted = not quoted
        elif ch == "\n" and not quoted:
            for d in seen:
                counts[d] += 1
            seen.clear()
        elif not quoted and ch in counts:
            seen.add(ch)
    for d in seen:
        counts[d] += 1
    best = max(_DELIMITERS, key=lambda d: counts[d])  # ties keep the order of _DELIMITERS
    return best if counts[best] else ","


def _csv_entries(path: Path, text: str) -> list[str]:
    lines = text.splitlines()
    sample = text[:SNIFF_BYTES]
    body = "\n".join(line for line in sample.splitlines() if not line.lstrip().startswith("#"))
    delimiter = sniff_delimiter(body)
    try:
        rows = [
            [cell.strip() for cell in row]
            for row in csv.reader(lines, delimiter=delimiter)
            if any(cell.strip() for cell in row) and not row[0].strip().startswith("#")
        ]
    except csv.Error as exc:
        raise DomainFileError(f"{path}: not valid CSV ({exc})") from None
    if not rows:
        return []

    column = 0
    header = [cell.lower() for cell in rows[0]]
    named = [name for name in _HEADER_NAMES if name in header]
    if named:
        column = header.index(named[0])
        rows = rows[1:]
    return [row[column] for row in rows if column < len(row) and _is_entry(row[column])]


def read_domain_file(
    path: str | Path, *, max_bytes: int = MAX_FILE_BYTES, follow_symlinks: bool = True
) -> list[str]:
    """Return the raw, un-normalized entries of a ``.txt`` or ``.csv`` domain file.

    ``.txt``: one entry per line. ``.csv``: the ``domain``/``website``/``url`` column if the first row
    names one (checked in that order), otherwise the first column with no header row; the delimiter
    (``,``, ``;`` or tab) is guessed from the first 64 KB. Blank lines and lines starting with ``#``
    are skipped. Normalization is left to :func:`normalize_domains` so that rejected entries can be
    reported with their original spelling.

    Raises FileNotFoundError, or :class:`DomainFileError` (a ValueError) naming the file and the
    problem: wrong suffix, not a regular file, larger than `max_bytes` (10 MB), not UTF-8, bad CSV.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".csv"):
        raise DomainFileError(
            f"unsupported domain file type {suffix or '(none)'!r} for {path}; use .txt or .csv"
        )
    text = _decode(path, _read_bytes(path, max_bytes, follow_symlinks))
    if suffix == ".csv":
        return _csv_entries(path, text)
    return [line for line in (raw_line.strip() for raw_line in text.splitlines()) if _is_entry(line)]
