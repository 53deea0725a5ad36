"""Tests for the shared domain normalizer: every accept/reject rule, dedupe, file reading, and properties."""

from __future__ import annotations

import csv
import os
import pickle
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enrichment_pipeline.lib import domains
from enrichment_pipeline.lib.domains import (
    MAX_FILE_BYTES,
    SNIFF_BYTES,
    DomainFileError,
    InvalidDomain,
    Rejected,
    normalize_domain,
    normalize_domains,
    read_domain_file,
    sniff_delimiter,
)

SAMPLE_FILE = Path(domains.__file__).resolve().parents[1] / "data" / "sample_domains.txt"
OUTPUT_RE = re.compile(r"^[a-z0-9.-]+$")


def _fullwidth(text: str) -> str:
    """Full-width look-alikes (U+FF01..U+FF5E), written this way to keep the source ASCII-readable."""
    return "".join(chr(ord(ch) + 0xFEE0) for ch in text)


def assert_valid_output(domain: str) -> None:
    """The contract every accepted value must meet, whatever the input looked like."""
    assert OUTPUT_RE.match(domain), domain
    labels = domain.split(".")
    assert len(labels) >= 2, domain
    assert all(1 <= len(label) <= 63 for label in labels), domain
    assert len(domain) <= 253, domain


# --- accepted inputs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("example.com", "example.com"),
        ("https://WWW.Example.co.uk/x?y=1", "example.co.uk"),
        ("http://example.com", "example.com"),
        ("HTTPS://EXAMPLE.COM", "example.com"),
        ("//example.com/path", "example.com"),
        ("Stripe.com", "stripe.com"),
        ("www.hubspot.com", "hubspot.com"),
        ("example.com.", "example.com"),
        ("https://example.com./", "example.com"),
        ("example.com:8080", "example.com"),
        ("example.com:", "example.com"),
        ("https://example.com:443/a/b", "example.com"),
        ("example.com/pricing", "example.com"),
        ("example.com?utm_source=x", "example.com"),
        ("example.com#section", "example.com"),
        ("https://example.com/a?b=c#d", "example.com"),
        ("  example.com \t\n", "example.com"),
        ("shop.example.com", "example.com"),
        ("a.b.c.shop.example.com", "example.com"),
        ("www2.example.com", "example.com"),
        ("shop.example.co.uk", "example.co.uk"),
        ("www.rakuten.co.jp", "rakuten.co.jp"),
        ("my-company.com", "my-company.com"),
        ("3m.com", "3m.com"),
        ("163.com", "163.com"),
        ("ab--cd.com", "ab--cd.com"),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("BÜCHER.DE", "xn--bcher-kva.de"),
        ("https://www.bücher.de/kategorie", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("faß.de", "xn--fa-hia.de"),
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
        (_fullwidth("example.com"), "example.com"),
        ("example。com", "example.com"),
        # The private PSL section keeps hosted storefronts apart instead of merging them into Shopify.
        ("acme.myshopify.com", "acme.myshopify.com"),
        ("www.acme.myshopify.com", "acme.myshopify.com"),
        ("city.kobe.jp", "city.kobe.jp"),
    ],
)
def test_accepts_and_normalizes(raw: str, expected: str) -> None:
    result = normalize_domain(raw)
    assert result == expected
    assert_valid_output(result)
    assert normalize_domain(result) == result


