"""End-to-end scenarios that cross module boundaries."""

import asyncio

import tallyho
from tallyho import Inventory, Item, Money, Order, Status, select
from tallyho.fulfillment import restock
from tallyho.text import format_table, pluralize


def test_public_api_exports():
    assert tallyho.__version__ == "0.3.1"
    for name in tallyho.__all__:
        assert hasattr(tallyho, name)
    assert issubclass(tallyho.OutOfStockError, tallyho.TallyhoError)
    assert issubclass(tallyho.ParseError, ValueError)


def test_query_then_order_then_restock(inventory):
    fruit = select(inventory, "tag:fruit and available >= 8")
    order = Order("mix", inventory, discount_code="SAVE10")
    for item in fruit:
        order.add_line(item.sku, 8)
    order.place()
    assert order.total == Money(1224)  # (1000 + 360) - 136
    assert order.pay(Money(1300)) == Money(76)
    order.ship()
    plan = inventory.restock_plan()
    assert plan["FR-0002"] == 20
    received = asyncio.run(restock(inventory, [{"FR-0002": 50}], plan))
    assert received == {"FR-0002": 20}
    assert select(inventory, "sku = FR-2 and qty = 20")


def test_stock_report_table(inventory):
    rows = [[item.sku, item.name, item.quantity, str(item.stock_value)] for item in inventory.low_stock()]
    table = format_table(["sku", "name", "qty", "value"], rows, align_right=[2, 3])
    assert table.splitlines()[2] == "VG-0007  | Carrot Bunch        |   3 |  $5.97"
    assert pluralize("item", len(rows)) == "3 items"


def test_order_in_other_currency_totals():
    inv = Inventory([Item("EU-1", "Croissant", Money(180, "EUR"), quantity=10)])
    order = Order("eu", inv)
    order.add_line("EU-1", 3)
    assert order.subtotal == Money(540, "EUR")
    assert str(order.subtotal) == "€5.40"
    assert order.status is Status.DRAFT
