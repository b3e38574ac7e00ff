"""Exception hierarchy shared by every tallyho module."""

from __future__ import annotations

from typing import Optional


class TallyhoError(Exception):
    """Base class for all errors raised by tallyho."""


class ParseError(TallyhoError, ValueError):
    """Raised when a query, amount or SKU cannot be parsed."""

    def __init__(self, message: str, position: Optional[int] = None) -> None:
        self.position = position
        if position is not None:
            message = f"{message} at position {position}"
        super().__init__(message)


class UnknownItemError(TallyhoError, LookupError):
    """Raised when a SKU is not present in an inventory."""

    def __init__(self, sku: str) -> None:
        self.sku = sku
        super().__init__(f"unknown item: {sku}")


class OutOfStockError(TallyhoError):
    """Raised when more units are requested than are available."""

    def __init__(self, sku: str, requested: int, available: int) -> None:
        self.sku = sku
        self.requested = requested
        self.available = available
        self.shortfall = requested - available
        super().__init__(f"{sku}: requested {requested}, only {available} available")


class InvalidTransitionError(TallyhoError):
    """Raised when an order is asked to do something its state forbids."""

    def __init__(self, state: str, action: str) -> None:
        self.state = state
        self.action = action
        super().__init__(f"cannot {action} an order that is {state}")
