"""Times given by users: datetimes (naive = UTC), dates, ISO 8601 strings, or
integers (milliseconds since the epoch)."""
from __future__ import annotations

import datetime as dt
from typing import Union

TimeLike = Union[dt.datetime, dt.date, str, int]


def to_micros(value: TimeLike, what: str = "time") -> int:
    """Microseconds since the epoch, UTC."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a datetime, date, ISO 8601 string or int, not bool")
    if isinstance(value, int):
        return value * 1000  # milliseconds
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "now":
            return to_micros(dt.datetime.now(dt.timezone.utc))
        try:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{what} {value!r} is not an ISO 8601 time "
                             "(e.g. 2026-08-01T00:00:00Z)") from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, dt.date):
        return to_micros(dt.datetime(value.year, value.month, value.day))
    try:  # numpy / pandas timestamps
        import pandas as pd
        if isinstance(value, pd.Timestamp):
            return to_micros(value.to_pydatetime())
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"{what} must be a datetime, date, ISO 8601 string or int (ms), "
                    f"not {type(value).__name__}")


def to_millis(value: TimeLike, what: str = "time") -> int:
    us = to_micros(value, what)
    return us // 1000
