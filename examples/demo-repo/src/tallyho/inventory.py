"""Items and the inventory that tracks their stock and reservations."""

from __future__ import annotations

from typing import Callable, Dict, Iterable, Iterator, List, Optional

from .errors import OutOfStockError, UnknownItemError
from .money import Money, total
from .text import normalize_sku, slugify


class Item:
    """A stock-keeping unit with a price, an on-hand quantity and reservations."""

    def __init__(
        self,
        sku: str,
        name: str,
        price: Money,
        quantity: int = 0,
        tags: Iterable[str] = (),
        reorder_level: int = 5,
    ) -> None:
        if quantity < 0:
            raise ValueError("quantity cannot be negative")
        if price.cents < 0:
            raise ValueError("price cannot be negative")
        self.sku = normalize_sku(sku)
        self.name = name.strip()
        self.price = price
        self.quantity = quantity
        self.reserved = 0
        self.reorder_level = reorder_level
        self.tags = sorted({slugify(t) for t in tags if slugify(t)})

    def __repr__(self) -> str:
        return f"Item({self.sku!r}, {self.name!r}, qty={self.quantity}, reserved={self.reserved})"

    @property
    def available(self) -> int:
        """Units on hand that are not reserved for an order."""
        return self.quantity - self.reserved

    @property
    def needs_reorder(self) -> bool:
        return self.available <= self.reorder_level

    @property
    def stock_value(self) -> Money:
        return self.price * self.quantity

    @property
    def slug(self) -> str:
        return slugify(f"{self.name} {self.sku}")

    def has_tag(self, tag: str) -> bool:
        return slugify(tag) in self.tags


class Inventory:
    """A collection of items keyed by normalised SKU."""

    def __init__(self, items: Iterable[Item] = ()) -> None:
        self._items: Dict[str, Item] = {}
        for item in items:
            self.add(item)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, sku: object) -> bool:
        if not isinstance(sku, str):
            return False
        try:
            return normalize_sku(sku) in self._items
        except ValueError:
            return False

    def __iter__(self) -> Iterator[Item]:
        return iter(sorted(self._items.values(), key=lambda item: item.sku))

    def add(self, item: Item) -> Item:
        if item.sku in self._items:
            raise ValueError(f"duplicate SKU {item.sku}")
        self._items[item.sku] = item
        return item

    def get(self, sku: str) -> Item:
        key = normalize_sku(sku)
        try:
            return self._items[key]
        except KeyError:
            raise UnknownItemError(key) from None

    def remove(self, sku: str) -> Item:
        item = self.get(sku)
        if item.reserved:
            raise ValueError(f"{item.sku} has {item.reserved} reserved units")
        del self._items[item.sku]
        return item

    def receive(self, sku: str, quantity: int) -> int:
        """Add delivered units; returns the new on-hand quantity."""
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        item = self.get(sku)
        item.quantity += quantity
        return item.quantity

    def reserve(self, sku: str, quantity: int) -> int:
        """Hold ``quantity`` units for an order; returns units still available."""
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        item = self.get(sku)
        if quantity > item.available:
            raise OutOfStockError(item.sku, quantity, item.available)
        item.reserved += quantity
        return item.available

    def release(self, sku: str, quantity: int) -> None:
        """Return reserved units to the available pool."""
        item = self.get(sku)
        if quantity <= 0 or quantity > item.reserved:
            raise ValueError(f"cannot release {quantity} of {item.reserved} reserved units")
        item.reserved -= quantity

    def ship(self, sku: str, quantity: int) -> None:
        """Remove reserved units from stock because they left the warehouse."""
        item = self.get(sku)
        if quantity <= 0 or quantity > item.reserved:
            raise ValueError(f"cannot ship {quantity} of {item.reserved} reserved units")
        item.reserved -= quantity
        item.quantity -= quantity

    def total_value(self) -> Money:
        return total(item.stock_value for item in self._items.values())

    def find(self, predicate: Callable[[Item], bool]) -> List[Item]:
        return [item for item in self if predicate(item)]

    def search(self, text: str) -> List[Item]:
        """Items whose name or SKU contains ``text``, ignoring case."""
        needle = text.strip().lower()
        if not needle:
            return []
        return [item for item in self if needle in item.name.lower() or needle in item.sku.lower()]

    def low_stock(self) -> List[Item]:
        """Items at or below their reorder level, scarcest first."""
        return sorted(
            (item for item in self._items.values() if item.needs_reorder),
            key=lambda item: (item.available, item.sku),
        )

    def by_tag(self) -> Dict[str, List[str]]:
        groups: Dict[str, List[str]] = {}
        for item in self:
            for tag in item.tags:
                groups.setdefault(tag, []).append(item.sku)
        return dict(sorted(groups.items()))

    def top_by_value(self, n: int = 3) -> List[Item]:
        """The ``n`` items with the highest stock value (ties broken by SKU)."""
        if n <= 0:
            return []
        ranked = sorted(self._items.values(), key=lambda item: (-item.stock_value.cents, item.sku))
        return ranked[:n]

    def restock_plan(self, multiplier: int = 2, minimum: Optional[int] = None) -> Dict[str, int]:
        """Units to order per SKU so each low item reaches ``reorder_level * multiplier``.

        Orders smaller than ``minimum`` are rounded up to ``minimum``.
        """
        plan: Dict[str, int] = {}
        for item in self.low_stock():
            target = item.reorder_level * multiplier
            needed = target - item.available
            if needed <= 0:
                continue
            if minimum is not None and needed < minimum:
                needed = minimum
            plan[item.sku] = needed
        return plan

    def summary(self) -> Dict[str, object]:
        items = list(self._items.values())
        return {
            "skus": len(items),
            "units": sum(item.quantity for item in items),
            "reserved": sum(item.reserved for item in items),
            "value": self.total_value(),
            "low_stock": [item.sku for item in self.low_stock()],
        }