# --- rejected inputs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "empty"),
        ("   \t\n", "empty"),
        ("192.168.0.1", "ip address"),
        ("http://10.0.0.1:8080/admin", "ip address"),
        ("1.2.3", "ip address"),
        ("::1", "ip address"),
        ("2001:db8::1", "ip address"),
        ("[::1]", "ip address"),
        ("https://[2001:db8::1]:443/", "ip address"),
        (_fullwidth("127.0.0.1"), "ip address"),
        ("[not-an-ip]", "bracketed"),
        ("localhost", "localhost"),
        ("http://localhost:3000", "localhost"),
        ("app.localhost", "localhost"),
        ("intranet", "single-label"),
        ("http://intranet/wiki", "single-label"),
        ("co.uk", "public suffix"),
        ("com", "public suffix"),
        ("https://co.uk/", "public suffix"),
        ("github.io", "public suffix"),
        ("..//etc/passwd", "path traversal"),
        ("example.com/../secret", "path traversal"),
        ("example.com%2Fevil", "percent-encoding"),
        ("https://example.com/?q=%20", "percent-encoding"),
        ("user@example.com", "@"),
        ("https://user:pass@example.com/", "@"),
        ("example\\com", "backslash"),
        ("https://example.com\\@evil.com", "backslash"),
        ("http://exa mple.com", "whitespace"),
        ("not a domain", "whitespace"),
        ("exa\u3000mple.com", "whitespace"),
        ("exa\x00mple.com", "control"),
        ("a" * 64 + ".com", "63"),
        (".".join(["a" * 60] * 5) + ".com", "253"),
        ("exa_mple.com", "'_'"),
        ("*.example.com", "'*'"),
        ("exa!mple.com", "'!'"),
        ("example.com:8080:90", "':'"),
        ("-example.com", "hyphen"),
        ("example-.com", "hyphen"),
        ("www.-example.com", "hyphen"),
        ("example..com", "empty label"),
        (".example.com", "empty label"),
        ("example.com..", "empty label"),
        ("example.invalidtld", "unknown top-level domain"),
        ("https://shop.example.invalidtld/x", "unknown top-level domain"),
        ("ftp://example.com", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("https:/example.com", "malformed url"),
        ("https://", "no host"),
        ("https:///path", "no host"),
        ("example.com:99999", "port"),
        ("example.com:http", "port"),
        ("xn--zz.com", "punycode"),
        ("exa⒈mple.com", "internationalized"),
        ("bü_cher.de", "'_'"),
    ],
)
def test_rejects_with_reason(raw: str, fragment: str) -> None:
    with pytest.raises(InvalidDomain) as excinfo:
        normalize_domain(raw)
    assert fragment in excinfo.value.reason.lower(), excinfo.value.reason


def test_rejects_non_string_input() -> None:
    with pytest.raises(InvalidDomain, match="expected a string"):
        normalize_domain(None)  # type: ignore[arg-type]


def test_invalid_domain_is_a_value_error_that_pickles() -> None:
    with pytest.raises(ValueError) as excinfo:
        normalize_domain("localhost")
    err = excinfo.value
    assert isinstance(err, InvalidDomain)
    assert err.raw == "localhost"
    assert "localhost" in str(err)
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.raw, clone.reason) == (err.raw, err.reason)


# --- normalize_domains ------------------------------------------------------------------------------


def test_normalize_domains_keeps_order_dedupes_and_reports_rejections() -> None:
    raws = [
        "https://www.stripe.com/",
        "shopify.com",
        "localhost",
        "stripe.com",
        "https://stripe.com/pricing",
        "co.uk",
        "SHOPIFY.COM.",
        "bücher.de",
        "xn--bcher-kva.de",
        "localhost",
    ]
    accepted, rejected = normalize_domains(raws)
    assert accepted == ["stripe.com", "shopify.com", "xn--bcher-kva.de"]
    assert [r.raw for r in rejected] == ["localhost", "co.uk", "localhost"]
    assert all(isinstance(r, Rejected) and r.reason for r in rejected)
    assert "localhost" in rejected[0].reason


def test_normalize_domains_accepts_any_iterable_and_empty_input() -> None:
    assert normalize_domains(iter(())) == ([], [])
    assert normalize_domains(d for d in ["a.example.com", "b.example.com"]) == (["example.com"], [])


