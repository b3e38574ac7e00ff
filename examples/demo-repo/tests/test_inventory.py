import pytest

from tallyho.errors import OutOfStockError, UnknownItemError
from tallyho.inventory import Inventory, Item
from tallyho.money import Money


def test_item_normalises_fields():
    item = Item(" fr 1 ", "  Green Apple ", Money(125), quantity=4, tags=["Fresh Produce", "fruit", "FRUIT", "!!"])
    assert item.sku == "FR-0001"
    assert item.name == "Green Apple"
    assert item.tags == ["fresh-produce", "fruit"]
    assert item.slug == "green-apple-fr-0001"
    assert item.has_tag("Fresh produce")
    assert not item.has_tag("veg")


def test_item_rejects_negative_values():
    with pytest.raises(ValueError):
        Item("AB-1", "x", Money(1), quantity=-1)
    with pytest.raises(ValueError):
        Item("AB-1", "x", Money(-1))
    Item("AB-1", "free sample", Money(0), quantity=0)


def test_item_available_and_reorder_threshold():
    item = Item("AB-1", "Widget", Money(250), quantity=10, reorder_level=4)
    assert item.available == 10
    assert not item.needs_reorder
    item.reserved = 6
    assert item.available == 4
    assert item.needs_reorder
    item.reserved = 5
    assert not item.needs_reorder


def test_item_stock_value_and_repr():
    item = Item("AB-1", "Widget", Money(250), quantity=3)
    assert item.stock_value == Money(750)
    item.reserved = 1
    assert repr(item) == "Item('AB-0001', 'Widget', qty=3, reserved=1)"


def test_container_protocol(inventory):
    assert len(inventory) == 5
    assert "fr-1" in inventory
    assert "FR 0002" in inventory
    assert "FR-3" not in inventory
    assert "not a sku" not in inventory
    assert 42 not in inventory
    assert [item.sku for item in inventory] == ["DRY-0030", "DRY-0031", "FR-0001", "FR-0002", "VG-0007"]


def test_add_duplicate_and_get_unknown(inventory):
    with pytest.raises(ValueError):
        inventory.add(Item("fr-0001", "Other apple", Money(1)))
    with pytest.raises(UnknownItemError) as info:
        inventory.get("ZZ-9")
    assert info.value.sku == "ZZ-0009"
    assert isinstance(info.value, LookupError)


def test_receive(inventory):
    assert inventory.receive("vg-7", 7) == 10
    assert inventory.get("VG-7").quantity == 10
    with pytest.raises(ValueError):
        inventory.receive("VG-7", 0)


def test_reserve_and_release(inventory):
    assert inventory.reserve("FR-2", 5) == 3
    assert inventory.reserve("FR-2", 3) == 0
    with pytest.raises(OutOfStockError) as info:
        inventory.reserve("FR-2", 1)
    assert (info.value.requested, info.value.available, info.value.shortfall) == (1, 0, 1)
    inventory.release("FR-2", 2)
    assert inventory.get("FR-2").available == 2
    assert inventory.get("FR-2").quantity == 8


def test_reserve_rejects_non_positive(inventory):
    with pytest.raises(ValueError):
        inventory.reserve("FR-2", 0)


def test_release_and_ship_limits(inventory):
    inventory.reserve("FR-1", 4)
    with pytest.raises(ValueError):
        inventory.release("FR-1", 5)
    with pytest.raises(ValueError):
        inventory.ship("FR-1", 0)
    with pytest.raises(ValueError):
        inventory.ship("FR-1", 5)
    inventory.ship("FR-1", 4)
    item = inventory.get("FR-1")
    assert (item.quantity, item.reserved, item.available) == (36, 0, 36)


def test_remove(inventory):
    inventory.reserve("DRY-31", 1)
    with pytest.raises(ValueError):
        inventory.remove("DRY-31")
    inventory.release("DRY-31", 1)
    removed = inventory.remove("DRY-31")
    assert removed.name == "Apple Cider Vinegar"
    assert "DRY-31" not in inventory
    assert len(inventory) == 4


def test_total_value(inventory):
    # 40*125 + 8*45 + 3*199 + 12*349 + 5*525
    assert inventory.total_value() == Money(5000 + 360 + 597 + 4188 + 2625)
    assert Inventory().total_value() == Money(0)


def test_search(inventory):
    assert [i.sku for i in inventory.search("apple")] == ["DRY-0031", "FR-0001"]
    assert [i.sku for i in inventory.search("FR-")] == ["FR-0001", "FR-0002"]
    assert inventory.search("   ") == []


def test_find(inventory):
    cheap = inventory.find(lambda item: item.price < Money(200))
    assert [i.sku for i in cheap] == ["FR-0001", "FR-0002", "VG-0007"]


def test_low_stock_orders_by_availability(inventory):
    assert [i.sku for i in inventory.low_stock()] == ["VG-0007", "DRY-0031", "FR-0002"]
    inventory.reserve("DRY-30", 6)
    assert [i.sku for i in inventory.low_stock()] == ["VG-0007", "DRY-0031", "DRY-0030", "FR-0002"]


def test_by_tag(inventory):
    assert inventory.by_tag() == {
        "dry-goods": ["DRY-0030"],
        "fresh-produce": ["FR-0001", "VG-0007"],
        "fruit": ["FR-0001", "FR-0002"],
        "veg": ["VG-0007"],
    }


def test_top_by_value(inventory):
    assert [i.sku for i in inventory.top_by_value(2)] == ["FR-0001", "DRY-0030"]
    assert len(inventory.top_by_value(10)) == 5
    assert inventory.top_by_value(0) == []


def test_top_by_value_breaks_ties_by_sku():
    inv = Inventory([Item("BB-1", "b", Money(100), 2), Item("AA-1", "a", Money(200), 1), Item("CC-1", "c", Money(1), 1)])
    assert [i.sku for i in inv.top_by_value(2)] == ["AA-0001", "BB-0001"]


def test_restock_plan(inventory):
    assert inventory.restock_plan() == {"VG-0007": 5, "DRY-0031": 5, "FR-0002": 12}
    assert inventory.restock_plan(multiplier=1) == {"VG-0007": 1, "FR-0002": 2}
    assert inventory.restock_plan(multiplier=1, minimum=3) == {"VG-0007": 3, "FR-0002": 3}


def test_summary(inventory):
    inventory.reserve("FR-1", 2)
    summary = inventory.summary()
    assert summary["skus"] == 5
    assert summary["units"] == 68
    assert summary["reserved"] == 2
    assert summary["value"] == Money(12770)
    assert summary["low_stock"] == ["VG-0007", "DRY-0031", "FR-0002"]


def test_item_defaults():
    item = Item("AB-1", "Widget", Money(100))
    assert (item.quantity, item.reserved, item.reorder_level, item.tags) == (0, 0, 5, [])
    assert item.needs_reorder


def test_top_by_value_default_and_release_zero(inventory):
    assert [i.sku for i in inventory.top_by_value()] == ["FR-0001", "DRY-0030", "DRY-0031"]
    inventory.reserve("FR-1", 1)
    with pytest.raises(ValueError):
        inventory.release("FR-1", 0)
