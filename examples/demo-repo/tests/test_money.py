import pytest

from tallyho.errors import ParseError
from tallyho.money import Money, div_round_half_up, total


@pytest.mark.parametrize(
    "num, den, expected",
    [(7, 2, 4), (5, 1, 5), (5, 3, 2), (4, 3, 1), (-7, 2, -4), (-4, 3, -1), (6, 3, 2), (0, 5, 0)],
)
def test_div_round_half_up(num, den, expected):
    assert div_round_half_up(num, den) == expected


def test_div_round_half_up_rejects_non_positive_denominator():
    with pytest.raises(ValueError):
        div_round_half_up(1, 0)


@pytest.mark.parametrize(
    "text, cents",
    [
        ("12.34", 1234),
        ("12.5", 1250),
        ("7", 700),
        ("5.", 500),
        (".05", 5),
        ("-$3.07", -307),
        ("+$0.99", 99),
        (" 1,250.00 ", 125000),
    ],
)
def test_parse_valid(text, cents):
    assert Money.parse(text) == Money(cents)


@pytest.mark.parametrize("text", ["", "abc", "1.234", "$", ".", "1.2.3", "1e3", "--5"])
def test_parse_invalid(text):
    with pytest.raises(ParseError):
        Money.parse(text)


def test_parse_uses_currency_symbol():
    assert Money.parse("€4.20", "eur") == Money(420, "EUR")


def test_constructor_defaults_and_rejects_non_int():
    assert Money() == Money(0, "USD")
    with pytest.raises(TypeError):
        Money(1.5)
    with pytest.raises(TypeError):
        Money(True)


def test_add_and_subtract():
    assert Money(150) + Money(275) == Money(425)
    assert Money(150) - Money(275) == Money(-125)


def test_sum_builtin_works():
    assert sum([Money(1), Money(2), Money(3)]) == Money(6)


def test_currency_mismatch():
    with pytest.raises(ValueError):
        Money(1, "USD") + Money(1, "EUR")
    with pytest.raises(TypeError):
        Money(1) + 5


def test_multiply_int_and_float():
    assert Money(125) * 3 == Money(375)
    assert 2 * Money(125) == Money(250)
    assert Money(5) * 0.5 == Money(3)
    assert Money(-5) * 0.5 == Money(-3)
    assert Money(333) * 1.5 == Money(500)
    assert Money(1) * 0.5 == Money(1)
    with pytest.raises(TypeError):
        Money(1) * True
    with pytest.raises(TypeError):
        Money(1) * "2"


def test_comparisons_and_truthiness():
    assert Money(99) < Money(100)
    assert Money(100) <= Money(100)
    assert Money(101) > Money(100)
    assert not Money(0)
    assert Money(-1)
    assert Money(5) != Money(5, "EUR")
    assert len({Money(5), Money(5), Money(6)}) == 2


def test_neg_and_abs():
    assert -Money(30) == Money(-30)
    assert abs(Money(-30)) == Money(30)


@pytest.mark.parametrize(
    "money, text",
    [
        (Money(0), "$0.00"),
        (Money(5), "$0.05"),
        (Money(-1999), "-$19.99"),
        (Money(123456789), "$1,234,567.89"),
        (Money(250, "chf"), "2.50 CHF"),
        (Money(100, "GBP"), "£1.00"),
    ],
)
def test_str(money, text):
    assert str(money) == text


def test_repr():
    assert repr(Money(42, "eur")) == "Money(42, 'EUR')"


def test_percent_rounds_half_up():
    assert Money(1000).percent(825) == Money(83)  # 82.5 -> 83
    assert Money(1999).percent(1000) == Money(200)  # 199.9 -> 200
    assert Money(-1000).percent(825) == Money(-83)
    assert Money(1234).percent(0) == Money(0)


def test_allocate_distributes_remainder_to_first_parts():
    assert Money(100).allocate([1, 1, 1]) == [Money(34), Money(33), Money(33)]
    assert Money(5).allocate([3, 7]) == [Money(2), Money(3)]
    assert Money(-100).allocate([1, 1, 1]) == [Money(-34), Money(-33), Money(-33)]


def test_allocate_skips_zero_ratios_for_leftovers():
    assert Money(10).allocate([0, 1, 2]) == [Money(0), Money(4), Money(6)]
    assert Money(11).allocate([0, 1, 1]) == [Money(0), Money(6), Money(5)]


@pytest.mark.parametrize("ratios", [[], [0, 0], [1, -1], [2, -1]])
def test_allocate_rejects_bad_ratios(ratios):
    with pytest.raises(ValueError):
        Money(100).allocate(ratios)


def test_split():
    parts = Money(1001).split(4)
    assert parts == [Money(251), Money(250), Money(250), Money(250)]
    assert sum(parts) == Money(1001)
    assert Money(7).split(1) == [Money(7)]
    with pytest.raises(ValueError):
        Money(7).split(0)


def test_total():
    assert total([]) == Money(0)
    assert total([], "EUR") == Money(0, "EUR")
    assert total([Money(10), Money(-3), Money(8)]) == Money(15)


def test_total_keeps_currency_of_amounts():
    assert total([Money(1, "EUR"), Money(2, "EUR")]) == Money(3, "EUR")