def test_rejected_is_immutable() -> None:
    rejected = Rejected(raw="x", reason="y")
    with pytest.raises(AttributeError):
        rejected.raw = "z"  # type: ignore[misc]


# --- read_domain_file -------------------------------------------------------------------------------


def test_read_txt_skips_blanks_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "domains.txt"
    path.write_text("# header comment\n\nstripe.com\n  https://www.shopify.com/  \n   # indented comment\n\n")
    assert read_domain_file(path) == ["stripe.com", "https://www.shopify.com/"]
    assert read_domain_file(str(path)) == ["stripe.com", "https://www.shopify.com/"]


def test_read_txt_strips_utf8_bom(tmp_path: Path) -> None:
    path = tmp_path / "domains.txt"
    path.write_bytes("\ufeffstripe.com\r\nbücher.de\r\n".encode())
    assert read_domain_file(path) == ["stripe.com", "bücher.de"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("name,website,employees\nStripe,stripe.com,8000\nShopify,https://shopify.com,10000\n", None),
        ("Company,DOMAIN\nStripe,stripe.com\nShopify,https://shopify.com\n", None),
        # "domain" wins over "url" when both are present, whatever the column order.
        ("url,domain\nhttps://x.example/,stripe.com\nhttps://y.example/,https://shopify.com\n", None),
        ("stripe.com,Stripe\nhttps://shopify.com,Shopify\n", None),
        ("name;website\nStripe;stripe.com\nShopify;https://shopify.com\n", None),
        ('website\n"stripe.com"\n\n# skipped\n,\nhttps://shopify.com\n', None),
        ("domain\n", []),
        ("", []),
    ],
)
def test_read_csv(tmp_path: Path, content: str, expected: list[str] | None) -> None:
    path = tmp_path / "domains.CSV"
    path.write_text(content)
    assert read_domain_file(path) == (["stripe.com", "https://shopify.com"] if expected is None else expected)


def test_read_csv_skips_short_rows_and_blank_cells(tmp_path: Path) -> None:
    path = tmp_path / "domains.csv"
    path.write_text("name,website\nStripe,stripe.com\nNoSite\nBlank,\nShopify,shopify.com\n")
    assert read_domain_file(path) == ["stripe.com", "shopify.com"]


def test_read_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        read_domain_file(tmp_path / "missing.txt")


@pytest.mark.parametrize("name", ["domains.json", "domains"])
def test_read_unsupported_extension(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("stripe.com\n")
    with pytest.raises(ValueError, match=r"\.txt or \.csv"):
        read_domain_file(path)


def test_read_directory_and_binary_files_fail_clearly(tmp_path: Path) -> None:
    folder = tmp_path / "folder.txt"
    folder.mkdir()
    with pytest.raises(ValueError, match="not a regular file"):
        read_domain_file(folder)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00stripe.com")
    with pytest.raises(ValueError, match="UTF-8"):
        read_domain_file(binary)


def test_bundled_sample_file() -> None:
    raws = read_domain_file(SAMPLE_FILE)
    accepted, rejected = normalize_domains(raws)
    assert len(accepted) >= 60
    assert len(rejected) == 6
    assert len(raws) > len(accepted) + len(rejected), "sample should contain duplicates in other forms"
    assert {"stripe.com", "shopify.com", "sap.com", "zalando.de", "bbc.co.uk"} <= set(accepted)
    for domain in accepted:
        assert_valid_output(domain)


# --- properties -------------------------------------------------------------------------------------

_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?", fullmatch=True).filter(
    lambda label: label[2:4] != "--"  # reserved for xn-- punycode labels
)
_SUFFIXES = ["com", "co.uk", "de", "io", "com.au", "org", "co.jp", "xn--p1ai", "app", "ai"]
# Appended to the registrable label so that no public suffix rule can ever match it or anything below.
_MARKER = "-qzx"
_UNICODE_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyzäöüßéñçøåжёλ0123456789", min_size=1, max_size=12)


