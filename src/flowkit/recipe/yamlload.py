"""Commerce-safe YAML loading with a source mark for every value and key.

Plain YAML 1.1 loading corrupts shop data silently (`country: NO` -> false, `zip: 01234` ->
668, `sku: 1:20` -> 80, a duplicate key silently wins). This loader reads PyYAML's event
stream (libyaml's parser when available, else the pure-Python one) and builds the data
itself, so that:

* scalars follow the YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#103-core-schema),
  stricter still: only `true`/`false` (any case form the spec lists) are booleans, `null`,
  `~` and empty are null, integers are decimal without leading zeros, `0o17` or `0x1F`;
  `01234`, `1:20`, `yes`, `on`, `2024-01-01` all stay text;
* mapping keys are always text (`1: a` has the key "1"), duplicates are errors, and a
  mapping or list used as a key is refused;
* only the standard tags `!!str !!int !!float !!bool !!null !!map !!seq` are accepted; any
  other tag (`!!python/object/apply:...`, `!!timestamp`, `!custom`) is refused and its node
  is never constructed;
* merge keys (`<<`, a YAML 1.1 feature) are refused; anchors and aliases work, but the
  document may expand to at most `MAX_NODES` values and `MAX_DEPTH` levels, so an alias bomb
  is rejected after reading about `MAX_NODES` events, and nothing downstream (pydantic, JSON)
  ever sees an exponential structure;
* files are at most `MAX_BYTES` (checked before reading), UTF-8 without NUL bytes.

PyYAML's composer is recursive; this one is iterative (an explicit stack), so a 10,000-deep
document is refused at depth `MAX_DEPTH` without a RecursionError.

Every problem is a `flowkit.errors.Problem` (`file:line:col: message` + hint); `load_yaml`
raises `RecipeInvalid` with all of them. PyYAML's event API:
https://pyyaml.org/wiki/PyYAMLDocumentation (section "Events").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flowkit.errors import Problem, RecipeInvalid

MAX_BYTES = 5 * 1024 * 1024  # 5 MB: a recipe is a few KB; this bounds time and memory
MAX_NODES = 100_000  # values (keys included) after expanding aliases
MAX_DEPTH = 100  # nesting levels of mappings and lists

YamlPath = tuple[str | int, ...]

_CORE = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_CORE + t for t in ("str", "int", "float", "bool", "null"))
_MAP, _SEQ = _CORE + "map", _CORE + "seq"
_SCALAR_TAGS = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL})
_ALLOWED_TAGS = "!!str, !!int, !!float, !!bool, !!null, !!map and !!seq"

_NULL_RE = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT_RE = re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_RE = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|(?:0|[1-9][0-9]*)(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_OTHER_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)
_LINE_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")

_Base: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _core_resolvers(cls: type[Any]) -> type[Any]:
    """Replace the YAML 1.1 implicit resolvers with the (strict) 1.2 core ones."""
    cls.yaml_implicit_resolvers = {}
    cls.add_implicit_resolver(_BOOL, _BOOL_RE, list("tTfF"))
    cls.add_implicit_resolver(_INT, _INT_RE, list("-+0123456789"))
    cls.add_implicit_resolver(_FLOAT, _FLOAT_RE, list("-+.0123456789"))
    cls.add_implicit_resolver(_NULL, _NULL_RE, ["~", "n", "N", ""])
    return cls


@_core_resolvers
class CoreLoader(_Base):  # type: ignore[misc]
    """A SafeLoader (libyaml when available) resolving plain scalars by the 1.2 core rules.

    Only its scanner, parser and resolver are used: `load_yaml` builds the data from the
    event stream itself, so no constructor (and no tag) ever runs.
    """


@_core_resolvers
class PureCoreLoader(yaml.SafeLoader):
    """The same with PyYAML's pure-Python parser (used when libyaml is missing, and in tests)."""


@dataclass(frozen=True)
class Mark:
    """Where a value (or key) starts in the file, 1-based.

    For scalars that may hold expressions, `shift` or `indent` let `locate` map a character
    offset in the value to its exact column: `shift` when the value is written on one line
    character for character (plain or quoted without escapes), `indent` for literal blocks.
    """

    line: int
    col: int
    shift: int | None = None
    indent: int | None = None

    def locate(self, value: str, offset: int) -> tuple[int, int]:
        """(line, col) of character `offset` of `value`, or the value's start if unknown."""
        if self.shift is not None:
            return self.line, self.col + self.shift + offset
        if self.indent is not None:
            line_no = value.count("\n", 0, offset)
            line_start = value.rfind("\n", 0, offset) + 1
            return self.line + 1 + line_no, self.indent + 1 + offset - line_start
        return self.line, self.col


@dataclass
class YamlDocument:
    """Loaded data plus `marks` (path -> value start) and `key_marks` (path -> key start)."""

    data: Any
    marks: dict[YamlPath, Mark]
    key_marks: dict[YamlPath, Mark]

    def mark(self, path: YamlPath) -> Mark:
        """The mark of `path`, or of its nearest ancestor that has one."""
        while path not in self.marks and path:
            path = path[:-1]
        return self.marks.get(path, Mark(1, 1))


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


