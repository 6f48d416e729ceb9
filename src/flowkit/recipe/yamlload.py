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

This module is the entry point (`load_yaml`, and every public name re-exported); the parts:
`yamlsource` reads and decodes the file, `yamlcore` holds the 1.2-core tags, scalar rules
and loader classes, `yamlcompose` turns the event stream into nodes and problems, and
`yamlmarks` the path -> mark table (`Mark`, `YamlDocument`).
"""

from __future__ import annotations

from typing import Any

from flowkit.errors import Problem, RecipeInvalid
from flowkit.recipe.yamlcompose import MAX_DEPTH, MAX_NODES, _Composer, _Node, _shown
from flowkit.recipe.yamlcore import CoreLoader, PureCoreLoader
from flowkit.recipe.yamlmarks import Mark, YamlDocument, YamlPath
from flowkit.recipe.yamlsource import MAX_BYTES, decode_source, read_source

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "CoreLoader",
    "Mark",
    "PureCoreLoader",
    "YamlDocument",
    "YamlPath",
    "decode_source",
    "load_yaml",
    "read_source",
]


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
