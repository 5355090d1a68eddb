"""Money is Decimal with two places from input to the database and back (never float)."""

from decimal import Decimal

import pytest

from budgets.money import MoneySum, to_money
from budgets.services.costs import split
from budgets.tests.factories import CostEntryFactory
from budgets.models import CostEntry
from core.exceptions import ApplicationError


@pytest.mark.parametrize("value, expected", [
    ("100000", Decimal("100000.00")), ("100000.01", Decimal("100000.01")), (Decimal("0.5"), Decimal("0.50")),
    (7, Decimal("7.00")), (" 12.30 ", Decimal("12.30")), ("1E+2", Decimal("100.00")),
])
def test_to_money_accepts_decimals_with_at_most_two_places(value, expected):
    amount = to_money(value)
    assert amount == expected and isinstance(amount, Decimal) and amount.as_tuple().exponent == -2


@pytest.mark.parametrize("value", ["0.001", "12.345", "-1", "-0.01", "0", "NaN", "Infinity", "abc", "", 0.1, True,
                                   "1000000000000.00", None, [], {}])
def test_to_money_refuses_everything_else(value):
    with pytest.raises(ApplicationError) as exc:
        to_money(value)
    assert exc.value.code == "VALIDATION_ERROR" and exc.value.http_status == 400
    assert exc.value.details["field"] == "amount"


def test_zero_only_where_allowed():
    assert to_money("0", allow_zero=True) == Decimal("0.00")


@pytest.mark.django_db
def test_money_sum_is_exact_where_floats_are_not():
    # 0.10 + 0.20 + ... in binary floating point drifts; the ledger's sum does not.
    CostEntryFactory.create_batch(30, amount=Decimal("0.10"))
    budget = CostEntry.objects.first().budget
    CostEntry.objects.update(budget=budget)
    CostEntryFactory(budget=budget, amount=Decimal("999999999.99"))
    total = CostEntry.objects.aggregate(total=MoneySum("amount"))["total"]
    assert total == Decimal("1000000002.99") and isinstance(total, Decimal)
    assert str(total) == "1000000002.99"
    assert CostEntry.objects.filter(pk__in=[]).aggregate(total=MoneySum("amount"))["total"] is None


@pytest.mark.parametrize("amount, shares, parts", [
    ("100.00", ["50", "50"], ["50.00", "50.00"]),
    ("100.00", ["33.3333", "33.3333", "33.3334"], ["33.33", "33.33", "33.34"]),
    ("0.10", ["33.3333", "33.3333", "33.3334"], ["0.03", "0.03", "0.04"]),
    ("1000.01", ["60", "40"], ["600.01", "400.00"]),
    ("10.00", ["100"], ["10.00"]),
])
def test_split_adds_up_to_the_cent(amount, shares, parts):
    result = split(Decimal(amount), [Decimal(s) for s in shares])
    assert [str(p) for p in result] == parts
    assert sum(result) == Decimal(amount)
