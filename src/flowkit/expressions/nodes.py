"""The syntax tree and its evaluator: each node evaluates itself against a context mapping.

Only mapping keys and list indexes are ever read; no node can reach a Python attribute.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flowkit.expressions import values as v
from flowkit.expressions.values import EvalError

Context = Mapping[str, Any]


class Span:
    """Source text of an access chain up to some operation, sliced only when a message needs it
    (a long `a.b.c...` chain would otherwise keep a copy of its prefix for every step)."""

    __slots__ = ("end", "source", "start")

    def __init__(self, source: str, start: int, end: int) -> None:
        self.source = source
        self.start = start
        self.end = end

    def __str__(self) -> str:
        if self.end - self.start > 60:
            return (
                self.source[self.start : self.start + 25]
                + "..."
                + self.source[self.end - 30 : self.end]
            )
        return self.source[self.start : self.end]


# access operations: (kind, argument, source text before this operation, text of this operation)
KEY, INDEX, DYNAMIC, EACH = 0, 1, 2, 3
Op = tuple[int, Any, Span, str]


class Node:
    __slots__ = ("depth",)

    depth: int

    def eval(self, ctx: Context) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class Literal(Node):
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value
        self.depth = 1

    def eval(self, ctx: Context) -> Any:
        return self.value


class ListLiteral(Node):
    __slots__ = ("items",)

    def __init__(self, items: Sequence[Node]) -> None:
        self.items = tuple(items)
        self.depth = 1 + max((i.depth for i in self.items), default=0)

    def eval(self, ctx: Context) -> Any:
        return [item.eval(ctx) for item in self.items]


class Root(Node):
    """A context name: `steps`, `item`, `secrets`, ..."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name
        self.depth = 1

    def eval(self, ctx: Context) -> Any:
        try:
            return ctx[self.name]
        except KeyError:
            names = ", ".join(sorted(str(k) for k in ctx if not str(k).startswith("__")))
            raise EvalError(
                f"`{self.name}` is not available here",
                f"available names: {names}" if names else None,
            ) from None


def _null(span: Span, op_text: str, what: str) -> EvalError:
    before = str(span)
    parts = before.split(".")
    if len(parts) == 2 and parts[0] == "steps" and parts[1].isidentifier():
        return EvalError(
            f"cannot read {what} of null: `{before}` has no result yet",
            "check the step id, and that this step runs after it (`needs:`)",
        )
    return EvalError(
        f"cannot read {what} of null: `{before}` is null",
        f"test it first: `{before} ? {before}{op_text} : null`",
    )


def _key(cur: Any, key: Any, span: Span, op_text: str) -> Any:
    # `type(...) is dict` first: most values are plain dicts, and an ABC check costs more
    if type(cur) is dict or isinstance(cur, Mapping):
        try:
            return cur.get(key)
        except TypeError:  # an unhashable key
            return None
    what = repr(key) if isinstance(key, str) else f"[{key}]"
    if cur is None:
        raise _null(span, op_text, what)
    before = str(span)
    if v.is_list(cur):
        raise EvalError(
            f"cannot read {what} of a list: `{before}` is a list of {len(cur)}",
            f"use `{before}[*]{op_text}` to read it from every element, or an index like"
            f" `{before}[0]{op_text}`",
        )
    raise EvalError(f"cannot read {what} of {v.type_name(cur)}: `{before}` is {v.describe(cur)}")


def _index(cur: Any, index: int, span: Span, op_text: str) -> Any:
    if v.is_list(cur) or isinstance(cur, str):
        try:
            return cur[index]
        except IndexError:
            return None
    if isinstance(cur, Mapping):
        return cur.get(index)
    if cur is None:
        raise _null(span, op_text, f"[{index}]")
    before = str(span)
    raise EvalError(
        f"cannot index {v.type_name(cur)} with [{index}]: `{before}` is {v.describe(cur)}"
    )


def _each(cur: Any, span: Span) -> list[Any]:
    if v.is_list(cur):
        return list(cur)
    if isinstance(cur, Mapping):
        return list(cur.values())
    if cur is None:
        raise _null(span, "[*]", "[*]")
    before = str(span)
    raise EvalError(
        f"cannot use [*] on {v.type_name(cur)}: `{before}` is {v.describe(cur)}",
        "[*] maps over the elements of a list (or the values of an object)",
    )


def walk(cur: Any, ops: tuple[Op, ...], start: int, ctx: Context) -> Any:
    """Apply access operations `ops[start:]` to `cur`; `[*]` maps the rest over elements."""
    for i in range(start, len(ops)):
        kind, arg, before, op_text = ops[i]
        if kind == KEY:
            cur = cur.get(arg) if type(cur) is dict else _key(cur, arg, before, op_text)
        elif kind == INDEX:
            cur = _index(cur, arg, before, op_text)
        elif kind == DYNAMIC:
            key = arg.eval(ctx)
            if isinstance(key, str):
                cur = _key(cur, key, before, f"[{v.describe(key)}]")
            else:
                index = v.as_int_index(key)
                if index is None:
                    raise EvalError(
                        f"an index must be a whole number or a string, got"
                        f" {v.what(key)} in `{op_text}`"
                    )
                cur = _index(cur, index, before, f"[{index}]")
        else:
            elements = _each(cur, before)
            if i + 1 == len(ops):
                return elements
            return [walk(element, ops, i + 1, ctx) for element in elements]
    return cur


