"""Personal data: finding it (by column name and by what the values look like) and keeping
its values out of the store."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["REDACTED", "pii_reason", "redact_profile", "sample_strings", "suspected_pii"]

REDACTED = "<pii>"

_PII_NAMES = re.compile(
    r"^(first_?name|last_?name|full_?name|name|surname|given_?name|e_?mail(_address)?|phone|"
    r"phone_?number|mobile|telephone|address|street|street_address|ssn|social_security.*|"
    r"passport.*|ip|ip_?address|dob|date_?of_?birth|birth_?date|credit_?card.*|card_?number|"
    r"iban|account_?number|national_?id|tax_?id|license_?plate|customer_?name|user_?name)$",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_PHONE = re.compile(r"^\+?[\d\s().-]{7,}$")
_DATE = re.compile(r"^\d{1,4}[./-]\d{1,2}[./-]\d{1,4}$")


def _phone(value: str) -> bool:
    digits = sum(ch.isdigit() for ch in value)
    return (
        bool(_PHONE.match(value))
        and digits >= 7
        and not _DATE.match(value)
        and not _IPV4.match(value)
    )


# Checked in order: the first pattern most sample values match names the reason.
_VALUE_PATTERNS: dict[str, Callable[[str], bool]] = {
    "values look like e-mail addresses": lambda v: bool(_EMAIL.match(v)),
    "values look like IP addresses": lambda v: bool(_IPV4.match(v)),
    "values look like phone numbers": _phone,
}


def sample_strings(column: pa.ChunkedArray, n: int = 200) -> list[str]:
    """Up to ``n`` non-missing values of a string column, as text."""
    values = pc.drop_null(column.slice(0, 5 * n))
    if pa.types.is_dictionary(values.type):
        values = pc.cast(values, pa.string())
    return [str(v) for v in values.to_pylist()[:n]]


def pii_reason(name: str, sample: list[str]) -> str | None:
    """Why column ``name`` looks like personal data (by its name or its sample values), if it does.

    Examples
    --------
    >>> pii_reason("email", []), pii_reason("contact", ["a@b.org", "c@d.com"]), pii_reason("x", [])
    ('name suggests personal data', 'values look like e-mail addresses', None)
    """
    if _PII_NAMES.match(name):
        return "name suggests personal data"
    for reason, matches in _VALUE_PATTERNS.items():
        if sample and sum(matches(v) for v in sample) / len(sample) >= 0.8:
            return reason
    return None


def suspected_pii(table: pa.Table, profile: dict[str, Any], declared: list[str]) -> dict[str, str]:
    """Columns that look like personal data but are not ``declared``, with the reason."""
    found = {}
    for name in table.column_names:
        if name in declared:
            continue
        kind = profile["columns"][name]["kind"]
        sample = sample_strings(table.column(name)) if kind in {"categorical", "text"} else []
        reason = pii_reason(name, sample)
        if reason is not None:
            found[name] = reason
    return found


def redact_profile(profile: dict[str, Any], columns: dict[str, str | None]) -> None:
    """Keep personal data out of a profile, in place.

    ``columns`` maps each PII column to why it is suspected (``None``: declared in the plan).
    Their values (top values, extremes, quantiles) are replaced; counts stay. Top values of
    near-unique string columns (ids, free text) are dropped too: they identify rows.
    """
    for name, column in profile["columns"].items():
        if name in columns:
            column["redacted"] = True
            if columns[name]:
                column["pii_suspected"] = columns[name]
            for entry in column.get("top", []):
                entry["value"] = REDACTED
            for key in ("min", "max"):
                if column.get(key) is not None:
                    column[key] = REDACTED
            for key in ("mean", "std"):
                if key in column:
                    column[key] = None
            if "quantiles" in column:
                column["quantiles"] = {q: None for q in column["quantiles"]}
        elif (
            column["kind"] in {"categorical", "text"}
            and column["count"] > 50
            and (column["distinct"] or 0) > 0.5 * column["count"]
        ):
            column["top"] = []
            column["top_omitted"] = "values are nearly unique per row"
