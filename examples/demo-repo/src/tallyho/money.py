"""Exact money arithmetic on integer cents."""

from __future__ import annotations

from functools import total_ordering
from typing import Iterable, List, Optional, Sequence, Union

from .errors import ParseError

SYMBOLS = {"USD": "$", "GBP": "£", "EUR": "€"}


def div_round_half_up(numerator: int, denominator: int) -> int:
    """Integer division rounding halves away from zero."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    quotient, remainder = divmod(abs(numerator), denominator)
    if remainder * 2 >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


@total_ordering
class Money:
    """An amount of money stored as a whole number of cents."""

    __slots__ = ("cents", "currency")

    def __init__(self, cents: int = 0, currency: str = "USD") -> None:
        if isinstance(cents, bool) or not isinstance(cents, int):
            raise TypeError("cents must be an int")
        self.cents = cents
        self.currency = currency.upper()

    @classmethod
    def parse(cls, text: str, currency: str = "USD") -> "Money":
        """Parse strings such as ``"12.5"``, ``"-$3.07"`` or ``"1,250.00"``."""
        raw = text.strip().replace(",", "")
        negative = False
        if raw[:1] in ("+", "-"):
            negative = raw[0] == "-"
            raw = raw[1:]
        symbol = SYMBOLS.get(currency.upper(), "")
        if symbol and raw.startswith(symbol):
            raw = raw[len(symbol):]
        whole, dot, frac = raw.partition(".")
        if not whole and not frac:
            raise ParseError(f"invalid amount: {text!r}")
        whole = whole or "0"
        if not whole.isdigit() or (frac and not frac.isdigit()):
            raise ParseError(f"invalid amount: {text!r}")
        if len(frac) > 2:
            raise ParseError(f"too many decimal places in {text!r}")
        cents = int(whole) * 100 + int(frac.ljust(2, "0"))
        return cls(-cents if negative else cents, currency)

    @classmethod
    def zero(cls, currency: str = "USD") -> "Money":
        return cls(0, currency)

    def _coerce(self, other: object) -> "Money":
        if not isinstance(other, Money):
            raise TypeError(f"expected Money, got {type(other).__name__}")
        if other.currency != self.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")
        return other

    def __add__(self, other: "Money") -> "Money":
        return Money(self.cents + self._coerce(other).cents, self.currency)

    def __radd__(self, other: Union[int, "Money"]) -> "Money":
        # Lets the builtin sum() start from the integer 0.
        if other == 0:
            return self
        return self.__add__(other)  # type: ignore[arg-type]

    def __sub__(self, other: "Money") -> "Money":
        return Money(self.cents - self._coerce(other).cents, self.currency)

    def __mul__(self, factor: Union[int, float]) -> "Money":
        if isinstance(factor, bool) or not isinstance(factor, (int, float)):
            return NotImplemented
        if isinstance(factor, int):
            return Money(self.cents * factor, self.currency)
        scaled = round(abs(self.cents * factor) + 1e-9)
        return Money(scaled if self.cents * factor >= 0 else -scaled, self.currency)

    __rmul__ = __mul__

    def __neg__(self) -> "Money":
        return Money(-self.cents, self.currency)

    def __abs__(self) -> "Money":
        return Money(abs(self.cents), self.currency)

    def __bool__(self) -> bool:
        return self.cents != 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        return self.cents == other.cents and self.currency == other.currency

    def __lt__(self, other: "Money") -> bool:
        return self.cents < self._coerce(other).cents

    def __hash__(self) -> int:
        return hash((self.cents, self.currency))

    def __repr__(self) -> str:
        return f"Money({self.cents}, {self.currency!r})"

    def __str__(self) -> str:
        sign = "-" if self.cents < 0 else ""
        whole, frac = divmod(abs(self.cents), 100)
        body = f"{whole:,}.{frac:02d}"
        symbol = SYMBOLS.get(self.currency)
        if symbol:
            return f"{sign}{symbol}{body}"
        return f"{sign}{body} {self.currency}"

    def percent(self, basis_points: int) -> "Money":
        """Return ``basis_points / 10000`` of this amount, rounded half up."""
        return Money(div_round_half_up(self.cents * basis_points, 10000), self.currency)

    def allocate(self, ratios: Sequence[int]) -> List["Money"]:
        """Split into parts proportional to ``ratios`` without losing a cent.

        Leftover cents go to the earliest parts, one each.
        """
        if not ratios or any(r < 0 for r in ratios):
            raise ValueError("ratios must be non-empty and non-negative")
        total = sum(ratios)
        if total == 0:
            raise ValueError("ratios must not all be zero")
        sign = -1 if self.cents < 0 else 1
        amount = abs(self.cents)
        shares = [amount * r // total for r in ratios]
        leftover = amount - sum(shares)
        for i in range(len(shares)):
            if leftover == 0:
                break
            if ratios[i] == 0:
                continue
            shares[i] += 1
            leftover -= 1
        return [Money(sign * s, self.currency) for s in shares]

    def split(self, parts: int) -> List["Money"]:
        """Split evenly into ``parts`` amounts."""
        if parts < 1:
            raise ValueError("parts must be at least 1")
        return self.allocate([1] * parts)


def total(amounts: Iterable[Money], currency: Optional[str] = None) -> Money:
    """Sum ``amounts`` in their own currency.

    An empty iterable gives zero in ``currency`` (USD by default).
    """
    result: Optional[Money] = None
    for amount in amounts:
        result = amount if result is None else result + amount
    if result is None:
        return Money.zero(currency or "USD")
    return result
