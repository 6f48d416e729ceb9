"""Tokenizer for the expression language; offsets are positions in the full string value."""

from __future__ import annotations

import re
from typing import Any

from flowkit.errors import ExitCode, FlowkitError
from flowkit.expressions.values import MAX_EXPRESSION_LENGTH


class ExpressionSyntaxError(FlowkitError):
    """An expression cannot be parsed or checked (a load-time problem).

    `offset` is the 0-based character offset in the full string value; `path` is set by
    `find_references` to where in a nested value the string was found.
    """

    exit_code = ExitCode.INVALID

    def __init__(self, message: str, offset: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.offset = offset
        self.path: tuple[str | int, ...] = ()


# token kinds
NUM, STR, NAME, OP, END, EOF = "number", "string", "name", "op", "end", "eof"


class Token:
    __slots__ = ("end", "kind", "start", "value")

    def __init__(self, kind: str, value: Any, start: int, end: int) -> None:
        self.kind = kind
        self.value = value
        self.start = start
        self.end = end

    def describe(self) -> str:
        if self.kind == END:
            return "`}}`"
        if self.kind == EOF:
            return "the end of the expression"
        if self.kind == STR:
            return "a string"
        if self.kind == NUM:
            return f"number `{self.value}`"
        return f"`{self.value}`"

    def __repr__(self) -> str:  # for debugging only
        return f"Token({self.kind}, {self.value!r}, {self.start})"


_WS = re.compile(r"[ \t\r\n]*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_TWO = frozenset({"==", "!=", "<=", ">=", "&&", "||", "??"})
_ONE = frozenset("()[],.?:!<>+-*/%")
_ESCAPES = {
    "\\": "\\",
    "'": "'",
    '"': '"',
    "/": "/",
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "0": "\0",
}
_MISTAKES = {
    "=": ("`=` is not an operator", "use `==` to compare"),
    "&": ("`&` is not an operator", "use `&&` for and"),
    "|": (
        "`|` is not an operator",
        "use `||` for or; there are no filters: write `lower(x)`, not `x | lower`",
    ),
    "{": ("unexpected `{`", "object literals are not supported; `}}` closes the expression"),
    "}": ("unexpected `}`", "close the expression with `}}`"),
    "`": ("unexpected backtick", "quote strings with ' or \""),
}


_PLAIN = {"'": re.compile(r"[^'\\]+"), '"': re.compile(r'[^"\\]+')}


def _string(text: str, pos: int, limit: int) -> tuple[str, int]:
    """Read a quoted string starting at `pos` (the quote); return its value and end offset.

    Backslash escapes as in JSON; inside single quotes `''` is a quote (as in GitHub Actions).
    Scanning stops at `limit`, the end of the longest allowed expression.
    """
    quote = text[pos]
    plain = _PLAIN[quote]
    out: list[str] = []
    i = pos + 1
    n = min(len(text), limit + 1)
    while i < n:
        m = plain.match(text, i, n)
        if m is not None:
            out.append(m.group())
            i = m.end()
            continue
        c = text[i]
        if c == quote:
            if quote == "'" and i + 1 < n and text[i + 1] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        # a backslash
        if i + 1 >= n:
            break
        e = text[i + 1]
        if e == "u":
            digits = text[i + 2 : i + 6]
            if len(digits) != 4 or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise ExpressionSyntaxError(
                    "`\\u` must be followed by 4 hex digits", i, "e.g. `\\u00e9`"
                )
            out.append(chr(int(digits, 16)))
            i += 6
            continue
        if e not in _ESCAPES:
            raise ExpressionSyntaxError(
                f"unknown escape `\\{e}` in string", i, "write `\\\\` for a backslash"
            )
        out.append(_ESCAPES[e])
        i += 2
    if n <= limit:
        raise ExpressionSyntaxError("unterminated string", pos, f"close it with {quote}")
    raise ExpressionSyntaxError(
        f"expression is longer than {MAX_EXPRESSION_LENGTH:,} characters", pos
    )


def tokenize(text: str, pos: int, opened_at: int | None) -> tuple[list[Token], int]:
    """Tokens from `pos`: up to and including `}}` when `opened_at` (the `${{` offset) is
    given, else to the end of `text`. Returns the tokens and the offset after the last one."""
    tokens: list[Token] = []
    n = len(text)
    start = pos
    limit = start + MAX_EXPRESSION_LENGTH
    while True:
        pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
        if pos > limit:
            raise ExpressionSyntaxError(
                f"expression is longer than {MAX_EXPRESSION_LENGTH:,} characters",
                start if opened_at is None else opened_at,
            )
        if pos >= n:
            if opened_at is not None:
                raise ExpressionSyntaxError(
                    "unterminated `${{`", opened_at, "close the expression with `}}`"
                )
            tokens.append(Token(EOF, None, pos, pos))
            return tokens, pos
        c = text[pos]
        if c == "}" and opened_at is not None and text.startswith("}}", pos):
            tokens.append(Token(END, None, pos, pos + 2))
            return tokens, pos + 2
        if "0" <= c <= "9":
            m = _NUMBER.match(text, pos)
            assert m is not None
            end = m.end()
            if end < n and (text[end].isalnum() or text[end] == "_"):
                raise ExpressionSyntaxError(
                    f"invalid number `{text[pos : end + 1]}`",
                    pos,
                    "names cannot start with a digit",
                )
            raw = m.group()
            try:
                value: Any = float(raw) if m.group(1) or m.group(2) else int(raw)
            except ValueError:
                raise ExpressionSyntaxError("number is too long", pos) from None
            tokens.append(Token(NUM, value, pos, end))
            pos = end
        elif c == "'" or c == '"':
            value, end = _string(text, pos, limit)
            tokens.append(Token(STR, value, pos, end))
            pos = end
        elif c.isalpha() or c == "_":
            m = _NAME.match(text, pos)
            if m is None:  # a non-ASCII letter
                raise ExpressionSyntaxError(
                    f"unexpected character {c!r}", pos, "names use the letters a-z, digits and _"
                )
            tokens.append(Token(NAME, m.group(), pos, m.end()))
            pos = m.end()
        elif text[pos : pos + 2] in _TWO:
            tokens.append(Token(OP, text[pos : pos + 2], pos, pos + 2))
            pos += 2
        elif c in _ONE:
            tokens.append(Token(OP, c, pos, pos + 1))
            pos += 1
        elif c in _MISTAKES:
            message, hint = _MISTAKES[c]
            raise ExpressionSyntaxError(message, pos, hint)
        else:
            raise ExpressionSyntaxError(f"unexpected character {c!r}", pos)
