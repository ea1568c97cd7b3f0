"""Turn the many ways articles write a date into ISO YYYY-MM-DD, or nothing when no full date is given."""

from __future__ import annotations

import datetime as dt
import re

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}

_NUMERIC = re.compile(r"(?<!\d)(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)")  # 2024-07-07, 2024/7/7
_CHINESE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]")  # 2024年7月7日
_MONTH_FIRST = re.compile(  # Jul 07,2024 / February 20, 2019 / July 2nd, 2021
    r"\b([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?\s*,?\s*(\d{4})(?!\d)"
)
_DAY_FIRST = re.compile(r"(?<!\d)(\d{1,2})\s+([A-Za-z]{3,9})\.?,?\s+(\d{4})(?!\d)")  # 02 Jul 2021


def to_iso_date(value: object) -> str:
    """The first full calendar date found in ``value`` as YYYY-MM-DD, else "".

    YAML already turns ``2024-07-07`` into a date object; strings may be ISO, RFC 2822
    ("Fri, 02 Jul 2021 11:59:33 GMT"), English ("Jul 07,2024") or Chinese ("2024年7月7日").
    A year or month alone is not a date a reader can cite, so it gives "".
    """
    if isinstance(value, (dt.date, dt.datetime)):
        return value.strftime("%Y-%m-%d")
    text = str(value)
    for pattern, order in (
        (_NUMERIC, "ymd"),
        (_CHINESE, "ymd"),
        (_MONTH_FIRST, "mdy"),
        (_DAY_FIRST, "dmy"),
    ):
        for match in pattern.finditer(text):
            parts = dict(zip(order, match.groups(), strict=True))
            iso = _checked(parts["y"], parts["m"], parts["d"])
            if iso:
                return iso
    return ""


def _checked(year: str, month: str, day: str) -> str:
    """ISO date when the parts make a real calendar day ("Feb 30" does not)."""
    month_number = int(month) if month.isdigit() else _MONTHS.get(month.lower(), 0)
    try:
        return dt.date(int(year), month_number, int(day)).isoformat()
    except ValueError:
        return ""
