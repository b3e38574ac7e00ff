import pytest

from tallyho.errors import ParseError
from tallyho.text import (
    format_table,
    normalize_sku,
    parse_key_values,
    pluralize,
    slugify,
    title_case,
    truncate,
    wrap,
)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("ab 12", "AB-0012"),
        ("AB-12", "AB-0012"),
        ("ab0012", "AB-0012"),
        (" dry_30 ", "DRY-0030"),
        ("WXYZ-123456", "WXYZ-123456"),
        ("fr-1", "FR-0001"),
    ],
)
def test_normalize_sku(raw, expected):
    assert normalize_sku(raw) == expected


@pytest.mark.parametrize("raw", ["A-1", "ABCDE-1", "AB", "AB-", "AB-1234567", "12", "AB-12X", "", "1AB-2"])
def test_normalize_sku_rejects(raw):
    with pytest.raises(ParseError):
        normalize_sku(raw)


def test_slugify():
    assert slugify("  Hello, World!  ") == "hello-world"
    assert slugify("Rolled Oats 1kg", sep="_") == "rolled_oats_1kg"
    assert slugify("---") == ""
    assert slugify("a") == "a"
    assert slugify("x--y") == "x-y"


def test_title_case_keeps_small_words_lower_in_the_middle():
    assert title_case("the lord OF the rings") == "The Lord of the Rings"
    assert title_case("what it is for") == "What It Is For"
    assert title_case("a") == "A"
    assert title_case("") == ""


@pytest.mark.parametrize(
    "text, width, expected",
    [
        ("hello world", 11, "hello world"),
        ("hello world", 10, "hello w..."),
        ("hello world", 9, "hello..."),
        ("hello world", 3, "..."),
        ("hello world", 2, ".."),
        ("hello world", 0, ""),
    ],
)
def test_truncate(text, width, expected):
    assert truncate(text, width) == expected


def test_truncate_custom_suffix_and_negative_width():
    assert truncate("abcdefgh", 5, suffix="~") == "abcd~"
    with pytest.raises(ValueError):
        truncate("abc", -1)


def test_wrap_greedy():
    assert wrap("the quick brown fox jumps over", 10) == ["the quick", "brown fox", "jumps over"]
    assert wrap("aa bb cc", 5) == ["aa bb", "cc"]
    assert wrap("exactly", 7) == ["exactly"]
    assert wrap("", 4) == []


def test_wrap_splits_long_words():
    assert wrap("hi abcdefghij", 4) == ["hi", "abcd", "efgh", "ij"]
    assert wrap("abcdefgh x", 4) == ["abcd", "efgh", "x"]
    assert wrap("ab c", 1) == ["a", "b", "c"]
    with pytest.raises(ValueError):
        wrap("x", 0)


@pytest.mark.parametrize(
    "word, count, expected",
    [
        ("item", 1, "1 item"),
        ("item", 0, "0 items"),
        ("box", 2, "2 boxes"),
        ("batch", 3, "3 batches"),
        ("berry", 2, "2 berries"),
        ("tray", 4, "4 trays"),
        ("y", 2, "2 ys"),
    ],
)
def test_pluralize(word, count, expected):
    assert pluralize(word, count) == expected


def test_parse_key_values():
    assert parse_key_values("a=1; B = two ;; c='x y'") == {"a": "1", "b": "two", "c": "x y"}
    assert parse_key_values("k=1;k=2") == {"k": "2"}
    assert parse_key_values("q=\"\"") == {"q": ""}
    assert parse_key_values("q='") == {"q": "'"}
    assert parse_key_values("") == {}


def test_parse_key_values_reports_position():
    with pytest.raises(ParseError) as info:
        parse_key_values("a=1; oops; c=3")
    assert info.value.position == 4
    with pytest.raises(ParseError):
        parse_key_values("=5")


def test_format_table():
    table = format_table(["sku", "qty"], [["FR-0001", 40], ["VG-0007", 3]], align_right=[1])
    assert table.splitlines() == [
        "sku     | qty",
        "--------+----",
        "FR-0001 |  40",
        "VG-0007 |   3",
    ]


def test_format_table_left_align_and_bad_rows():
    assert format_table(["a", "b"], [["xyz", "1"]]) == "a   | b\n----+--\nxyz | 1"
    with pytest.raises(ValueError):
        format_table(["a", "b"], [["only one"]])
