"""Recipe expressions: `${{ ... }}` in string values, parsed at load time, evaluated at run time.

The syntax follows GitHub Actions expressions
(https://docs.github.com/en/actions/learn-github-actions/expressions) with a few additions
(arithmetic, `??`, `in`, `cond ? a : b`, `[*]` projections, more functions). Expressions are
safe: a hand-written tokenizer and Pratt parser build a small tree that is walked against
JSON-like data. Nothing is passed to `eval`, no Python attribute is ever read (only mapping
keys and list indexes), names starting with `__` are rejected, and sizes are capped
(10,000 characters per expression, 100 levels of nesting, 1,000,000 characters per built
string, 100,000 elements per built list), so a recipe cannot run code, read files or hang.

Strings and types
    `x: ${{ steps.charges.output.items }}`   exactly one expression (whitespace around it is
                                             allowed) keeps its type: list, object, number,
                                             bool or null
    `memo: "Charge ${{ item.id }}"`          embedded in text it renders as text: null -> "",
                                             true -> "true", lists/objects -> compact JSON,
                                             numbers as written (12.5, 12.0, 3)
    `$${{ x }}`                              a literal `${{ x }}` (the `$$` escapes it)
    `{{ x }}`                                plain text, not an expression (see
                                             `looks_like_unprefixed_template`)

Literals: `12`, `-3`, `12.5`, `1e3`, `'single'` (`''` or `\\'` for a quote), `"double"` (JSON
escapes: `\\n \\t \\" \\\\ \\uXXXX`), `true`, `false`, `null`, lists `[a, b]`.

Access: `a.b.c`, `a['key']`, `a[0]`, `a[-1]`, `a[i]` (computed index), `a[*].b` (read `.b` of
every element of a list, or of every value of an object; `a.*.b` works too). A missing key or
index gives null; reading a key of null is an error naming the path
("cannot read 'email' of null: `item.customer` is null in `item.customer.email`"). A key with
a dash needs brackets: `item['first-name']`.

Operators, loosest first (all left-associative except `?:`):
    `c ? a : b`        a when c is truthy, else b
    `a ?? b`           a unless it is null, else b
    `a || b`           a when truthy, else b (returns the value, like JavaScript)
    `a && b`           a when falsy, else b
    `==  !=`           strict, deep equality: no type coercion, `1 == 1.0`, `true != 1`
    `<  <=  >  >=  in` numbers with numbers, strings with strings; `x in list`, `'b' in 'abc'`,
                       `'key' in object`; comparisons do not chain (`a < b < c` is an error)
    `+  -`             numbers; `+` also joins two strings or two lists
    `*  /  %`          numbers; `'ab' * 3` and `[0] * 3` repeat; `/` is exact division, and
                       two integers that divide evenly give an integer (`1200 / 100` -> 12)
    `!x  -x`           not, negation
Falsy values: null, false, 0, 0.0, '', [] and {}; everything else is truthy.

Functions (an unknown name or a wrong number of arguments is a load-time error):
    len(x)                      length of a string, list or object
    contains(haystack, needle)  substring of a string, element of a list, key of an object
    starts_with(s, prefix)      ends_with(s, suffix)
    lower(s)  upper(s)          change case
    trim(s[, chars])            strip whitespace, or the given characters
    replace(s, old, new)        replace every occurrence of `old`
    split(s[, sep])             list of parts (split on whitespace without `sep`)
    join(list[, sep])           elements as text joined by `sep` (default ',')
    format(fmt, a, b, ...)      `format('{0} x {1}', a, b)`; `{{` and `}}` are literal braces
    to_json(x)                  compact JSON text;     from_json(s)  parse JSON text
    int(x)                      number or numeric text -> whole number (truncates toward 0)
    float(x)                    number or numeric text -> float
    str(x)                      x as it would read in text
    round(x[, n])               round half away from zero to n digits (0.125 -> 0.13);
                                with n = 0 (default) the result is a whole number
    abs(x)                      absolute value
    min(list) / min(a, b, ...)  smallest value (null for an empty list)
    max(list) / max(a, b, ...)  largest value (null for an empty list)
    sum(list)                   sum of numbers (0 for an empty list)
    keys(obj)  values(obj)      lists of an object's keys / values
    default(x, fallback)        fallback when x is null or '' (a blank CSV cell)
    coalesce(a, b, ...)         the first argument that is not null
    now()                       unix seconds now (the context's `__now__` clock when set)
    duration(d)                 seconds in '45s', '90m', '1h30m', '3d', '2w', '500ms', or a number
    timestamp(x)                unix seconds of ISO-8601 text ('Z', offsets; no zone = UTC),
                                or of a number
    iso(ts)                     '2026-11-26T12:00:00Z' (UTC; milliseconds only when present)
    date(ts)                    '2026-11-26' (UTC); ts is unix seconds or ISO-8601 text
    jsonpath(obj, path)         list of matches of `$.a[?(@.x > 1)]` (jsonpath-ng's extended
                                parser, https://github.com/h2non/jsonpath-ng; regular
                                expressions and backtick extensions are refused)
    unique(list)                duplicates removed, first occurrence kept
    sort(list[, key])           ascending numbers or strings, nulls last; `key` names a field
                                (dotted, e.g. 'customer.email') to sort objects by
    filter(list, field, value)  elements whose field equals value
    map(list, field)            the field of every element
    first(list)  last(list)     an element, or null for an empty list
    any(list)  all(list)        some / every element is truthy

Context names: `steps`, `item`, `each`, `index`, `secrets`, `vars`, `env`, `run`, `cursor`,
`error` (KNOWN_ROOTS); the engine decides which exist where. Using a name missing from the
context is a run-time error listing the available ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from flowkit.expressions.catalog import SPECS as FUNCTION_SPECS
from flowkit.expressions.catalog import FunctionSpec
from flowkit.expressions.lexer import ExpressionSyntaxError
from flowkit.expressions.parser import Reference, suggest_function
from flowkit.expressions.template import (
    Expression,
    Template,
    compile_expression,
    compile_template,
    find_references,
    has_expression,
    looks_like_unprefixed_template,
    render_value,
)
from flowkit.expressions.values import (
    MAX_DEPTH,
    MAX_EXPRESSION_LENGTH,
    MAX_ITEMS,
    MAX_TEXT,
    to_text,
)

KNOWN_ROOTS: frozenset[str] = frozenset(
    {"steps", "item", "each", "index", "secrets", "vars", "env", "run", "cursor", "error"}
)

FUNCTIONS: Mapping[str, Callable[..., Any]] = MappingProxyType(
    {name: spec.fn for name, spec in FUNCTION_SPECS.items()}
)

__all__ = [
    "FUNCTIONS",
    "FUNCTION_SPECS",
    "KNOWN_ROOTS",
    "MAX_DEPTH",
    "MAX_EXPRESSION_LENGTH",
    "MAX_ITEMS",
    "MAX_TEXT",
    "Expression",
    "ExpressionSyntaxError",
    "FunctionSpec",
    "Reference",
    "Template",
    "compile_expression",
    "compile_template",
    "find_references",
    "has_expression",
    "looks_like_unprefixed_template",
    "render_value",
    "suggest_function",
    "to_text",
]
