import pytest

from tallyho import Inventory, Item, Money


def make_inventory():
    return Inventory(
        [
            Item("FR-1", "Green Apple", Money(125), quantity=40, tags=["fruit", "Fresh Produce"], reorder_level=10),
            Item("FR-2", "Banana", Money(45), quantity=8, tags=["fruit"], reorder_level=10),
            Item("VG-7", "Carrot Bunch", Money(199), quantity=3, tags=["veg", "fresh produce"], reorder_level=4),
            Item("DRY-30", "Rolled Oats 1kg", Money(349), quantity=12, tags=["dry goods"], reorder_level=6),
            Item("DRY-31", "Apple Cider Vinegar", Money(525), quantity=5, tags=[], reorder_level=5),
        ]
    )


@pytest.fixture
def inventory():
    return make_inventory()
