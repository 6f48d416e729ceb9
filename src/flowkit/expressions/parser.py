"""Pratt parser: tokens -> syntax tree, collecting the references a recipe makes.

Precedence, loosest first: `c ? a : b`, `??`, `||`, `&&`, `== !=`, `< <= > >= in`, `+ -`,
`* / %`, unary `! -`, then access `.name [index] [*]` and calls `f(...)`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from flowkit.expressions import nodes as n
from flowkit.expressions.catalog import SPECS
from flowkit.expressions.functions import UNKNOWN, ArgError
from flowkit.expressions.lexer import END, EOF, NAME, NUM, OP, STR, ExpressionSyntaxError, Token
from flowkit.expressions.values import MAX_DEPTH, is_number


@dataclass(frozen=True)
class Reference:
    """A use of a context name: `steps.charges.output.items[0].id` -> root 'steps', path
    ('charges', 'output', 'items', 0, 'id'); the path stops before the first computed index
    or `[*]`. `offset` is where the name starts in the full string value."""

    root: str
    path: tuple[str | int, ...]
    offset: int

    def __str__(self) -> str:
        text = self.root
        for part in self.path:
            text += f"[{part}]" if isinstance(part, int) else f".{part}"
        return text


_INFIX = {
    "??": 2,
    "||": 3,
    "&&": 4,
    "==": 5,
    "!=": 5,
    "<": 6,
    "<=": 6,
    ">": 6,
    ">=": 6,
    "in": 6,
    "+": 7,
    "-": 7,
    "*": 8,
    "/": 8,
    "%": 8,
}
_COMPARISON = (5, 6)
_KEYWORDS = {"true": True, "false": False, "null": None}
# names people bring from GitHub Actions, Jinja or Python
_ALIASES = {
    "length": "len",
    "count": "len",
    "strip": "trim",
    "tojson": "to_json",
    "fromjson": "from_json",
    "json": "to_json",
    "string": "str",
    "number": "float",
    "parseint": "int",
    "parsefloat": "float",
    "lowercase": "lower",
    "uppercase": "upper",
    "sorted": "sort",
    "pluck": "map",
    "where": "filter",
    "select": "filter",
}


def suggest_function(name: str) -> str | None:
    """The built-in function a mistyped name most likely meant, if any."""
    folded = name.lower().replace("_", "")
    for candidate in SPECS:
        if candidate.replace("_", "") == folded:
            return candidate
    if folded in _ALIASES:
        return _ALIASES[folded]
    close = difflib.get_close_matches(name.lower(), list(SPECS), n=1, cutoff=0.6)
    return close[0] if close else None


class Parser:
    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.pos = 0
        self.depth = 0
        self.references: list[Reference] = []

    # -- helpers ---------------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.pos]
        if self.pos < len(self.tokens) - 1:
            self.pos += 1
        return tok

    def at(self, op: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == OP and tok.value == op

    def expect(self, op: str, context: str, hint: str | None = None) -> Token:
        tok = self.peek()
        if not (tok.kind == OP and tok.value == op):
            raise ExpressionSyntaxError(
                f"expected `{op}` {context}, found {tok.describe()}", tok.start, hint
            )
        return self.advance()

    def enter(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionSyntaxError(
                f"expression is nested more than {MAX_DEPTH} levels deep", tok.start
            )

    def leave(self) -> None:
        self.depth -= 1

    def checked(self, node: n.Node, tok: Token) -> n.Node:
        if node.depth > MAX_DEPTH:
            raise ExpressionSyntaxError(
                f"expression is nested more than {MAX_DEPTH} levels deep",
                tok.start,
                "split it into several steps or simplify it",
            )
        return node

    def name_ok(self, tok: Token, parent: str | None = None) -> None:
        name = tok.value
        if name.startswith("__"):
            raise ExpressionSyntaxError(
                f"names starting with `__` are reserved: `{name}`", tok.start
            )
        after = self.peek()
        if (
            after.kind == OP
            and after.value == "-"
            and after.start == tok.end
            and self.peek(1).kind == NAME
            and self.peek(1).start == after.end
        ):
            dashed = self.text[tok.start : self.peek(1).end]
            example = f"{parent}['{dashed}']" if parent else f"item['{dashed}']"
            raise ExpressionSyntaxError(
                f"`{dashed}` reads as a subtraction",
                tok.start,
                f"for a key with a dash write `{example}`; to subtract, put spaces around `-`",
            )

    # -- grammar ---------------------------------------------------------------------------

    def parse(self) -> n.Node:
        tok = self.peek()
        if tok.kind in (END, EOF):
            raise ExpressionSyntaxError(
                "empty expression", tok.start, "write an expression between `${{` and `}}`"
            )
        node = self.expression(0)
        tok = self.peek()
        if tok.kind not in (END, EOF):
            hint = "is an operator missing before it?"
            if tok.kind == OP and tok.value in ")]":
                hint = f"there is no matching opening `{'(' if tok.value == ')' else '['}`"
            elif tok.kind == OP and tok.value == ":":
                hint = "`:` belongs to `cond ? a : b`"
            raise ExpressionSyntaxError(f"unexpected {tok.describe()}", tok.start, hint)
        return node

    def expression(self, min_bp: int) -> n.Node:
        first = self.peek()
        self.enter(first)
        left = self.unary()
        while True:
            tok = self.peek()
            op = tok.value if tok.kind == OP or (tok.kind == NAME and tok.value == "in") else None
            if op == "?":
                if min_bp > 0:
                    break
                self.advance()
                yes = self.expression(0)
                self.expect(":", "in `cond ? a : b`")
                no = self.expression(0)
                left = self.checked(n.Conditional(left, yes, no), tok)
                continue
            bp = _INFIX.get(op) if op is not None else None
            if bp is None or bp <= min_bp:
                break
            self.advance()
            right = self.expression(bp)
            if bp in _COMPARISON:
                after = self.peek()
                after_op = after.value if after.kind in (OP, NAME) else None
                if after_op is not None and _INFIX.get(after_op) == bp:
                    raise ExpressionSyntaxError(
                        "comparisons cannot be chained",
                        after.start,
                        "combine them with `&&`, e.g. `a < b && b < c`",
                    )
            if op == "&&":
                node: n.Node = n.And(left, right)
            elif op == "||":
                node = n.Or(left, right)
            elif op == "??":
                node = n.Coalesce(left, right)
            else:
                assert op is not None
                node = n.Binary(op, left, right)
            left = self.checked(node, tok)
        self.leave()
        return left

    def unary(self) -> n.Node:
        tok = self.peek()
        if tok.kind == OP and tok.value in ("!", "-"):
            self.advance()
            self.enter(tok)
            operand = self.unary()
            self.leave()
            if tok.value == "!":
                return self.checked(n.Not(operand), tok)
            if isinstance(operand, n.Literal) and is_number(operand.value):
                return n.Literal(-operand.value)
            return self.checked(n.Negate(operand), tok)
        return self.postfix()

    def postfix(self) -> n.Node:
        first = self.peek()
        base = self.primary()
        start = first.start
        ops: list[n.Op] = []
        while self.peek().kind == OP:
            tok = self.peek()
            before = n.Span(self.text, start, self.tokens[self.pos - 1].end)
            if tok.value == ".":
                self.advance()
                name = self.advance()
                if name.kind == OP and name.value == "*":
                    ops.append((n.EACH, None, before, ".*"))
                    continue
                if name.kind != NAME:
                    raise ExpressionSyntaxError(
                        f"expected a name after `.`, found {name.describe()}", name.start
                    )
                self.name_ok(name, str(before))
                if self.at("("):
                    spec = SPECS.get(name.value)
                    hint = None
                    if spec is not None:
                        more = "" if spec.max_args == 1 else ", ..."
                        hint = f"write `{name.value}({before}{more})`"
                    raise ExpressionSyntaxError(
                        f"`.{name.value}(...)`: there are no methods, only functions",
                        name.start,
                        hint,
                    )
                ops.append((n.KEY, name.value, before, "." + name.value))
            elif tok.value == "[":
                self.advance()
                if self.at("*") and self.at("]", 1):
                    self.advance()
                    self.advance()
                    ops.append((n.EACH, None, before, "[*]"))
                    continue
                if self.at("]"):
                    raise ExpressionSyntaxError(
                        "empty index `[]`", tok.start, "use an index like `[0]` or `[*]`"
                    )
                self.enter(tok)
                index = self.expression(0)
                self.leave()
                close = self.expect("]", "to close the index")
                op_text = self.text[tok.start : close.end]
                ops.append(self.index_op(index, before, op_text, tok))
            elif tok.value == "(":
                raise ExpressionSyntaxError(
                    "only functions can be called", tok.start, "e.g. `len(x)`"
                )
            else:
                break
        if isinstance(base, n.Root):
            path: list[str | int] = []
            for kind, arg, _, _ in ops:
                if kind not in (n.KEY, n.INDEX):
                    break
                path.append(arg)
            self.references.append(Reference(base.name, tuple(path), start))
        if not ops:
            return base
        if isinstance(base, n.Root) and all(op[0] in (n.KEY, n.INDEX) for op in ops):
            return self.checked(n.Path(base, ops), first)
        return self.checked(n.Access(base, ops), first)

    def index_op(self, index: n.Node, before: n.Span, op_text: str, tok: Token) -> n.Op:
        if not isinstance(index, n.Literal):
            return (n.DYNAMIC, index, before, op_text)
        value = index.value
        if isinstance(value, str):
            if value.startswith("__"):
                raise ExpressionSyntaxError(
                    f"keys starting with `__` are reserved: {value!r}", tok.start
                )
            return (n.KEY, value, before, op_text)
        if type(value) is int:
            return (n.INDEX, value, before, op_text)
        raise ExpressionSyntaxError(
            f"an index must be a whole number or a string, not `{op_text[1:-1].strip()}`",
            tok.start,
        )

    def primary(self) -> n.Node:
        tok = self.advance()
        if tok.kind in (NUM, STR):
            return n.Literal(tok.value)
        if tok.kind == NAME:
            if tok.value in _KEYWORDS:
                return n.Literal(_KEYWORDS[tok.value])
            if tok.value == "in":
                raise ExpressionSyntaxError("expected a value before `in`", tok.start)
            if self.at("("):
                return self.call(tok)
            self.name_ok(tok)
            return n.Root(tok.value)
        if tok.kind == OP and tok.value == "(":
            if self.at(")"):
                raise ExpressionSyntaxError("empty parentheses `()`", tok.start)
            self.enter(tok)
            node = self.expression(0)
            self.leave()
            self.expect(")", "to close the `(`", f"the `(` is at character {tok.start}")
            return node
        if tok.kind == OP and tok.value == "[":
            return self.list_literal(tok)
        if tok.kind in (END, EOF):
            raise ExpressionSyntaxError("expression ends too early: a value is missing", tok.start)
        raise ExpressionSyntaxError(f"expected a value, found {tok.describe()}", tok.start)

    def list_literal(self, open_tok: Token) -> n.Node:
        self.enter(open_tok)
        items: list[n.Node] = []
        while not self.at("]"):
            items.append(self.expression(0))
            if self.at(","):
                self.advance()
            elif not self.at("]"):
                tok = self.peek()
                raise ExpressionSyntaxError(
                    f"expected `,` or `]` in a list, found {tok.describe()}", tok.start
                )
        self.advance()
        self.leave()
        return self.checked(n.ListLiteral(items), open_tok)

    def call(self, name_tok: Token) -> n.Node:
        name = name_tok.value
        spec = SPECS.get(name)
        if spec is None:
            if name.startswith("__"):
                raise ExpressionSyntaxError(
                    f"names starting with `__` are reserved: `{name}`", name_tok.start
                )
            guess = suggest_function(name)
            raise ExpressionSyntaxError(
                f"unknown function `{name}`",
                name_tok.start,
                f"did you mean `{guess}`?" if guess else "the functions are listed in docs",
            )
        self.advance()  # (
        self.enter(name_tok)
        args: list[n.Node] = []
        offsets: list[int] = []
        while not self.at(")"):
            offsets.append(self.peek().start)
            args.append(self.expression(0))
            if self.at(","):
                self.advance()
            elif not self.at(")"):
                tok = self.peek()
                raise ExpressionSyntaxError(
                    f"expected `,` or `)` in the call of `{name}`, found {tok.describe()}",
                    tok.start,
                )
        self.advance()
        self.leave()
        count = len(args)
        if count < spec.min_args or (spec.max_args is not None and count > spec.max_args):
            if spec.max_args is None:
                wanted = f"at least {spec.min_args}"
            elif spec.min_args == spec.max_args:
                wanted = str(spec.min_args)
            else:
                wanted = f"{spec.min_args} to {spec.max_args}"
            plural = "" if wanted in ("1", "at least 1") else "s"
            raise ExpressionSyntaxError(
                f"`{name}()` takes {wanted} argument{plural}, got {count}",
                name_tok.start,
                f"usage: `{spec.signature}`",
            )
        if spec.check is not None:
            literals = [a.value if isinstance(a, n.Literal) else UNKNOWN for a in args]
            try:
                spec.check(literals)
            except ArgError as exc:
                raise ExpressionSyntaxError(exc.message, offsets[exc.position], exc.hint) from None
        return self.checked(n.Call(name, spec.fn, spec.needs_ctx, args), name_tok)
