"""One vocabulary across providers: money in USD, head counts, ranges, countries, industries.

Every provider module maps its own fields through these functions, so a
revenue range from Clearbit, a number from Apollo and a TTM figure from Yahoo
end up in the same units and can be compared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# NAICS 2022 sectors (2-digit codes; 31-33, 44-45 and 48-49 are ranges in NAICS).
NAICS_SECTORS: dict[str, str] = {
    "11": "Agriculture, Forestry, Fishing and Hunting",
    "21": "Mining, Quarrying, and Oil and Gas Extraction",
    "22": "Utilities",
    "23": "Construction",
    "31-33": "Manufacturing",
    "42": "Wholesale Trade",
    "44-45": "Retail Trade",
    "48-49": "Transportation and Warehousing",
    "51": "Information",
    "52": "Finance and Insurance",
    "53": "Real Estate and Rental and Leasing",
    "54": "Professional, Scientific, and Technical Services",
    "55": "Management of Companies and Enterprises",
    "56": "Administrative and Support and Waste Management and Remediation Services",
    "61": "Educational Services",
    "62": "Health Care and Social Assistance",
    "71": "Arts, Entertainment, and Recreation",
    "72": "Accommodation and Food Services",
    "81": "Other Services (except Public Administration)",
    "92": "Public Administration",
}
_RANGE_SECTORS = {
    "31": "31-33",
    "32": "31-33",
    "33": "31-33",
    "44": "44-45",
    "45": "44-45",
    "48": "48-49",
    "49": "48-49",
}

# Provider industry words -> NAICS sector. Checked in order; the first match wins,
# so specific phrases come before generic ones.
_INDUSTRY_KEYWORDS: list[tuple[str, str]] = [
    (
        r"software|saas|internet|information technology|computer|data|cloud|it services|telecom"
        r"|media|publishing|broadcast|entertainment content|video games|communication",
        "51",
    ),
    (
        r"bank|financ|insurance|capital markets|investment|payments|fintech|credit|lending|asset management",
        "52",
    ),
    (r"retail|e-?commerce|apparel|consumer goods|fashion|grocery|department store|sporting goods", "44-45"),
    (r"hospital|health|medical|pharma|biotech|life sciences|clinic", "62"),
    (
        r"manufactur|industrial|machinery|automotive|aerospace|chemicals|electronics|semiconductor|hardware",
        "31-33",
    ),
    (r"transport|logistics|shipping|freight|airline|railroad|trucking|delivery", "48-49"),
    (r"real estate|property|reit", "53"),
    (r"consult|legal|law|accounting|marketing|advertising|design|engineering services|research", "54"),
    (r"education|university|school|e-?learning", "61"),
    (r"hotel|restaurant|food service|hospitality|travel|leisure", "72"),
    (r"utilit|energy|electric|power|water supply", "22"),
    (r"oil|gas|mining|metals", "21"),
    (r"construction|building", "23"),
    (r"wholesale|distribution", "42"),
    (r"agricultur|farming|forestry|fishing", "11"),
    (r"government|public administration|defense", "92"),
    (r"staffing|recruit|security services|facilities", "56"),
    (r"sports|arts|recreation|gaming|casino", "71"),
]


@dataclass(frozen=True)
class Industry:
    naics_sector: str
    label: str


def industry_fields(industry: Industry | None) -> dict[str, str]:
    """The standard profile fields for an industry (none when it is unknown)."""
    if industry is None:
        return {}
    return {"industry_naics": industry.naics_sector, "industry_label": industry.label}


def industry_from_naics(code: str | int | None) -> Industry | None:
    """A NAICS code of any length (2 to 6 digits) -> its sector."""
    if code is None:
        return None
    digits = re.sub(r"\D", "", str(code)[:32])
    if len(digits) < 2:
        return None
    sector = _RANGE_SECTORS.get(digits[:2], digits[:2])
    label = NAICS_SECTORS.get(sector)
    return Industry(sector, label) if label else None


# SIC major group (2 digits) ranges -> NAICS sector, for providers that send SIC codes only.
_SIC_SECTORS: list[tuple[int, int, str]] = [
    (1, 9, "11"),
    (10, 14, "21"),
    (15, 17, "23"),
    (20, 39, "31-33"),
    (40, 47, "48-49"),
    (48, 48, "51"),
    (49, 49, "22"),
    (50, 51, "42"),
    (52, 57, "44-45"),
    (58, 58, "72"),
    (59, 59, "44-45"),
    (60, 64, "52"),
    (65, 65, "53"),
    (66, 67, "52"),
    (70, 70, "72"),
    (72, 72, "81"),
    (73, 73, "54"),
    (75, 76, "81"),
    (78, 79, "71"),
    (80, 80, "62"),
    (81, 81, "54"),
    (82, 82, "61"),
    (83, 83, "62"),
    (84, 84, "71"),
    (86, 86, "81"),
    (87, 87, "54"),
    (88, 89, "81"),
    (91, 97, "92"),
]


def industry_from_sic(code: str | int | None) -> Industry | None:
    """A SIC code (2 to 4 digits) -> its NAICS sector (737x computer services -> Information)."""
    if code is None:
        return None
    digits = re.sub(r"\D", "", str(code))[:4]
    if len(digits) < 2:
        return None
    if digits.startswith("737"):
        return Industry("51", NAICS_SECTORS["51"])
    major = int(digits[:2])
    for low, high, sector in _SIC_SECTORS:
        if low <= major <= high:
            return Industry(sector, NAICS_SECTORS[sector])
    return None


def industry_from_text(*texts: str | None) -> Industry | None:
    """A provider's industry words (e.g. 'computer software', 'Financial Services') -> NAICS sector."""
    for text in texts:
        if not text:
            continue
        lowered = text.lower()
        for pattern, sector in _INDUSTRY_KEYWORDS:
            if re.search(pattern, lowered):
                return Industry(sector, NAICS_SECTORS[sector])
    return None