def _mixed_case(text: str, mask: int) -> str:
    return "".join(ch.upper() if mask >> i & 1 else ch for i, ch in enumerate(text))


@st.composite
def plausible_inputs(draw: st.DrawFn) -> tuple[str, str]:
    """A realistic hostname or URL paired with the registrable domain it must normalize to."""
    registrable = f"{draw(_LABEL)}{_MARKER}.{draw(st.sampled_from(_SUFFIXES))}"
    host = ".".join([*draw(st.lists(_LABEL, max_size=3)), registrable])
    host = _mixed_case(host, draw(st.integers(min_value=0, max_value=2 ** len(host) - 1)))
    prefix = draw(st.sampled_from(["", "http://", "https://", "HTTPS://", "//", "www.", "https://www."]))
    dot = draw(st.sampled_from(["", "."]))
    port = draw(st.sampled_from(["", ":80", ":8443", ":"]))
    tail = draw(st.sampled_from(["", "/", "/pricing", "/a/b?x=1&y=2", "?q=1", "#top", "/p#f"]))
    pad = draw(st.sampled_from(["", " ", "\t", "\n "]))
    return f"{pad}{prefix}{host}{dot}{port}{tail}{pad}", registrable


@st.composite
def unicode_hosts(draw: st.DrawFn) -> str:
    labels = draw(st.lists(_UNICODE_LABEL, min_size=1, max_size=3))
    return ".".join([*labels, draw(st.sampled_from([*_SUFFIXES, "рф", "de"]))])


@st.composite
def mutated_inputs(draw: st.DrawFn) -> str:
    """A plausible input with a few arbitrary characters spliced in, to probe the edges of the rules."""
    text, _ = draw(plausible_inputs())
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        pos = draw(st.integers(min_value=0, max_value=len(text)))
        char = draw(st.sampled_from(list("./:-_@%[]\\# ?*!\u3002\uff0e")) | st.characters())
        text = text[:pos] + char + text[pos:]
    return text


any_input = st.one_of(
    st.text(),
    st.text(alphabet="abcxyz019.-:/[]@%_ ", max_size=40),
    plausible_inputs().map(lambda pair: pair[0]),
    unicode_hosts(),
    mutated_inputs(),
)


@settings(max_examples=300, deadline=None)
@given(plausible_inputs())
def test_plausible_inputs_normalize_to_their_registrable_domain(pair: tuple[str, str]) -> None:
    raw, registrable = pair
    assert normalize_domain(raw) == registrable


@settings(max_examples=300, deadline=None)
@given(any_input)
def test_accepted_outputs_are_valid_and_idempotent(raw: str) -> None:
    try:
        result = normalize_domain(raw)
    except InvalidDomain as exc:
        assert exc.reason
        return
    assert_valid_output(result)
    assert normalize_domain(result) == result


@settings(max_examples=300, deadline=None)
@given(st.lists(any_input, max_size=8))
def test_normalize_domains_partitions_every_input(raws: list[str]) -> None:
    expected_accepted: list[str] = []
    expected_rejected: list[str] = []
    for raw in raws:
        try:
            domain = normalize_domain(raw)
        except InvalidDomain:
            expected_rejected.append(raw)
            continue
        if domain not in expected_accepted:
            expected_accepted.append(domain)

    accepted, rejected = normalize_domains(raws)
    assert accepted == expected_accepted
    assert [r.raw for r in rejected] == expected_rejected


# --- hostile files -----------------------------------------------------------------------------------


def _crafted_csv(lines: int = 50, width: int = 6000) -> str:
    """The shape that sends `csv.Sniffer` into cubic backtracking: 300 KB took minutes."""
    return "\n".join("," + " " * width + '"' for _ in range(lines)) + "\nstripe.com\n"


