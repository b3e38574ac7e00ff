"""tallyho: a tiny stock-keeping and order-tracking library."""

from .errors import (
    InvalidTransitionError,
    OutOfStockError,
    ParseError,
    TallyhoError,
    UnknownItemError,
)
from .inventory import Inventory, Item
from .money import Money
from .orders import Order, Status
from .query import compile_query, select

__version__ = "0.3.1"

__all__ = [
    "InvalidTransitionError",
    "Inventory",
    "Item",
    "Money",
    "Order",
    "OutOfStockError",
    "ParseError",
    "Status",
    "TallyhoError",
    "UnknownItemError",
    "compile_query",
    "select",
]
