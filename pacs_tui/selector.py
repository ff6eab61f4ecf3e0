"""Selector expressions: which servers a command, a filter or a batch applies to.

Grammar (whitespace is free between tokens)::

    expr    := and (',' and)*          # ',' is OR
    and     := unary ('&' unary)*      # '&' is AND
    unary   := '!' unary | '(' expr ')' | term
    term    := KEY '=' PATTERN | PATTERN   # a bare pattern matches the name

Keys: ``name``, ``site``, ``role``, ``rack``, ``tag``, ``kind`` (the site's
kind). Patterns are shell globs (``img-*``, ``arch-0[1-4]``) plus numeric
ranges with several digits (``arch-[008-012]`` matches arch-008 … arch-012).
Errors carry the 0-based column of the offending character.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

KEYS = ("name", "site", "role", "rack", "tag", "kind")
_WORD = re.compile(r"[A-Za-z0-9_.*?\[\]/:+@-]+")
_NUMERIC_RANGE = re.compile(r"\[(\d+)-(\d+)\]")


class Selectable(Protocol):
    """What a selector looks at; inventory servers satisfy it."""

    @property
    def name(self) -> str: ...

    @property
    def site(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def rack(self) -> str | None: ...

    @property
    def tags(self) -> Sequence[str]: ...


T = TypeVar("T", bound=Selectable)
Predicate = Callable[[Selectable], bool]


class SelectorError(ValueError):
    """A selector that cannot be parsed; ``position`` is the offending column."""

    def __init__(self, expression: str, position: int, reason: str) -> None:
        self.expression = expression
        self.position = position
        self.reason = reason
        super().__init__(f"{reason} at column {position + 1}")

    def pointer(self) -> str:
        """The expression with a caret under the offending character."""
        return f"{self.expression}\n{' ' * self.position}^ {self.reason}"


@dataclass(frozen=True)
class _Token:
    kind: str  # word, '=', '&', ',', '!', '(', ')', end
    text: str
    pos: int


def _tokens(expression: str) -> list[_Token]:
    out: list[_Token] = []
    i = 0
    while i < len(expression):
        ch = expression[i]
        if ch.isspace():
            i += 1
        elif ch in "=&,!()":
            out.append(_Token(ch, ch, i))
            i += 1
        else:
            match = _WORD.match(expression, i)
            if not match:
                raise SelectorError(expression, i, f"unexpected character {ch!r}")
            out.append(_Token("word", match.group(), i))
            i = match.end()
    out.append(_Token("end", "", len(expression)))
    return out


def _glob_matcher(pattern: str) -> Callable[[str], bool]:
    """Glob match with multi-digit numeric ranges expanded to a regular expression."""
    if not _NUMERIC_RANGE.search(pattern) or all(
        len(lo) == 1 and len(hi) == 1 for lo, hi in _NUMERIC_RANGE.findall(pattern)
    ):
        return lambda value: fnmatch.fnmatchcase(value, pattern)
    parts: list[str] = []
    ranges: list[tuple[int, int, int]] = []
    last = 0
    for m in _NUMERIC_RANGE.finditer(pattern):
        parts.append(fnmatch.translate(pattern[last : m.start()])[4:-3])
        lo, hi = m.group(1), m.group(2)
        parts.append(rf"(?P<r{len(ranges)}>\d+)")
        # Same-width bounds mean zero-padded names: arch-[008-012] never matches arch-9.
        ranges.append((int(lo), int(hi), len(lo) if len(lo) == len(hi) else 0))
        last = m.end()
    parts.append(fnmatch.translate(pattern[last:])[4:-3])
    regex = re.compile("(?s:" + "".join(parts) + r")\Z")

    def match(value: str) -> bool:
        found = regex.match(value)
        if not found:
            return False
        for i, (lo, hi, width) in enumerate(ranges):
            digits = found.group(f"r{i}")
            if (width and len(digits) != width) or not lo <= int(digits) <= hi:
                return False
        return True

    return match


class _Parser:
    def __init__(self, expression: str, site_kinds: Mapping[str, str]) -> None:
        self.expression = expression
        self.tokens = _tokens(expression)
        self.i = 0
        self.site_kinds = site_kinds

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self, kind: str) -> _Token:
        token = self.peek()
        if token.kind != kind:
            wanted = {"word": "a name or key=value", "end": "end of expression"}.get(
                kind, repr(kind)
            )
            found = "end of expression" if token.kind == "end" else repr(token.text)
            raise SelectorError(self.expression, token.pos, f"expected {wanted}, found {found}")
        self.i += 1
        return token

    def parse(self) -> Predicate:
        if self.peek().kind == "end":
            raise SelectorError(self.expression, 0, "empty selector")
        predicate = self.or_()
        self.take("end")
        return predicate

    def or_(self) -> Predicate:
        options = [self.and_()]
        while self.peek().kind == ",":
            self.i += 1
            options.append(self.and_())
        return options[0] if len(options) == 1 else lambda s: any(p(s) for p in options)

    def and_(self) -> Predicate:
        parts = [self.unary()]
        while self.peek().kind == "&":
            self.i += 1
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else lambda s: all(p(s) for p in parts)

    def unary(self) -> Predicate:
        token = self.peek()
        if token.kind == "!":
            self.i += 1
            inner = self.unary()
            return lambda s: not inner(s)
        if token.kind == "(":
            self.i += 1
            inner = self.or_()
            self.take(")")
            return inner
        return self.term()

    def term(self) -> Predicate:
        word = self.take("word")
        if self.peek().kind != "=":
            return self._field("name", word.text)
        if word.text not in KEYS:
            raise SelectorError(
                self.expression, word.pos, f"unknown key {word.text!r} (keys: {', '.join(KEYS)})"
            )
        self.i += 1
        value = self.take("word")
        return self._field(word.text, value.text)

    def _field(self, key: str, pattern: str) -> Predicate:
        match = _glob_matcher(pattern)
        if key == "tag":
            return lambda s: any(match(t) for t in s.tags)
        if key == "rack":
            return lambda s: s.rack is not None and match(s.rack)
        if key == "kind":
            kinds = self.site_kinds
            return lambda s: match(kinds.get(s.site, ""))
        return lambda s: match(str(getattr(s, key)))


def compile_selector(expression: str, site_kinds: Mapping[str, str] | None = None) -> Predicate:
    """Parse ``expression`` into a predicate over servers; raise ``SelectorError``."""
    return _Parser(expression, site_kinds or {}).parse()


def select(
    servers: Iterable[T], expression: str, site_kinds: Mapping[str, str] | None = None
) -> list[T]:
    """The servers ``expression`` matches, in their original order."""
    predicate = compile_selector(expression, site_kinds)
    return [s for s in servers if predicate(s)]
