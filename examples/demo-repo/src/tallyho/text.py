"""String helpers: SKUs, slugs, wrapping and plain-text tables."""

from __future__ import annotations

from typing import Dict, List, Sequence

from .errors import ParseError

SMALL_WORDS = frozenset({"a", "an", "and", "as", "at", "but", "by", "for", "in", "of", "on", "or", "the", "to"})


def normalize_sku(raw: str) -> str:
    """Normalise a SKU to ``PREFIX-NNNN``.

    ``"ab 12"``, ``"AB-12"`` and ``"ab0012"`` all become ``"AB-0012"``.
    The prefix is 2-4 letters and the number at most 6 digits.
    """
    compact = "".join(ch for ch in raw.strip().upper() if ch not in " -_")
    split_at = 0
    while split_at < len(compact) and compact[split_at].isalpha():
        split_at += 1
    prefix, number = compact[:split_at], compact[split_at:]
    if not 2 <= len(prefix) <= 4:
        raise ParseError(f"bad SKU prefix in {raw!r}")
    if not number or not number.isdigit() or len(number) > 6:
        raise ParseError(f"bad SKU number in {raw!r}")
    return f"{prefix}-{int(number):04d}"


def slugify(text: str, sep: str = "-") -> str:
    """Lower-case ``text`` and join its alphanumeric runs with ``sep``."""
    words: List[str] = []
    current: List[str] = []
    for ch in text.lower():
        if ch.isalnum():
            current.append(ch)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return sep.join(words)


def title_case(text: str) -> str:
    """Title-case ``text``, keeping small words lower-case except at the ends."""
    words = text.split()
    result = []
    for index, word in enumerate(words):
        lower = word.lower()
        is_edge = index == 0 or index == len(words) - 1
        if lower in SMALL_WORDS and not is_edge:
            result.append(lower)
        else:
            result.append(lower[:1].upper() + lower[1:])
    return " ".join(result)


def truncate(text: str, width: int, suffix: str = "...") -> str:
    """Shorten ``text`` to at most ``width`` characters, ending with ``suffix``."""
    if width < 0:
        raise ValueError("width must be non-negative")
    if len(text) <= width:
        return text
    if width <= len(suffix):
        return suffix[:width]
    return text[: width - len(suffix)].rstrip() + suffix


def wrap(text: str, width: int) -> List[str]:
    """Greedy word wrap; words longer than ``width`` are hard-split."""
    if width < 1:
        raise ValueError("width must be at least 1")
    lines: List[str] = []
    line = ""
    for word in text.split():
        while len(word) > width:
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:width])
            word = word[width:]
        if not word:
            continue
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line = f"{line} {word}"
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def pluralize(word: str, count: int) -> str:
    """Return ``"<count> <word>"`` with a naive English plural."""
    if count == 1:
        return f"{count} {word}"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        plural = word + "es"
    elif word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        plural = word[:-1] + "ies"
    else:
        plural = word + "s"
    return f"{count} {plural}"


def parse_key_values(text: str) -> Dict[str, str]:
    """Parse ``"a=1; b = two"`` into a dict. Later keys win; empty segments are skipped."""
    result: Dict[str, str] = {}
    offset = 0
    for segment in text.split(";"):
        start = offset
        offset += len(segment) + 1
        if not segment.strip():
            continue
        key, eq, value = segment.partition("=")
        key = key.strip().lower()
        if not eq or not key:
            raise ParseError(f"expected key=value, got {segment.strip()!r}", start)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        result[key] = value
    return result


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], align_right: Sequence[int] = ()) -> str:
    """Render rows as a plain-text table; columns in ``align_right`` are right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    for row in cells:
        if len(row) != len(headers):
            raise ValueError("every row must have one cell per header")
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def render(row: List[str]) -> str:
        parts = []
        for i, cell in enumerate(row):
            parts.append(cell.rjust(widths[i]) if i in align_right else cell.ljust(widths[i]))
        return " | ".join(parts).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([render(cells[0]), rule] + [render(r) for r in cells[1:]])
