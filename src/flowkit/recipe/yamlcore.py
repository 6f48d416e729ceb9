"""The YAML 1.2 core schema: tags, scalar patterns, and PyYAML loaders that resolve by them.

Stricter than the spec (https://yaml.org/spec/1.2.2/#103-core-schema); see `yamlload`.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

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


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag
