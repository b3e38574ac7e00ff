"""Asynchronous restocking and batch order processing.

Suppliers are modelled as plain mappings of SKU -> units they can deliver,
so everything here runs deterministically under :func:`asyncio.run`.
"""

from __future__ import annotations

import asyncio
from typing import Dict, List, Mapping, MutableMapping, Sequence, Tuple

from .errors import OutOfStockError, TallyhoError
from .inventory import Inventory
from .orders import Order, Status


async def request_units(supplier: MutableMapping[str, int], sku: str, wanted: int) -> int:
    """Ask one supplier for up to ``wanted`` units; returns how many it sends."""
    await asyncio.sleep(0)
    if wanted <= 0:
        return 0
    on_hand = supplier.get(sku, 0)
    sent = min(on_hand, wanted)
    if sent:
        supplier[sku] = on_hand - sent
    return sent


async def restock(inventory: Inventory, suppliers: Sequence[MutableMapping[str, int]],
                  plan: Mapping[str, int]) -> Dict[str, int]:
    """Fill ``plan`` by asking suppliers in order; returns units received per SKU.

    SKUs that no supplier can provide are left out of the result.
    """
    received: Dict[str, int] = {}
    for sku, wanted in sorted(plan.items()):
        got = 0
        for supplier in suppliers:
            if got >= wanted:
                break
            got += await request_units(supplier, sku, wanted - got)
        if got == 0:
            continue
        inventory.receive(sku, got)
        received[sku] = got
    return received


async def _place_one(order: Order) -> Tuple[str, str]:
    await asyncio.sleep(0)
    try:
        order.place()
    except OutOfStockError as exc:
        return order.order_id, f"short:{exc.sku}:{exc.shortfall}"
    except (TallyhoError, ValueError) as exc:
        return order.order_id, f"error:{exc}"
    return order.order_id, "placed"


async def place_all(orders: Sequence[Order]) -> Dict[str, str]:
    """Place orders in sequence (earlier orders get stock first); maps id -> outcome."""
    results: Dict[str, str] = {}
    for order in orders:
        order_id, outcome = await _place_one(order)
        results[order_id] = outcome
    return results


async def ship_paid(orders: Sequence[Order]) -> List[str]:
    """Ship every paid order concurrently; returns the ids that shipped, sorted."""
    paid = [order for order in orders if order.status is Status.PAID]

    async def ship(order: Order) -> str:
        await asyncio.sleep(0)
        order.ship()
        return order.order_id

    shipped = await asyncio.gather(*(ship(order) for order in paid))
    return sorted(shipped)


def backlog(orders: Sequence[Order]) -> Dict[str, int]:
    """Count open orders by status name, skipping statuses with no orders."""
    counts = {status.value: 0 for status in Status}
    for order in orders:
        if not order.is_open:
            continue
        counts[order.status.value] += 1
    return {name: count for name, count in counts.items() if count}
