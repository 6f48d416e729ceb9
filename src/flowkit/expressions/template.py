"""String values with `${{ }}` expressions: compile once (cached), render many times."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

from flowkit.errors import ExpressionError
from flowkit.expressions.lexer import ExpressionSyntaxError, tokenize
from flowkit.expressions.nodes import Node, Path
from flowkit.expressions.parser import Parser, Reference
from flowkit.expressions.values import EvalError, to_text

_OPEN = re.compile(r"\$?\$\{\{")  # `${{` opens an expression, `$${{` is a literal `${{`
_UNPREFIXED = re.compile(r"(?<![$])\{\{.*?\}\}", re.DOTALL)
_SHOWN = 80  # characters of an expression quoted in a message


Render = Callable[[Mapping[str, Any]], Any]


def _reader(expression: Expression, node: Path) -> Render:
    """`expression.evaluate` for a lone `item.id`-style reference, in one call: the keys are
    read here while the data is plain dicts; anything else (a missing name, a list on the
    way) is evaluated by `expression` itself, with its errors."""
    name, keys = node.name, node.steps

    def read(ctx: Mapping[str, Any]) -> Any:
        cur = ctx.get(name, _ABSENT)
        for key in keys:
            if type(cur) is not dict:
                return expression.evaluate(ctx)
            cur = cur.get(key)
        return cur

    return read


_ABSENT = object()


class Expression:
    """One compiled expression; `text` is its source as quoted in error messages."""

    __slots__ = ("node", "offset", "read", "references", "text")

    def __init__(self, node: Node, text: str, offset: int, references: list[Reference]) -> None:
        self.node = node
        self.text = text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
        self.offset = offset
        self.references = tuple(sorted(references, key=lambda r: r.offset))
        # `evaluate`, in one call for an `item.id`-style reference (most expressions)
        self.read: Render = self.evaluate
        if isinstance(node, Path) and node.keys_only:
            self.read = _reader(self, node)

    def evaluate(self, ctx: Mapping[str, Any]) -> Any:
        """The native value of the expression; raises ExpressionError."""
        try:
            return self.node.eval(ctx)
        except EvalError as exc:
            raise ExpressionError(f"{exc.message} in `{self.text}`", hint=exc.hint) from None
        except RecursionError:
            raise ExpressionError(f"data is nested too deeply in `{self.text}`") from None
        except (TypeError, ValueError, ArithmeticError) as exc:  # a value outside JSON types
            raise ExpressionError(f"{exc} in `{self.text}`") from exc

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


def _text(expression: Expression, value: Any) -> str:
    """`to_text(value)`, its error naming `expression`."""
    try:
        return to_text(value)
    except EvalError as exc:
        raise ExpressionError(f"{exc.message} in `{expression.text}`", hint=exc.hint) from None


class Template:
    """A string value: literal text and `${{ }}` expressions."""

    __slots__ = ("_const", "_parts", "_refs", "_single", "source")

    def __init__(self, source: str, parts: list[str | Expression]) -> None:
        self.source = source
        self._parts = tuple(parts)
        exprs = [p for p in parts if isinstance(p, Expression)]
        self._refs = tuple(r for e in exprs for r in e.references)
        self._const: str | None = None if exprs else "".join(p for p in parts if isinstance(p, str))
        self._single: Expression | None = None
        if len(exprs) == 1 and all(isinstance(p, Expression) or not p.strip() for p in parts):
            self._single = exprs[0]

    def is_constant(self) -> bool:
        """No expression at all (a `$${{` escape still counts as constant text)."""
        return self._const is not None

    def is_single(self) -> bool:
        """Exactly one expression and nothing else but whitespace: rendering keeps its type."""
        return self._single is not None

    def expressions(self) -> list[Expression]:
        return [p for p in self._parts if isinstance(p, Expression)]

    def references(self) -> list[Reference]:
        return list(self._refs)

    def render(self, ctx: Mapping[str, Any]) -> Any:
        """The native value for a single expression, else the text with values filled in."""
        if self._single is not None:
            return self._single.read(ctx)
        if self._const is not None:
            return self._const
        out: list[str] = []
        for part in self._parts:
            if type(part) is str:
                out.append(part)
            else:
                value = part.read(ctx)  # type: ignore[union-attr]
                out.append(value if type(value) is str else _text(part, value))  # type: ignore[arg-type]
        return "".join(out)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


def _expression(text: str, start: int, opened_at: int | None) -> tuple[Expression, int]:
    tokens, end = tokenize(text, start, opened_at)
    parser = Parser(text, tokens)
    node = parser.parse()
    source_end = end - 2 if opened_at is not None else end
    return Expression(node, text[start:source_end].strip(), start, parser.references), end


@functools.lru_cache(maxsize=8192)
def compile_template(text: str) -> Template:
    """Parse a string value once; raises ExpressionSyntaxError with the offset of the problem."""
    parts: list[str | Expression] = []
    buf: list[str] = []
    pos = 0
    while True:
        m = _OPEN.search(text, pos)
        if m is None:
            buf.append(text[pos:])
            break
        buf.append(text[pos : m.start()])
        if m.end() - m.start() == 4:  # `$${{`
            buf.append("${{")
            pos = m.end()
            continue
        literal = "".join(buf)
        if literal:
            parts.append(literal)
        buf = []
        expr, pos = _expression(text, m.end(), m.start())
        parts.append(expr)
    literal = "".join(buf)
    if literal:
        parts.append(literal)
    return Template(text, parts)


@functools.lru_cache(maxsize=1024)
def compile_expression(text: str) -> Expression:
    """Parse a bare expression without `${{ }}` (e.g. for fields that are always expressions)."""
    return _expression(text, 0, None)[0]


def has_expression(text: str) -> bool:
    """True when `text` holds a `${{` that is not escaped as `$${{`."""
    if not isinstance(text, str) or "${{" not in text:
        return False
    return any(m.end() - m.start() == 3 for m in _OPEN.finditer(text))


def looks_like_unprefixed_template(text: str) -> bool:
    """True for `{{ x }}` without the `$`: a GitHub/Jinja habit the validator can hint about."""
    return isinstance(text, str) and "{{" in text and _UNPREFIXED.search(text) is not None


def render_value(value: Any, ctx: Mapping[str, Any]) -> Any:
    """Render every string in a nested value; dict keys and other scalars are left as they are."""
    t = type(value)
    if t is str:
        if "${{" not in value:
            return value
        return compile_template(value).render(ctx)
    if t is dict:
        return {k: render_value(item, ctx) for k, item in value.items()}
    if t is list:
        return [render_value(item, ctx) for item in value]
    if isinstance(value, str):
        return render_value(str(value), ctx)
    if isinstance(value, Mapping):
        return {k: render_value(item, ctx) for k, item in value.items()}
    if isinstance(value, tuple):
        return [render_value(item, ctx) for item in value]
    return value


def compile_value(value: Any) -> Render:
    """`render_value` compiled: a function of the context that renders `value` the same way.

    The walk over `value` (types, `${{` checks, template look-ups) happens once, here; each
    call only evaluates the expressions and builds fresh dicts and lists. Constants are
    returned as they are, like `render_value` does.
    """
    t = type(value)
    if t is str:
        if "${{" not in value:
            return lambda _ctx: value
        template = compile_template(value)
        single = template._single
        # a lone expression renders to its own value: call it without `render` in between
        return template.render if single is None else single.read
    if t is dict or (not isinstance(value, str) and isinstance(value, Mapping)):
        pairs = tuple((k, compile_value(item)) for k, item in value.items())
        # Small mappings (most `with:` blocks) are built by one expression: a comprehension
        # is a function call of its own (Python 3.11), once per step and item.
        if len(pairs) == 1:
            ((k0, r0),) = pairs
            return lambda ctx: {k0: r0(ctx)}
        if len(pairs) == 2:
            (k0, r0), (k1, r1) = pairs
            return lambda ctx: {k0: r0(ctx), k1: r1(ctx)}
        return lambda ctx: {k: render(ctx) for k, render in pairs}
    if t is list or isinstance(value, tuple):
        fns = tuple(compile_value(item) for item in value)
        return lambda ctx: [render(ctx) for render in fns]
    if isinstance(value, str):
        return compile_value(str(value))
    return lambda _ctx: value


def _collect(value: Any, path: tuple[str | int, ...], out: list[Any]) -> None:
    if isinstance(value, str):
        if "${{" in value:
            try:
                template = compile_template(value)
            except ExpressionSyntaxError as exc:
                exc.path = path
                raise
            out.extend((path, ref) for ref in template.references())
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _collect(item, (*path, key if isinstance(key, str | int) else str(key)), out)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _collect(item, (*path, i), out)


def find_references(value: Any) -> list[tuple[tuple[str | int, ...], Reference]]:
    """Every reference in a nested value, with the path to the string that holds it.

    Raises ExpressionSyntaxError whose `.path` says where in `value` the bad string is."""
    out: list[tuple[tuple[str | int, ...], Reference]] = []
    _collect(value, (), out)
    return out
