import pytest

from tallyho.errors import ParseError
from tallyho.query import compile_query, select, tokenize


def skus(inventory, query):
    return [item.sku for item in select(inventory, query)]


def test_tokenize():
    tokens = tokenize('qty>=10 AND (name ~ "green apple")')
    assert [(t.kind, t.text) for t in tokens] == [
        ("word", "qty"),
        ("op", ">="),
        ("word", "10"),
        ("keyword", "and"),
        ("lparen", "("),
        ("word", "name"),
        ("op", "~"),
        ("string", "green apple"),
        ("rparen", ")"),
        ("end", ""),
    ]
    assert [t.position for t in tokens] == [0, 3, 5, 8, 12, 13, 18, 20, 33, 34]


def test_tokenize_errors():
    with pytest.raises(ParseError) as info:
        tokenize("name = 'abc")
    assert info.value.position == 7
    with pytest.raises(ParseError):
        tokenize("qty ! 3")


@pytest.mark.parametrize(
    "query, expected",
    [
        ("qty > 12", ["FR-0001"]),
        ("qty >= 12", ["DRY-0030", "FR-0001"]),
        ("qty < 5", ["VG-0007"]),
        ("qty <= 5", ["DRY-0031", "VG-0007"]),
        ("qty = 8", ["FR-0002"]),
        ("qty != 8", ["DRY-0030", "DRY-0031", "FR-0001", "VG-0007"]),
        ("price < 1.25", ["FR-0002"]),
        ("price <= $1.25", ["FR-0001", "FR-0002"]),
        ("price > 3.49", ["DRY-0031"]),
    ],
)
def test_numeric_comparisons(inventory, query, expected):
    assert skus(inventory, query) == expected


def test_available_and_reserved_fields(inventory):
    inventory.reserve("FR-1", 35)
    assert skus(inventory, "available < 6") == ["DRY-0031", "FR-0001", "VG-0007"]
    assert skus(inventory, "reserved > 0") == ["FR-0001"]


def test_text_fields(inventory):
    assert skus(inventory, "name ~ APPLE") == ["DRY-0031", "FR-0001"]
    assert skus(inventory, 'name = "banana"') == ["FR-0002"]
    assert skus(inventory, "name != banana") == ["DRY-0030", "DRY-0031", "FR-0001", "VG-0007"]
    assert skus(inventory, "sku = fr-2") == ["FR-0002"]
    assert skus(inventory, "sku ~ dry") == ["DRY-0030", "DRY-0031"]


def test_tags(inventory):
    assert skus(inventory, "tag:fruit") == ["FR-0001", "FR-0002"]
    assert skus(inventory, "tag = 'Fresh Produce'") == ["FR-0001", "VG-0007"]


def test_and_binds_tighter_than_or(inventory):
    assert skus(inventory, "tag:veg or tag:fruit and qty > 5") == ["FR-0001", "FR-0002", "VG-0007"]
    assert skus(inventory, "qty > 5 and tag:fruit or tag:veg") == ["FR-0001", "FR-0002", "VG-0007"]
    assert skus(inventory, "(tag:veg or tag:fruit) and qty > 5") == ["FR-0001", "FR-0002"]
    assert skus(inventory, "tag:fruit and qty > 5 and price < 1") == ["FR-0002"]


def test_not(inventory):
    assert skus(inventory, "not tag:fruit") == ["DRY-0030", "DRY-0031", "VG-0007"]
    assert skus(inventory, "not not tag:veg") == ["VG-0007"]
    assert skus(inventory, "not (qty > 5 or tag:veg)") == ["DRY-0031"]


def test_empty_query_matches_everything(inventory):
    assert len(select(inventory, "  ")) == 5
    assert compile_query("")(None) is True


@pytest.mark.parametrize(
    "query, position",
    [
        ("colour = red", 0),
        ("qty >", 5),
        ("qty 5", 4),
        ("qty > 5 tag:fruit", 8),
        ("(qty > 5", 8),
        ("qty > five", 6),
        ("and qty > 1", 0),
        ("name < apple", 0),
        ("tag > fruit", 0),
    ],
)
def test_parse_errors_report_position(query, position):
    with pytest.raises(ParseError) as info:
        compile_query(query)
    assert info.value.position == position


def test_operator_not_valid_for_numbers():
    with pytest.raises(ParseError):
        compile_query("qty ~ 5")
    with pytest.raises(ParseError):
        compile_query("price > cheap")


def test_empty_string_value(inventory):
    assert [(t.kind, t.text) for t in tokenize("name = ''")][2] == ("string", "")
    assert skus(inventory, "name = ''") == []
