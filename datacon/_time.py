"""Timezone-aware UTC datetimes at microsecond precision.

``TIME_MIN <= t < TIME_MAX`` (1900-01-01 to 2100-01-01 UTC) is the range of datetimes the API
accepts (``datacon._validate.check_time``): inside it every backend orders by time to the
microsecond and reads back the exact value (Redis keeps link times as double-precision
scores, which the range keeps exact; see ``backends.redis.scores``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from datacon.errors import InvalidInputError

__all__ = [
    "TIME_MAX",
    "TIME_MIN",
    "from_epoch_us",
    "parse_iso",
    "to_epoch_us",
    "to_iso",
    "utc_now",
    "utc_or_raise",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The accepted range: ``TIME_MIN <= t < TIME_MAX``.
TIME_MIN = datetime(1900, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(2100, 1, 1, tzinfo=UTC)


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (microsecond precision)."""
    return datetime.now(UTC)


def utc_or_raise(value: object, what: str) -> datetime:
    """Return ``value`` converted to UTC; raise ``InvalidInputError`` if it is not an aware datetime.

    A value whose tzinfo is already ``UTC`` is returned unchanged (the same object).
    """
    if isinstance(value, datetime) and value.tzinfo is UTC:
        return value  # the common case, checked first: it sits in front of every write
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{what} must be timezone-aware (got a naive datetime)")
    return value.astimezone(UTC)


def to_epoch_us(value: datetime) -> int:
    """Microseconds since the Unix epoch (exact integer arithmetic, no float rounding)."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_us(value: int) -> datetime:
    """Inverse of :func:`to_epoch_us`."""
    return _EPOCH + timedelta(0, 0, value)  # positional: about half the cost of microseconds=value


def to_iso(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix and always six fractional digits."""
    v = value.astimezone(UTC)
    # Formatted by hand: strftime("%Y") does not zero-pad years below 1000 on glibc.
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}Z"


def parse_iso(text: str) -> datetime:
    """Parse ISO 8601 (``Z`` or an offset); a naive value is taken as UTC."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is UTC:
        return parsed  # what datacon writes (+00:00): no conversion to make
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
