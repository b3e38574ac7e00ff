from tallyho.errors import InvalidTransitionError, OutOfStockError, ParseError, TallyhoError, UnknownItemError


def test_parse_error_message_includes_position_only_when_given():
    assert str(ParseError("bad token", 3)) == "bad token at position 3"
    assert str(ParseError("bad token", 0)) == "bad token at position 0"
    assert str(ParseError("bad token")) == "bad token"
    assert ParseError("x").position is None


def test_error_messages_and_hierarchy():
    err = OutOfStockError("FR-0002", 10, 8)
    assert str(err) == "FR-0002: requested 10, only 8 available"
    assert err.shortfall == 2
    assert str(UnknownItemError("ZZ-0001")) == "unknown item: ZZ-0001"
    assert str(InvalidTransitionError("paid", "place")) == "cannot place an order that is paid"
    for cls in (OutOfStockError, UnknownItemError, InvalidTransitionError, ParseError):
        assert issubclass(cls, TallyhoError)