_MONEY = re.compile(r"\$?\s*([\d.,]+)\s*([kmbt]?)", re.IGNORECASE)
_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def _money(text: str) -> float | None:
    match = _MONEY.search(text)
    if not match:
        return None
    number = match.group(1).replace(",", "")
    try:
        return float(number) * _SCALE[match.group(2).lower()]
    except ValueError:
        return None


@dataclass(frozen=True)
class Span:
    low: float | None
    high: float | None

    @property
    def mid(self) -> float | None:
        if self.low is not None and self.high is not None:
            return (self.low + self.high) / 2
        return self.low if self.low is not None else self.high


def money_range(text: str | None) -> Span | None:
    """'$100M-$250M' -> 1e8..2.5e8; '$10B+' -> 1e10..None; '$1M' -> 1e6..1e6."""
    if not text or not isinstance(text, str):
        return None
    parts = re.split(r"\s*(?:-|\u2013|to)\s*", text.strip(), maxsplit=1)
    low = _money(parts[0])
    if low is None:
        return None
    if len(parts) == 2:
        return Span(low, _money(parts[1]))
    if text.strip().endswith("+"):
        return Span(low, None)
    return Span(low, low)


def count_range(text: str | None) -> Span | None:
    """'51-200' -> 51..200; '10K+' -> 10000..None; '1,001-5,000' -> 1001..5000."""
    return money_range(text)


# Standard head-count bands (the ones Clearbit and Apollo both use).
EMPLOYEE_BANDS: list[tuple[int, int | None, str]] = [
    (1, 10, "1-10"),
    (11, 50, "11-50"),
    (51, 200, "51-200"),
    (201, 500, "201-500"),
    (501, 1000, "501-1000"),
    (1001, 5000, "1001-5000"),
    (5001, 10000, "5001-10000"),
    (10001, None, "10001+"),
]


def employee_band(count: float | int | None) -> str | None:
    if count is None or count < 1:
        return None
    for low, high, label in EMPLOYEE_BANDS:
        if count >= low and (high is None or count <= high):
            return label
    return None


_COUNTRIES = {
    "united states": "US",
    "united states of america": "US",
    "usa": "US",
    "us": "US",
    "u.s.": "US",
    "united kingdom": "GB",
    "uk": "GB",
    "great britain": "GB",
    "england": "GB",
    "gb": "GB",
    "germany": "DE",
    "deutschland": "DE",
    "france": "FR",
    "netherlands": "NL",
    "the netherlands": "NL",
    "sweden": "SE",
    "denmark": "DK",
    "norway": "NO",
    "finland": "FI",
    "ireland": "IE",
    "spain": "ES",
    "italy": "IT",
    "switzerland": "CH",
    "austria": "AT",
    "belgium": "BE",
    "portugal": "PT",
    "poland": "PL",
    "canada": "CA",
    "mexico": "MX",
    "brazil": "BR",
    "argentina": "AR",
    "japan": "JP",
    "china": "CN",
    "india": "IN",
    "australia": "AU",
    "new zealand": "NZ",
    "singapore": "SG",
    "south korea": "KR",
    "korea, republic of": "KR",
    "israel": "IL",
    "south africa": "ZA",
    "united arab emirates": "AE",
    "luxembourg": "LU",
    "hong kong": "HK",
    "taiwan": "TW",
}


def country_code(value: str | None) -> str | None:
    """A country name or code -> ISO 3166-1 alpha-2 (upper case), or None when unknown."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    if text.upper() == "UK":  # BuiltWith and others write UK; ISO 3166-1 says GB
        return "GB"
    if len(text) == 2 and text.isalpha():
        return text.upper()
    return _COUNTRIES.get(text.lower())
