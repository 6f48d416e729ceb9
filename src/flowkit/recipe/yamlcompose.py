"""The composer: PyYAML events to nodes, iteratively, with hard caps and a problem per refusal.

Syntax errors, refused tags, duplicate and merge keys, unknown or recursive aliases, too many
values or levels: each becomes a `Problem` at its line and column.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

from flowkit.errors import Problem
from flowkit.recipe.yamlcore import (
    _ALLOWED_TAGS,
    _BOOL,
    _BOOL_RE,
    _FLOAT,
    _FLOAT_RE,
    _INT,
    _INT_RE,
    _MAP,
    _NULL,
    _NULL_RE,
    _SCALAR_TAGS,
    _SEQ,
    _STR,
    _short_tag,
)
from flowkit.recipe.yamlmarks import Mark

MAX_NODES = 100_000  # values (keys included) after expanding aliases
MAX_DEPTH = 100  # nesting levels of mappings and lists

_LINE_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")


class _Fatal(Exception):
    """Stop composing: the problem makes the rest of the stream meaningless."""


class _Node:
    __slots__ = ("anchor", "children", "height", "key", "kind", "mark", "merge", "size", "value")

    def __init__(self, kind: str, mark: Mark, value: Any = None, key: str = "") -> None:
        self.kind = kind  # "scalar", "seq" or "map"
        self.mark = mark
        self.value = value  # scalars: the Python value
        self.key = key  # scalars: the text used when the scalar is a mapping key
        self.merge = False  # a plain, untagged `<<` (a YAML 1.1 merge key)
        self.anchor: str | None = None  # collections: registered when they end
        self.children: list[_Node] = []  # maps: key, value, key, value, ...
        self.size = 1  # values after expanding aliases (this node included)
        self.height = 1


def _shown(value: Any, limit: int = 40) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Frame:
    __slots__ = ("flow", "node", "seen")

    def __init__(self, node: _Node, flow: bool) -> None:
        self.node = node
        self.flow = flow
        self.seen: dict[str, int] = {}  # mapping keys -> line of first occurrence


class _Composer:
    """Builds `_Node`s from the event stream with an explicit stack and hard caps."""

    def __init__(self, text: str, file: str, loader_cls: type[Any]) -> None:
        self.text = text
        self.file = file
        self.loader_cls = loader_cls
        self.problems: list[Problem] = []
        self.anchors: dict[str, _Node] = {}
        self.open_anchors: set[str] = set()
        self.count = 0
        self._lines: list[str] | None = None

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = _LINE_BREAK.split(self.text)
        return self._lines

    def problem(self, mark: Mark, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(self.file, mark.line, mark.col, message, hint, rule="yaml"))

    def fatal(self, mark: Mark, message: str, hint: str | None = None) -> _Fatal:
        self.problem(mark, message, hint)
        return _Fatal()

    def compose(self) -> _Node | None:
        loader: Any = None
        try:
            loader = self.loader_cls(self.text)  # the pure-Python reader checks characters here
            return self._compose(loader, self._events(loader))
        except yaml.reader.ReaderError as exc:
            self._reader_problem(exc)
            return None
        except _Fatal:
            return None
        finally:
            if loader is not None:
                loader.dispose()

    def _events(self, loader: Any) -> Iterator[Any]:
        try:
            while True:
                event = loader.get_event()
                if event is None:
                    return
                yield event
        except yaml.MarkedYAMLError as exc:
            raise self._syntax_problem(exc) from None
        except yaml.reader.ReaderError:
            raise
        except yaml.YAMLError as exc:  # anything else the parser refuses, without a mark
            raise self.fatal(Mark(1, 1), f"invalid YAML: {exc}") from None

    def _reader_problem(self, exc: yaml.reader.ReaderError) -> None:
        line, col = self._char_position(exc.position)
        char = exc.character
        code = f"U+{ord(char) if isinstance(char, str) else char:04X}"
        self.problem(
            Mark(line, col),
            f"file contains a control character ({code}) that YAML does not allow",
            "remove it; a recipe must be plain text",
        )

    def _char_position(self, index: int) -> tuple[int, int]:
        prefix = self.text[:index]
        breaks = list(_LINE_BREAK.finditer(prefix))
        start = breaks[-1].end() if breaks else 0
        return len(breaks) + 1, index - start + 1

    def _syntax_problem(self, exc: yaml.MarkedYAMLError) -> _Fatal:
        raw = exc.problem_mark or exc.context_mark
        mark = Mark(raw.line + 1, raw.column + 1) if raw is not None else Mark(1, 1)
        problem = (exc.problem or "syntax error").strip()
        context = (exc.context or "").strip()
        line = self.lines[raw.line] if raw is not None and raw.line < len(self.lines) else ""
        at = line[raw.column] if raw is not None and raw.column < len(line) else ""
        hint: str | None = None
        if at == "\t" or "\\t" in problem:
            return self.fatal(
                mark,
                "invalid YAML: a tab character is used for indentation",
                "indent with spaces; YAML does not allow tabs there",
            )
        if "nesting depth" in problem:
            return self.fatal(mark, f"nesting is deeper than {MAX_DEPTH} levels")
        if "alias" in context or "anchor" in context:
            hint = (
                'a value that starts with `*` or `&` must be quoted, e.g. schedule: "*/15 * * * *"'
            )
        elif "flow" in context and "{{" in line:
            hint = (
                'quote the value, e.g. id: "${{ order.id }}", or write the mapping in block '
                "style (one key per line)"
            )
        elif "mapping values are not allowed" in problem:
            hint = "quote a value that contains `: `, or check the indentation"
        elif "cannot start any token" in problem and at in "@`%":
            hint = f"a value that starts with `{at}` must be quoted"
        elif "expected key" in problem or "block end" in problem or "expected '-'" in problem:
            hint = "check the indentation of this line and the one before"
        message = f"invalid YAML: {problem}"
        if context:
            message += f" ({context})"
        return self.fatal(mark, message, hint)

    def _mark(self, event: Any) -> Mark:
        return Mark(event.start_mark.line + 1, event.start_mark.column + 1)

    def _scalar_mark(self, event: Any, value: str) -> Mark:
        mark = self._mark(event)
        if "${{" not in value:  # exact columns only matter for expressions
            return mark
        start, end = event.start_mark, event.end_mark
        style = event.style or None
        if start.line == end.line and style in (None, "'", '"'):
            segment = self.lines[start.line][start.column : end.column]
            if style is None and segment == value:
                return Mark(mark.line, mark.col, shift=0)
            if style is not None and segment[1:-1] == value:
                return Mark(mark.line, mark.col, shift=1)
        elif style == "|":
            header = self.lines[start.line][start.column :].split("#", 1)[0].strip()
            if not any(ch.isdigit() for ch in header):
                for number in range(start.line + 1, min(end.line + 1, len(self.lines))):
                    content = self.lines[number]
                    if content.strip():
                        indent = len(content) - len(content.lstrip(" "))
                        return Mark(mark.line, mark.col, indent=indent)
        return mark

    def _count(self, added: int, mark: Mark) -> None:
        self.count += added
        if self.count > MAX_NODES:
            raise self.fatal(
                mark,
                f"the document holds more than {MAX_NODES:,} values once aliases are expanded",
                "is an alias (`*name`) repeating a large value many times?",
            )

    def _compose(self, loader: Any, events: Iterator[Any]) -> _Node | None:
        root: _Node | None = None
        stack: list[_Frame] = []
        documents = 0
        for event in events:
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise self.fatal(
                        self._mark(event),
                        "the file holds more than one YAML document (`---`)",
                        "put each recipe in its own file",
                    )
                continue
            if isinstance(event, yaml.ScalarEvent):
                node: _Node | None = self._scalar(loader, event)
                self._count(1, node.mark)  # type: ignore[union-attr]
            elif isinstance(event, yaml.AliasEvent):
                node = self._alias(event, len(stack))
            elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
                is_map = isinstance(event, yaml.MappingStartEvent)
                mark = self._mark(event)
                self._count(1, mark)
                if len(stack) + 1 > MAX_DEPTH:
                    raise self.fatal(
                        mark,
                        f"nesting is deeper than {MAX_DEPTH} levels",
                        "a recipe never needs that; is the file generated by mistake?",
                    )
                self._check_collection_tag(event, mark, _MAP if is_map else _SEQ)
                new = _Node("map" if is_map else "seq", mark)
                if event.anchor:
                    self.open_anchors.add(event.anchor)
                    new.anchor = event.anchor  # registered at the end: an alias inside recurses
                stack.append(_Frame(new, bool(event.flow_style)))
                continue
            elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
                node = stack.pop().node
                if node.anchor:
                    self.open_anchors.discard(node.anchor)
                    self.anchors[node.anchor] = node
            else:  # stream and document boundaries
                continue
            assert node is not None
            if isinstance(event, yaml.ScalarEvent) and event.anchor:
                self.anchors[event.anchor] = node
            if not stack:
                root = node
                continue
            self._attach(stack[-1], node)
        return root

    def _attach(self, frame: _Frame, node: _Node) -> None:
        parent = frame.node
        if parent.kind == "map" and len(parent.children) % 2 == 0:
            self._check_key(frame, node)
        parent.children.append(node)
        parent.size += node.size
        parent.height = max(parent.height, node.height + 1)

    def _check_key(self, frame: _Frame, key: _Node) -> None:
        if key.kind != "scalar":
            parent = frame.node
            source = self.lines[parent.mark.line - 1][parent.mark.col - 1 :]
            if frame.flow and key.kind == "map" and source.startswith("{{"):
                self.problem(
                    parent.mark,
                    "`{{` starts a YAML mapping here, not an expression",
                    'write expressions as "${{ ... }}" and quote the value, '
                    'e.g. message: "${{ item.id }}"',
                )
            else:
                what = "a mapping" if key.kind == "map" else "a list"
                self.problem(
                    key.mark,
                    f"a mapping key must be a plain value, not {what}",
                    "check for a stray `?` or `{`/`[` before the key",
                )
            key.key = f"<complex key {len(frame.seen)}>"
            frame.seen[key.key] = key.mark.line
            return
        if key.merge:
            self.problem(
                key.mark,
                "merge keys (`<<`) are not supported",
                "write the keys out, or put an anchor on the whole value and reuse it with `*name`",
            )
        if key.key in frame.seen:
            self.problem(
                key.mark,
                f"duplicate key '{key.key}' (first on line {frame.seen[key.key]})",
                "remove one of them: YAML would silently keep only the last",
            )
            key.key = f"{key.key}\x00{key.mark.line}:{key.mark.col}"  # keep both apart
            return
        frame.seen[key.key] = key.mark.line

    def _check_collection_tag(self, event: Any, mark: Mark, expected: str) -> None:
        tag = event.tag
        if tag is None or tag == "!" or tag == expected:
            return
        self.problem(
            mark,
            f"tag '{_short_tag(tag)}' is not allowed",
            f"remove the tag; recipes accept only the standard tags {_ALLOWED_TAGS}",
        )

    def _alias(self, event: Any, depth: int) -> _Node:
        mark = self._mark(event)
        name = event.anchor
        if name in self.open_anchors:
            raise self.fatal(
                mark,
                f"alias '*{name}' refers to a value that contains it (a recursive structure)",
            )
        target = self.anchors.get(name)
        if target is None:
            raise self.fatal(
                mark,
                f"alias '*{name}' refers to no anchor",
                f"define the anchor `&{name}` on a value before this line, or quote the "
                "value if `*` is meant literally",
            )
        self._count(target.size, mark)
        if depth + target.height > MAX_DEPTH:
            raise self.fatal(mark, f"nesting is deeper than {MAX_DEPTH} levels once expanded")
        return target

    def _scalar(self, loader: Any, event: Any) -> _Node:
        text: str = event.value
        mark = self._scalar_mark(event, text)
        tag = event.tag
        plain = not event.style
        if tag is None or tag == "!":
            if tag is None and plain:
                tag = loader.resolve(yaml.ScalarNode, text, (True, False))
            else:
                tag = _STR
        elif tag not in _SCALAR_TAGS:
            self.problem(
                mark,
                f"tag '{_short_tag(tag)}' is not allowed",
                f"remove the tag; recipes accept only the standard tags {_ALLOWED_TAGS}",
            )
            return _Node("scalar", mark, None, text)
        node = _Node("scalar", mark, self._construct(tag, text, mark), text)
        node.merge = plain and text == "<<" and event.tag is None
        return node

    def _construct(self, tag: str, text: str, mark: Mark) -> Any:
        if tag == _STR:
            return text
        if tag == _NULL and _NULL_RE.match(text):
            return None
        if tag == _BOOL and _BOOL_RE.match(text):
            return text.lower() == "true"
        if tag == _INT and _INT_RE.match(text):
            return self._integer(text, mark)
        if tag == _FLOAT and (_FLOAT_RE.match(text) or _INT_RE.match(text)):
            lowered = text.lower()
            if lowered.endswith(".inf"):
                return float("-inf") if lowered.startswith("-") else float("inf")
            if lowered == ".nan":
                return float("nan")
            if text.startswith(("0o", "0x")):
                return float(self._integer(text, mark) or 0)
            return float(text)
        self.problem(mark, f"{_shown(text)} is not a valid {_short_tag(tag)}")
        return None

    def _integer(self, text: str, mark: Mark) -> int | None:
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        try:
            return int(text)
        except ValueError:  # Python refuses int() of more than 4,300 digits
            self.problem(
                mark,
                f"number with {len(text.lstrip('+-')):,} digits is too large",
                "quote it if it is meant as text",
            )
            return None
