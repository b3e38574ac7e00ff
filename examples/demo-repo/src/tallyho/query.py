"""A tiny filter language for inventory items.

Examples::

    qty > 10 and tag:fruit
    name ~ "apple" or not (price >= 2.50)
    sku = ab-12

Grammar (``or`` binds loosest)::

    expr       := term ("or" term)*
    term       := factor ("and" factor)*
    factor     := "not" factor | "(" expr ")" | comparison
    comparison := FIELD OP VALUE | "tag" ":" VALUE
"""

from __future__ import annotations

from typing import Callable, List, NamedTuple, Optional

from .errors import ParseError
from .inventory import Item
from .money import Money
from .text import normalize_sku

Predicate = Callable[[Item], bool]

NUMERIC_FIELDS = {
    "qty": lambda item: item.quantity,
    "available": lambda item: item.available,
    "reserved": lambda item: item.reserved,
    "price": lambda item: item.price.cents,
}
TEXT_FIELDS = {
    "name": lambda item: item.name.lower(),
    "sku": lambda item: item.sku,
}
OPERATORS = ("<=", ">=", "!=", "=", "<", ">", "~", ":")
KEYWORDS = ("and", "or", "not")


class Token(NamedTuple):
    kind: str  # "word", "string", "op", "lparen", "rparen", "keyword", "end"
    text: str
    position: int


def tokenize(source: str) -> List[Token]:
    tokens: List[Token] = []
    i = 0
    while i < len(source):
        ch = source[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "()":
            tokens.append(Token("lparen" if ch == "(" else "rparen", ch, i))
            i += 1
            continue
        if ch in "\"'":
            end = source.find(ch, i + 1)
            if end == -1:
                raise ParseError("unterminated string", i)
            tokens.append(Token("string", source[i + 1:end], i))
            i = end + 1
            continue
        op = next((o for o in OPERATORS if source.startswith(o, i)), None)
        if op is not None:
            tokens.append(Token("op", op, i))
            i += len(op)
            continue
        start = i
        while i < len(source) and not source[i].isspace() and source[i] not in "()\"'<>=!~:":
            i += 1
        if i == start:
            raise ParseError(f"unexpected character {ch!r}", i)
        word = source[start:i]
        kind = "keyword" if word.lower() in KEYWORDS else "word"
        tokens.append(Token(kind, word.lower() if kind == "keyword" else word, start))
    tokens.append(Token("end", "", len(source)))
    return tokens


def _compare(op: str, left: object, right: object) -> bool:
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    if op == "<":
        return left < right  # type: ignore[operator]
    if op == "<=":
        return left <= right  # type: ignore[operator]
    if op == ">":
        return left > right  # type: ignore[operator]
    if op == ">=":
        return left >= right  # type: ignore[operator]
    raise ParseError(f"operator {op!r} not supported here")


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = tokenize(source)
        self.pos = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def accept(self, kind: str, text: Optional[str] = None) -> Optional[Token]:
        token = self.current
        if token.kind == kind and (text is None or token.text == text):
            return self.advance()
        return None

    def expect(self, kind: str, what: str) -> Token:
        token = self.accept(kind)
        if token is None:
            raise ParseError(f"expected {what}", self.current.position)
        return token

    def parse(self) -> Predicate:
        predicate = self.expr()
        if self.current.kind != "end":
            raise ParseError(f"unexpected {self.current.text!r}", self.current.position)
        return predicate

    def expr(self) -> Predicate:
        parts = [self.term()]
        while self.accept("keyword", "or"):
            parts.append(self.term())
        if len(parts) == 1:
            return parts[0]
        return lambda item: any(p(item) for p in parts)

    def term(self) -> Predicate:
        parts = [self.factor()]
        while self.accept("keyword", "and"):
            parts.append(self.factor())
        if len(parts) == 1:
            return parts[0]
        return lambda item: all(p(item) for p in parts)

    def factor(self) -> Predicate:
        if self.accept("keyword", "not"):
            inner = self.factor()
            return lambda item: not inner(item)
        if self.accept("lparen"):
            inner = self.expr()
            self.expect("rparen", "')'")
            return inner
        return self.comparison()

    def value(self) -> Token:
        token = self.current
        if token.kind in ("word", "string"):
            return self.advance()
        raise ParseError("expected a value", token.position)

    def comparison(self) -> Predicate:
        field_token = self.expect("word", "a field name")
        field = field_token.text.lower()
        op = self.expect("op", "an operator").text
        raw = self.value()
        if field == "tag":
            if op not in (":", "="):
                raise ParseError("tag only supports ':'", field_token.position)
            tag = raw.text
            return lambda item: item.has_tag(tag)
        if field in NUMERIC_FIELDS:
            getter = NUMERIC_FIELDS[field]
            if field == "price":
                number = Money.parse(raw.text).cents
            elif raw.text.isdigit():
                number = int(raw.text)
            else:
                raise ParseError(f"expected a whole number for {field}", raw.position)
            _compare(op, 0, 0)  # reject ':' and '~' at parse time
            return lambda item: _compare(op, getter(item), number)
        if field in TEXT_FIELDS:
            getter = TEXT_FIELDS[field]
            text = normalize_sku(raw.text) if field == "sku" and op != "~" else raw.text
            if op == "~":
                needle = text.lower() if field == "name" else text.upper()
                return lambda item: needle in getter(item)
            if op not in ("=", "!="):
                raise ParseError(f"{field} only supports =, != and ~", field_token.position)
            wanted = text.lower() if field == "name" else text
            return lambda item: _compare(op, getter(item), wanted)
        raise ParseError(f"unknown field {field!r}", field_token.position)


def compile_query(source: str) -> Predicate:
    """Compile ``source`` into a predicate over :class:`~tallyho.inventory.Item`."""
    if not source.strip():
        return lambda item: True
    return _Parser(source).parse()


def select(items, source: str) -> List[Item]:
    """Items from ``items`` that match the query ``source``."""
    predicate = compile_query(source)
    return [item for item in items if predicate(item)]