class Access(Node):
    """`base.a[0][x][*].b`: a base node followed by key, index and projection operations."""

    __slots__ = ("base", "ops")

    def __init__(self, base: Node, ops: Sequence[Op]) -> None:
        self.base = base
        self.ops = tuple(ops)
        dynamic = [op[1].depth for op in self.ops if op[0] == DYNAMIC]
        projections = sum(1 for op in self.ops if op[0] == EACH)
        self.depth = 1 + projections + max([base.depth, *dynamic])

    def eval(self, ctx: Context) -> Any:
        return walk(self.base.eval(ctx), self.ops, 0, ctx)


class Path(Access):
    """`name.a.b[0]`: a context name followed by constant keys and indexes only (the common
    case), evaluated in one loop without calls while the data is plain dicts."""

    __slots__ = ("keys_only", "name", "steps")

    def __init__(self, base: Root, ops: Sequence[Op]) -> None:
        super().__init__(base, ops)
        self.name = base.name
        self.steps = tuple(op[1] for op in self.ops)
        # `item.id`, `steps.fetch.output.id`: most references (`Expression.read` reads them)
        self.keys_only = all(op[0] == KEY and type(op[1]) is str for op in self.ops)

    def eval(self, ctx: Context) -> Any:
        try:
            cur = ctx[self.name]
        except KeyError:
            return self.base.eval(ctx)  # raises the "not available" error
        for i, step in enumerate(self.steps):
            if type(cur) is dict and type(step) is str:
                cur = cur.get(step)
            else:
                return walk(cur, self.ops, i, ctx)
        return cur


class Not(Node):
    __slots__ = ("operand",)

    def __init__(self, operand: Node) -> None:
        self.operand = operand
        self.depth = 1 + operand.depth

    def eval(self, ctx: Context) -> Any:
        return not self.operand.eval(ctx)


class Negate(Node):
    __slots__ = ("operand",)

    def __init__(self, operand: Node) -> None:
        self.operand = operand
        self.depth = 1 + operand.depth

    def eval(self, ctx: Context) -> Any:
        return v.negate(self.operand.eval(ctx))


def _not_equal(a: Any, b: Any) -> bool:
    return not v.equal(a, b)


def _lt(a: Any, b: Any) -> bool:
    return v.compare("<", a, b)


def _le(a: Any, b: Any) -> bool:
    return v.compare("<=", a, b)


def _gt(a: Any, b: Any) -> bool:
    return v.compare(">", a, b)


def _ge(a: Any, b: Any) -> bool:
    return v.compare(">=", a, b)


BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "==": v.equal,
    "!=": _not_equal,
    "<": _lt,
    "<=": _le,
    ">": _gt,
    ">=": _ge,
    "in": v.member,
    "+": v.add,
    "-": v.subtract,
    "*": v.multiply,
    "/": v.divide,
    "%": v.modulo,
}


class Binary(Node):
    __slots__ = ("fn", "left", "op", "right")

    def __init__(self, op: str, left: Node, right: Node) -> None:
        self.op = op
        self.fn = BINARY[op]
        self.left = left
        self.right = right
        self.depth = 1 + max(left.depth, right.depth)

    def eval(self, ctx: Context) -> Any:
        return self.fn(self.left.eval(ctx), self.right.eval(ctx))


class And(Node):
    """`a && b`: a when falsy, else b (like JavaScript and GitHub Actions)."""

    __slots__ = ("left", "right")

    def __init__(self, left: Node, right: Node) -> None:
        self.left = left
        self.right = right
        self.depth = 1 + max(left.depth, right.depth)

    def eval(self, ctx: Context) -> Any:
        value = self.left.eval(ctx)
        return self.right.eval(ctx) if value else value


class Or(And):
    """`a || b`: a when truthy, else b."""

    __slots__ = ()

    def eval(self, ctx: Context) -> Any:
        value = self.left.eval(ctx)
        return value if value else self.right.eval(ctx)


class Coalesce(And):
    """`a ?? b`: a unless it is null, else b."""

    __slots__ = ()

    def eval(self, ctx: Context) -> Any:
        value = self.left.eval(ctx)
        return self.right.eval(ctx) if value is None else value


class Conditional(Node):
    """`cond ? a : b`."""

    __slots__ = ("cond", "no", "yes")

    def __init__(self, cond: Node, yes: Node, no: Node) -> None:
        self.cond = cond
        self.yes = yes
        self.no = no
        self.depth = 1 + max(cond.depth, yes.depth, no.depth)

    def eval(self, ctx: Context) -> Any:
        return self.yes.eval(ctx) if self.cond.eval(ctx) else self.no.eval(ctx)


class Call(Node):
    __slots__ = ("args", "fn", "name", "needs_ctx")

    def __init__(
        self, name: str, fn: Callable[..., Any], needs_ctx: bool, args: Sequence[Node]
    ) -> None:
        self.name = name
        self.fn = fn
        self.needs_ctx = needs_ctx
        self.args = tuple(args)
        self.depth = 1 + max((a.depth for a in self.args), default=0)

    def eval(self, ctx: Context) -> Any:
        args = [a.eval(ctx) for a in self.args]
        if self.needs_ctx:
            return self.fn(ctx, *args)
        return self.fn(*args)