def test_crafted_csv_is_read_without_the_stdlib_sniffer(tmp_path: Path, monkeypatch) -> None:
    def quadratic(*_args, **_kwargs):
        raise AssertionError("csv.Sniffer is quadratic on crafted input; use sniff_delimiter")

    monkeypatch.setattr(csv.Sniffer, "sniff", quadratic)
    path = tmp_path / "crafted.csv"
    path.write_text(_crafted_csv())
    assert path.stat().st_size > 300_000
    entries = read_domain_file(path)
    assert entries[-1] == "stripe.com"


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("name,website\nA,a.com\n", ","),
        ("name;website\nA;a.com\n", ";"),
        ("name\twebsite\nA\ta.com\n", "\t"),
        ('name;website\n"A, Inc.";a.com\n"B, Ltd";b.com\n', ";"),  # commas inside quotes don't count
        ("website\na.com\nb.com\n", ","),  # one column
        ("", ","),
        ("a,b;c\nd;e\nf;g\n", ";"),  # found on more lines wins
    ],
)
def test_sniff_delimiter(sample: str, expected: str) -> None:
    assert sniff_delimiter(sample) == expected


def test_delimiter_is_guessed_from_the_first_64_kb_only(tmp_path: Path) -> None:
    # Semicolon rows first; a long comma tail must not change the guess (nor cost a pass over it).
    head = "name;website\n" + "".join(f"N{i};n{i}.com\n" for i in range(6000))
    assert len(head) > SNIFF_BYTES
    path = tmp_path / "big.csv"
    path.write_text(head + "".join(f"x{i},y,z\n" for i in range(20000)))
    entries = read_domain_file(path)
    assert entries[:2] == ["n0.com", "n1.com"]


def test_file_over_the_size_cap_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    path.write_text("stripe.com\n" * 1000)
    with pytest.raises(DomainFileError, match=r"huge\.txt: larger than 100 bytes"):
        read_domain_file(path, max_bytes=100)
    assert MAX_FILE_BYTES == 10 * 1024 * 1024  # documented in the README


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_instead_of_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    with pytest.raises(DomainFileError, match="not a regular file"):
        read_domain_file(fifo)


def test_device_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "zero.txt"
    link.symlink_to("/dev/zero")
    with pytest.raises(DomainFileError, match="not a regular file"):
        read_domain_file(link)


def test_symlink_refused_when_links_are_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("SENTINEL-SECRET-1234\n")
    link = tmp_path / "inbox.txt"
    link.symlink_to(secret)
    assert read_domain_file(link) == ["SENTINEL-SECRET-1234"]  # the CLI follows links the user gives
    with pytest.raises(DomainFileError, match="symbolic link") as error:
        read_domain_file(link, follow_symlinks=False)
    assert "SENTINEL" not in str(error.value)
    hard = tmp_path / "hard.txt"
    os.link(secret, hard)
    with pytest.raises(DomainFileError, match="hard links"):
        read_domain_file(hard, follow_symlinks=False)


def test_bad_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"stripe.com\nm\xfcller.de\n")
    with pytest.raises(DomainFileError, match=r"latin1\.txt: not valid UTF-8 text \(byte 0xfc on line 2\)"):
        read_domain_file(path)


def test_every_whitespace_and_control_character_is_refused_with_its_reason():
    """Every code point, inside an otherwise valid name: whitespace and control characters are
    refused, each with its own reason, whatever shortcut the check takes for clean names."""
    refused = {}
    for code in range(0x110000):
        ch = chr(code)
        if ch.isspace():
            expected = "contains whitespace"
        elif code < 0x20 or 0x7F <= code < 0xA0:
            expected = "contains control characters"
        else:
            continue
        with pytest.raises(domains.InvalidDomain) as caught:
            normalize_domain(f"ex{ch}ample.com")
        refused[code] = caught.value.reason
        assert caught.value.reason == expected, hex(code)
    assert len(refused) >= 60  # the 65 C0/C1/DEL controls and the Unicode spaces
