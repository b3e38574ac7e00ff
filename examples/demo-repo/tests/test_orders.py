import pytest

from tallyho.errors import InvalidTransitionError, OutOfStockError, ParseError, UnknownItemError
from tallyho.money import Money
from tallyho.orders import Order, Status, discount_for


@pytest.mark.parametrize(
    "subtotal, code, expected",
    [
        (5000, None, 0),
        (5000, "", 0),
        (5000, "save10", 500),
        (1995, " SAVE10 ", 200),
        (10000, "BULK15", 1500),
        (9999, "BULK15", 0),
        (2000, "FLAT5", 500),
        (1999, "FLAT5", 0),
    ],
)
def test_discount_for(subtotal, code, expected):
    assert discount_for(Money(subtotal), code) == Money(expected)


def test_discount_never_exceeds_subtotal(monkeypatch):
    from tallyho import orders

    monkeypatch.setitem(orders.DISCOUNT_CODES, "HUGE", ("flat", 10000, 0))
    assert discount_for(Money(300), "HUGE") == Money(300)


def test_unknown_discount_code():
    with pytest.raises(ParseError):
        discount_for(Money(100), "NOPE")


def test_add_line_merges_and_snapshots_price(inventory):
    order = Order("o1", inventory)
    order.add_line("fr-1", 2)
    order.add_line("FR-0001", 3)
    order.add_line("VG-7")
    assert [(l.sku, l.quantity) for l in order.lines] == [("FR-0001", 5), ("VG-0007", 1)]
    assert order.item_count == 6
    assert order.lines[0].total == Money(625)
    inventory.get("FR-1").price = Money(999)
    assert order.lines[0].unit_price == Money(125)


def test_add_line_validation(inventory):
    order = Order("o1", inventory)
    with pytest.raises(ValueError):
        order.add_line("FR-1", 0)
    with pytest.raises(UnknownItemError):
        order.add_line("ZZ-1", 1)
    assert order.lines == []


def test_remove_line(inventory):
    order = Order("o1", inventory)
    order.add_line("FR-1", 5)
    order.add_line("FR-2", 2)
    order.remove_line("FR-1", 2)
    assert order.lines[0].quantity == 3
    order.remove_line("FR-1", 3)
    assert [l.sku for l in order.lines] == ["FR-0002"]
    order.remove_line("fr-2")
    assert order.lines == []
    with pytest.raises(ValueError):
        order.remove_line("FR-2")


def test_totals_with_discount_and_tax(inventory):
    order = Order("o1", inventory, discount_code="SAVE10", tax_basis_points=825)
    order.add_line("DRY-30", 4)  # 1396
    order.add_line("FR-2", 3)  # 135
    assert order.subtotal == Money(1531)
    assert order.discount == Money(153)
    assert order.tax == Money(114)  # 8.25% of 1378 = 113.685
    assert order.total == Money(1492)


def test_receipt(inventory):
    order = Order("o1", inventory, discount_code="FLAT5")
    order.add_line("DRY-31", 4)
    assert order.receipt() == [
        "4 x DRY-0031 @ $5.25 = $21.00",
        "subtotal $21.00",
        "discount -$5.00",
        "total $16.00",
    ]
    plain = Order("o2", inventory, tax_basis_points=1000)
    plain.add_line("FR-2", 1)
    assert plain.receipt() == ["1 x FR-0002 @ $0.45 = $0.45", "subtotal $0.45", "tax $0.05", "total $0.50"]


def test_place_reserves_stock(inventory):
    order = Order("o1", inventory)
    order.add_line("FR-1", 10)
    order.place()
    assert order.status is Status.PLACED
    assert inventory.get("FR-1").reserved == 10
    with pytest.raises(InvalidTransitionError):
        order.add_line("FR-1", 1)
    with pytest.raises(InvalidTransitionError):
        order.remove_line("FR-1")
    with pytest.raises(InvalidTransitionError):
        order.place()


def test_place_is_all_or_nothing(inventory):
    order = Order("o1", inventory)
    order.add_line("FR-1", 10)
    order.add_line("VG-7", 2)
    order.add_line("FR-2", 9)
    with pytest.raises(OutOfStockError):
        order.place()
    assert order.status is Status.DRAFT
    assert [inventory.get(s).reserved for s in ("FR-1", "VG-7", "FR-2")] == [0, 0, 0]


def test_place_empty_order_fails(inventory):
    with pytest.raises(ValueError):
        Order("o1", inventory).place()


def test_partial_then_full_payment(inventory):
    order = Order("o1", inventory)
    order.add_line("FR-1", 4)  # 500
    order.place()
    assert order.pay(Money(200)) == Money(0)
    assert order.status is Status.PLACED
    assert order.balance_due == Money(300)
    assert order.pay(Money(350)) == Money(50)
    assert order.status is Status.PAID
    assert order.balance_due == Money(0)


def test_exact_payment_and_invalid_payments(inventory):
    order = Order("o1", inventory)
    order.add_line("FR-1", 4)
    with pytest.raises(InvalidTransitionError):
        order.pay(Money(500))
    order.place()
    with pytest.raises(ValueError):
        order.pay(Money(0))
    assert order.pay(Money(500)) == Money(0)
    assert order.status is Status.PAID


def test_full_lifecycle(inventory):
    order = Order("o1", inventory)
    order.add_line("VG-7", 3)
    order.place()
    order.pay(Money(597))
    order.ship()
    assert inventory.get("VG-7").quantity == 0
    assert inventory.get("VG-7").reserved == 0
    assert order.is_open
    order.deliver()
    assert not order.is_open
    assert order.history == [Status.DRAFT, Status.PLACED, Status.PAID, Status.SHIPPED, Status.DELIVERED]
    with pytest.raises(InvalidTransitionError) as info:
        order.cancel()
    assert str(info.value) == "cannot cancel an order that is delivered"


def test_ship_requires_payment(inventory):
    order = Order("o1", inventory)
    order.add_line("VG-7", 1)
    order.place()
    with pytest.raises(InvalidTransitionError):
        order.ship()
    with pytest.raises(InvalidTransitionError):
        order.deliver()


def test_cancel_draft_does_not_touch_stock(inventory):
    inventory.reserve("FR-1", 1)
    order = Order("o1", inventory)
    order.add_line("FR-1", 2)
    assert order.cancel() == Money(0)
    assert order.status is Status.CANCELLED
    assert inventory.get("FR-1").reserved == 1


def test_cancel_paid_releases_and_refunds(inventory):
    order = Order("o1", inventory)
    order.add_line("FR-2", 8)
    order.place()
    order.pay(Money(400))
    assert inventory.get("FR-2").available == 0
    assert order.cancel() == Money(360)
    assert inventory.get("FR-2").available == 8
    assert order.amount_paid == Money(0)
    assert order.history[-1] is Status.CANCELLED


def test_cancel_placed_refunds_partial_payment(inventory):
    order = Order("o1", inventory)
    order.add_line("FR-2", 8)
    order.place()
    order.pay(Money(100))
    assert order.cancel() == Money(100)
    assert inventory.get("FR-2").reserved == 0


def test_default_tax_is_zero_and_one_cent_payment(inventory):
    order = Order("o1", inventory)
    order.add_line("FR-1", 40)
    assert order.tax == Money(0)
    assert order.total == Money(5000)
    order.place()
    assert order.pay(Money(1)) == Money(0)
    assert order.balance_due == Money(4999)
