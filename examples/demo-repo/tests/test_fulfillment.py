import asyncio

from tallyho.fulfillment import backlog, place_all, request_units, restock, ship_paid
from tallyho.money import Money
from tallyho.orders import Order, Status


def test_request_units_takes_from_supplier():
    supplier = {"FR-0002": 7}
    assert asyncio.run(request_units(supplier, "FR-0002", 5)) == 5
    assert supplier == {"FR-0002": 2}
    assert asyncio.run(request_units(supplier, "FR-0002", 5)) == 2
    assert supplier == {"FR-0002": 0}
    assert asyncio.run(request_units(supplier, "VG-0007", 3)) == 0
    assert "VG-0007" not in supplier
    assert asyncio.run(request_units({"A": 4}, "A", 0)) == 0


def test_restock_uses_suppliers_in_order(inventory):
    first = {"FR-0002": 4, "VG-0007": 10}
    second = {"FR-0002": 20, "DRY-0031": 1}
    plan = inventory.restock_plan()  # VG-0007: 5, DRY-0031: 5, FR-0002: 12
    received = asyncio.run(restock(inventory, [first, second], plan))
    assert received == {"DRY-0031": 1, "FR-0002": 12, "VG-0007": 5}
    assert first == {"FR-0002": 0, "VG-0007": 5}
    assert second == {"FR-0002": 12, "DRY-0031": 0}
    assert inventory.get("FR-2").quantity == 20
    assert inventory.get("DRY-31").quantity == 6


def test_restock_skips_unavailable_skus(inventory):
    received = asyncio.run(restock(inventory, [{}], {"VG-0007": 3}))
    assert received == {}
    assert inventory.get("VG-7").quantity == 3


def test_place_all_reports_each_outcome(inventory):
    first = Order("a", inventory)
    first.add_line("FR-2", 6)
    second = Order("b", inventory)
    second.add_line("FR-2", 5)
    empty = Order("c", inventory)
    results = asyncio.run(place_all([first, second, empty]))
    assert results == {"a": "placed", "b": "short:FR-0002:3", "c": "error:cannot place an empty order"}
    assert first.status is Status.PLACED
    assert second.status is Status.DRAFT


def test_ship_paid_only_ships_paid_orders(inventory):
    orders = []
    for order_id, sku in [("z", "FR-1"), ("y", "VG-7"), ("x", "DRY-30")]:
        order = Order(order_id, inventory)
        order.add_line(sku, 1)
        order.place()
        orders.append(order)
    orders[0].pay(Money(10000))
    orders[2].pay(Money(10000))
    assert asyncio.run(ship_paid(orders)) == ["x", "z"]
    assert [o.status for o in orders] == [Status.SHIPPED, Status.PLACED, Status.SHIPPED]
    assert inventory.get("FR-1").quantity == 39


def test_backlog_counts_open_orders(inventory):
    draft = Order("d", inventory)
    placed = Order("p", inventory)
    placed.add_line("FR-1", 1)
    placed.place()
    placed2 = Order("p2", inventory)
    placed2.add_line("FR-1", 1)
    placed2.place()
    cancelled = Order("c", inventory)
    cancelled.cancel()
    assert backlog([draft, placed, placed2, cancelled]) == {"draft": 1, "placed": 2}
    assert backlog([]) == {}
