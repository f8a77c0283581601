"""Reading a date as the store and the data sets write it: ISO 8601, else RFC 2822 (a Date header); a
date without a zone is UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any


def parse_moment(value: Any) -> datetime | None:
    """The moment `value` names, or None when it names none."""
    if not value:
        return None
    text = str(value)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