def read_source(path: Path, *, limit: int = MAX_BYTES) -> bytes:
    """The bytes of a recipe file; raises RecipeInvalid (size cap, directory, unreadable)."""
    file = str(path)

    def fail(message: str, hint: str | None = None) -> RecipeInvalid:
        return RecipeInvalid([Problem(file, 1, 1, message, hint, rule="file")])

    try:
        if path.is_dir():
            raise fail("is a directory, not a recipe file")
        size = path.stat().st_size
        if size > limit:
            raise fail(
                f"file is larger than the {_megabytes(limit)} limit ({_megabytes(size)})",
                "a recipe is a few kilobytes; is this the right file?",
            )
        with path.open("rb") as fh:
            data = fh.read(limit + 1)  # special files may report size 0
    except FileNotFoundError:
        raise fail("file not found") from None
    except PermissionError:
        raise fail("permission denied") from None
    except OSError as exc:
        raise fail(f"cannot read the file: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise fail(f"file is larger than the {_megabytes(limit)} limit")
    return data


def _megabytes(size: int) -> str:
    mb = size / (1024 * 1024)
    return f"{mb:.0f} MB" if mb >= 10 or mb == int(mb) else f"{mb:.1f} MB"


def decode_source(data: bytes, file: str) -> str:
    """UTF-8 text of `data` (a BOM is dropped); NUL bytes and invalid UTF-8 are problems."""
    for bom, encoding in _OTHER_BOMS:
        if data.startswith(bom):
            raise RecipeInvalid(
                [
                    Problem(
                        file,
                        1,
                        1,
                        f"file is encoded as {encoding}, not UTF-8",
                        "save the file as UTF-8",
                        rule="file",
                    )
                ]
            )
    nul = data.find(b"\x00")
    if nul >= 0:
        line, col = _byte_position(data, nul)
        raise RecipeInvalid(
            [
                Problem(
                    file,
                    line,
                    col,
                    "file contains NUL bytes; it looks like a binary file, not YAML",
                    rule="file",
                )
            ]
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _byte_position(data, exc.start)
        raise RecipeInvalid(
            [
                Problem(
                    file,
                    line,
                    col,
                    f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
                    "save the file as UTF-8",
                    rule="file",
                )
            ]
        ) from None
    return text.removeprefix("\ufeff")


def _byte_position(data: bytes, index: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, index) + 1
    column = len(data[line_start:index].decode("utf-8", errors="replace"))
    return data.count(b"\n", 0, index) + 1, column + 1


def load_yaml(
    source: bytes | str,
    file: str = "<string>",
    *,
    require_mapping: bool = True,
    pure_python: bool = False,
) -> YamlDocument:
    """Load one YAML document safely; raises RecipeInvalid with every problem found."""
    text = decode_source(source, file) if isinstance(source, bytes) else source
    if not text.strip():
        raise RecipeInvalid([Problem(file, 1, 1, "file is empty", rule="yaml")])
    composer = _Composer(text, file, PureCoreLoader if pure_python else CoreLoader)
    try:
        root = composer.compose()
    except RecursionError:  # a last resort: composing is iterative, building is depth-capped
        composer.problems.append(
            Problem(file, 1, 1, f"nesting is deeper than {MAX_DEPTH} levels", rule="yaml")
        )
        root = None
    if composer.problems:
        raise RecipeInvalid(composer.problems)
    if root is None or (root.kind == "scalar" and root.value is None):
        raise RecipeInvalid([Problem(file, 1, 1, "file is empty", rule="yaml")])
    if require_mapping and root.kind != "map":
        what = "a list" if root.kind == "seq" else f"a single value ({_shown(root.value)})"
        raise RecipeInvalid(
            [
                Problem(
                    file,
                    root.mark.line,
                    root.mark.col,
                    f"the top level must be a mapping of keys to values, not {what}",
                    "a recipe starts with keys such as `flowkit: 1` and `name: ...`",
                    rule="yaml",
                )
            ]
        )
    marks: dict[YamlPath, Mark] = {}
    key_marks: dict[YamlPath, Mark] = {}
    data = _build(root, (), marks, key_marks)
    return YamlDocument(data, marks, key_marks)


def _build(
    node: _Node, path: YamlPath, marks: dict[YamlPath, Mark], key_marks: dict[YamlPath, Mark]
) -> Any:
    # recursion depth is bounded by MAX_DEPTH (heights are checked while composing);
    # aliased nodes are rebuilt per use, which MAX_NODES bounds
    marks[path] = node.mark
    if node.kind == "scalar":
        return node.value
    if node.kind == "seq":
        return [
            _build(child, (*path, i), marks, key_marks) for i, child in enumerate(node.children)
        ]
    out: dict[str, Any] = {}
    children = node.children
    for i in range(0, len(children), 2):
        key = children[i].key
        key_marks[(*path, key)] = children[i].mark
        out[key] = _build(children[i + 1], (*path, key), marks, key_marks)
    return out


def _shown(value: Any, limit: int = 40) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


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
