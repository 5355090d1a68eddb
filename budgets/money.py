"""Money: Decimal with two places from the request to the database and back, never float.

Amounts are ``DecimalField(max_digits=14, decimal_places=2)`` columns (up to 999,999,999,999.99),
parsed by ``to_money`` (which refuses floats, negatives and a third decimal place) and summed by
``MoneySum``, which is exact on every database: PostgreSQL sums ``numeric`` exactly; SQLite keeps a
decimal column as a REAL, so there each amount is turned into whole cents (exact for any amount of
at most 13 digits) and the cents are summed as integers.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.db import models
from django.db.models import Sum

from core.exceptions import ValidationFailed

MAX_DIGITS = 14
DECIMAL_PLACES = 2
CENT = Decimal("0.01")
ZERO = Decimal("0.00")
MAX_AMOUNT = Decimal("999999999999.99")
HUNDRED = Decimal(100)


def money_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, **kwargs)


def to_money(value, *, field: str = "amount", allow_zero: bool = False) -> Decimal:
    """``value`` (a Decimal, an int or a decimal string) as a two-place Decimal, or 400
    ``VALIDATION_ERROR`` naming ``field``: not a number, a float, not finite, negative (or zero
    unless ``allow_zero``), more than two decimal places, or too large."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValidationFailed(f"{field} must be a decimal string or a Decimal, not a {type(value).__name__}",
                               field=field)
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationFailed(f"{field} must be a decimal number", field=field)
    if not amount.is_finite():
        raise ValidationFailed(f"{field} must be a finite number", field=field)
    if amount < 0 or (amount == 0 and not allow_zero):
        raise ValidationFailed(f"{field} must be {'zero or more' if allow_zero else 'more than zero'}", field=field)
    if amount.as_tuple().exponent < -DECIMAL_PLACES:
        raise ValidationFailed(f"{field} has more than {DECIMAL_PLACES} decimal places", field=field)
    if amount > MAX_AMOUNT:
        raise ValidationFailed(f"{field} is larger than {MAX_AMOUNT}", field=field)
    return amount.quantize(CENT)


def cents(amount: Decimal) -> Decimal:
    """Round a computed amount (a rate times a quantity, a share of a split) to cents, half up."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def percent(part: Decimal, whole: Decimal) -> Decimal | None:
    """``part`` as a percentage of ``whole`` with two places; None when there is no whole."""
    if not whole:
        return None
    return (part * HUNDRED / whole).quantize(CENT, rounding=ROUND_HALF_UP)


def fmt(amount: Decimal | None) -> str | None:
    """How money leaves in JSON and CSV: a string with exactly two places."""
    return None if amount is None else str(amount.quantize(CENT))


class MoneySum(Sum):
    """``SUM`` of a money column, exact on PostgreSQL and on SQLite. Returns a Decimal (None for no
    rows); use it bare, not inside Coalesce or arithmetic, so that its conversion applies."""

    def __init__(self, expression, **extra):
        super().__init__(expression, output_field=money_field(), **extra)

    def as_sqlite(self, compiler, connection, **extra_context):
        clone = self.copy()
        clone.template = "%(function)s(CAST(ROUND(%(distinct)s%(expressions)s * 100) AS INTEGER))"
        return clone.as_sql(compiler, connection, **extra_context)

    def get_db_converters(self, connection):
        converters = super().get_db_converters(connection)
        if connection.vendor == "sqlite":
            converters = [*converters, _from_cents]
        return converters


def _from_cents(value, expression, connection):
    # SQLite answered whole cents (an integer, already a Decimal through the backend's converter).
    return None if value is None else (Decimal(value) / HUNDRED).quantize(CENT)


# The same figure in hand-written SQL, for the benchmark and raw reports.
def sql_money_sum(column: str, vendor: str, condition: str | None = None) -> str:
    inner = f"CAST(ROUND({column} * 100) AS INTEGER)" if vendor == "sqlite" else column
    if condition:
        inner = f"CASE WHEN {condition} THEN {inner} END"
    return f"SUM({inner})"
