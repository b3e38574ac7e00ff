"""Customer orders: line items, pricing and a small lifecycle state machine."""

from __future__ import annotations

from enum import Enum
from typing import Dict, List, Optional, Tuple

from .errors import InvalidTransitionError, OutOfStockError, ParseError
from .inventory import Inventory
from .money import Money, total


class Status(Enum):
    DRAFT = "draft"
    PLACED = "placed"
    PAID = "paid"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


TRANSITIONS: Dict[Tuple[Status, str], Status] = {
    (Status.DRAFT, "place"): Status.PLACED,
    (Status.DRAFT, "cancel"): Status.CANCELLED,
    (Status.PLACED, "pay"): Status.PAID,
    (Status.PLACED, "cancel"): Status.CANCELLED,
    (Status.PAID, "ship"): Status.SHIPPED,
    (Status.PAID, "cancel"): Status.CANCELLED,
    (Status.SHIPPED, "deliver"): Status.DELIVERED,
}

# code -> (kind, value, minimum subtotal in cents)
DISCOUNT_CODES: Dict[str, Tuple[str, int, int]] = {
    "SAVE10": ("percent", 1000, 0),
    "BULK15": ("percent", 1500, 10000),
    "FLAT5": ("flat", 500, 2000),
}


def discount_for(subtotal: Money, code: Optional[str]) -> Money:
    """Discount granted by ``code`` on ``subtotal``; never more than the subtotal."""
    if not code:
        return Money.zero(subtotal.currency)
    try:
        kind, value, minimum = DISCOUNT_CODES[code.strip().upper()]
    except KeyError:
        raise ParseError(f"unknown discount code {code!r}") from None
    if subtotal.cents < minimum:
        return Money.zero(subtotal.currency)
    if kind == "percent":
        amount = subtotal.percent(value)
    else:
        amount = Money(value, subtotal.currency)
    return min(amount, subtotal)


class LineItem:
    def __init__(self, sku: str, quantity: int, unit_price: Money) -> None:
        self.sku = sku
        self.quantity = quantity
        self.unit_price = unit_price

    @property
    def total(self) -> Money:
        return self.unit_price * self.quantity

    def __repr__(self) -> str:
        return f"LineItem({self.sku!r}, {self.quantity}, {self.unit_price})"


class Order:
    """An order against an :class:`Inventory`.

    Placing reserves stock, shipping consumes it and cancelling a placed or
    paid order hands the reservation back.
    """

    def __init__(self, order_id: str, inventory: Inventory, discount_code: Optional[str] = None,
                 tax_basis_points: int = 0) -> None:
        self.order_id = order_id
        self.inventory = inventory
        self.discount_code = discount_code
        self.tax_basis_points = tax_basis_points
        self.lines: List[LineItem] = []
        self.status = Status.DRAFT
        self.history: List[Status] = [Status.DRAFT]
        self.amount_paid = Money.zero()

    def _transition(self, action: str) -> None:
        key = (self.status, action)
        if key not in TRANSITIONS:
            raise InvalidTransitionError(self.status.value, action)
        self.status = TRANSITIONS[key]
        self.history.append(self.status)

    def _line(self, sku: str) -> Optional[LineItem]:
        for line in self.lines:
            if line.sku == sku:
                return line
        return None

    @property
    def is_open(self) -> bool:
        return self.status not in (Status.DELIVERED, Status.CANCELLED)

    @property
    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)

    def add_line(self, sku: str, quantity: int = 1) -> LineItem:
        """Add units of ``sku`` at its current price, merging with an existing line."""
        if self.status is not Status.DRAFT:
            raise InvalidTransitionError(self.status.value, "edit")
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        item = self.inventory.get(sku)
        line = self._line(item.sku)
        if line is None:
            line = LineItem(item.sku, quantity, item.price)
            self.lines.append(line)
        else:
            line.quantity += quantity
        return line

    def remove_line(self, sku: str, quantity: Optional[int] = None) -> None:
        """Remove ``quantity`` units (or the whole line when ``None``)."""
        if self.status is not Status.DRAFT:
            raise InvalidTransitionError(self.status.value, "edit")
        line = self._line(self.inventory.get(sku).sku)
        if line is None:
            raise ValueError(f"order has no line for {sku}")
        if quantity is None or quantity >= line.quantity:
            self.lines.remove(line)
        else:
            line.quantity -= quantity

    @property
    def subtotal(self) -> Money:
        return total(line.total for line in self.lines)

    @property
    def discount(self) -> Money:
        return discount_for(self.subtotal, self.discount_code)

    @property
    def tax(self) -> Money:
        return (self.subtotal - self.discount).percent(self.tax_basis_points)

    @property
    def total(self) -> Money:
        return self.subtotal - self.discount + self.tax

    @property
    def balance_due(self) -> Money:
        return self.total - self.amount_paid

    def place(self) -> None:
        """Reserve stock for every line; on any shortage nothing stays reserved."""
        if not self.lines:
            raise ValueError("cannot place an empty order")
        if self.status is not Status.DRAFT:
            raise InvalidTransitionError(self.status.value, "place")
        done: List[LineItem] = []
        try:
            for line in self.lines:
                self.inventory.reserve(line.sku, line.quantity)
                done.append(line)
        except OutOfStockError:
            for line in done:
                self.inventory.release(line.sku, line.quantity)
            raise
        self._transition("place")

    def pay(self, amount: Money) -> Money:
        """Record a payment; returns change once the order is fully paid."""
        if self.status is not Status.PLACED:
            raise InvalidTransitionError(self.status.value, "pay")
        if amount.cents <= 0:
            raise ValueError("payment must be positive")
        self.amount_paid = self.amount_paid + amount
        if self.amount_paid < self.total:
            return Money.zero()
        change = self.amount_paid - self.total
        self.amount_paid = self.total
        self._transition("pay")
        return change

    def ship(self) -> None:
        if self.status is not Status.PAID:
            raise InvalidTransitionError(self.status.value, "ship")
        for line in self.lines:
            self.inventory.ship(line.sku, line.quantity)
        self._transition("ship")

    def deliver(self) -> None:
        self._transition("deliver")

    def cancel(self) -> Money:
        """Cancel the order; returns the amount to refund."""
        was_reserved = self.status in (Status.PLACED, Status.PAID)
        self._transition("cancel")
        if was_reserved:
            for line in self.lines:
                self.inventory.release(line.sku, line.quantity)
        refund = self.amount_paid
        self.amount_paid = Money.zero()
        return refund

    def receipt(self) -> List[str]:
        rows = [f"{line.quantity} x {line.sku} @ {line.unit_price} = {line.total}" for line in self.lines]
        rows.append(f"subtotal {self.subtotal}")
        if self.discount:
            rows.append(f"discount -{self.discount}")
        if self.tax:
            rows.append(f"tax {self.tax}")
        rows.append(f"total {self.total}")
        return rows
