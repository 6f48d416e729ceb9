"""The commerce-safe YAML loader: 1.2-core scalars, refusals, caps and source marks."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from flowkit.errors import RecipeInvalid
from flowkit.recipe.yamlload import (
    MAX_BYTES,
    MAX_DEPTH,
    Mark,
    decode_source,
    load_yaml,
    read_source,
)

PARSERS = [pytest.param(False, id="libyaml"), pytest.param(True, id="pure-python")]


def problems_of(text: str | bytes, *, pure: bool = False) -> list[str]:
    with pytest.raises(RecipeInvalid) as info:
        load_yaml(text, "f.yaml", pure_python=pure)
    return [p.format() for p in info.value.problems]


@pytest.mark.parametrize("pure", PARSERS)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("NO", "NO"),
        ("no", "no"),
        ("yes", "yes"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("n", "n"),
        ("01234", "01234"),
        ("007", "007"),
        ("1:20", "1:20"),
        ("190:20:30", "190:20:30"),
        ("2024-01-31", "2024-01-31"),
        ("2024-01-31T10:00:00Z", "2024-01-31T10:00:00Z"),
        ("1_000", "1_000"),
        ("0b101", "0b101"),
        ("+.5e", "+.5e"),
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("FALSE", False),
        ("tRuE", "tRuE"),
        ("null", None),
        ("Null", None),
        ("~", None),
        ("", None),
        ("0", 0),
        ("-17", -17),
        ("+3", 3),
        ("0o17", 15),
        ("0x1F", 31),
        ("1.5", 1.5),
        ("-0.25", -0.25),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("1.", 1.0),
        (".inf", math.inf),
        ("-.Inf", -math.inf),
        ('"true"', "true"),
        ("'12'", "12"),
        ("!!str 12", "12"),
        ("! 12", "12"),
        ("!!int '12'", 12),
        ("!!float 1", 1.0),
        ("!!bool 'true'", True),
        ("!!null ''", None),
    ],
)
def test_core_schema_scalars(text: str, expected: object, pure: bool) -> None:
    doc = load_yaml(f"v: {text}\n", pure_python=pure)
    value = doc.data["v"]
    assert value == expected
    assert type(value) is type(expected)


def test_nan_is_a_float() -> None:
    assert math.isnan(load_yaml("v: .NaN\n").data["v"])


def test_keys_are_always_text() -> None:
    doc = load_yaml("1: a\ntrue: b\nnull: c\n01: d\n1.0: e\n")
    assert doc.data == {"1": "a", "true": "b", "null": "c", "01": "d", "1.0": "e"}


def test_aliases_expand_and_share_no_state() -> None:
    doc = load_yaml("base: &b {attempts: 3}\na: *b\nb: [*b, *b]\n")
    assert doc.data["a"] == {"attempts": 3}
    assert doc.data["b"] == [{"attempts": 3}, {"attempts": 3}]
    assert doc.data["a"] is not doc.data["base"]  # rebuilt: nothing mutates another value


@pytest.mark.parametrize("pure", PARSERS)
def test_marks_for_values_and_keys(pure: bool) -> None:
    text = "name: demo\nsteps:\n  - id: a\n    with:\n      to: x@y.z\n"
    doc = load_yaml(text, pure_python=pure)
    assert doc.marks[("name",)] == Mark(1, 7)
    assert doc.marks[("steps",)] == Mark(3, 3)
    assert doc.marks[("steps", 0)] == Mark(3, 5)
    assert doc.marks[("steps", 0, "with", "to")] == Mark(5, 11)
    assert doc.key_marks[("steps", 0, "with", "to")] == Mark(5, 7)
    assert doc.key_marks[("name",)] == Mark(1, 1)
    assert doc.mark(("steps", 0, "with", "missing")) == Mark(5, 7)  # nearest ancestor


@pytest.mark.parametrize(
    ("text", "offset", "position"),
    [
        ("v: ${{ a }}\n", 4, (1, 8)),
        ("v: 'x ${{ a }}'\n", 6, (1, 11)),
        ('v: "x ${{ a }}"\n', 6, (1, 11)),
        ('v: "\\t${{ a }}"\n', 5, (1, 4)),  # an escape: the column is unknown, use the start
        ("v: |\n  one\n  two ${{ a }}\n", 8, (3, 7)),
        ("v: >\n  one\n  two ${{ a }}\n", 8, (1, 4)),  # folded: use the start
        ("v: a\n  b ${{ c }}\n", 8, (1, 4)),  # plain on two lines: the start
    ],
)
def test_mark_locates_an_offset_in_a_value(
    text: str, offset: int, position: tuple[int, int]
) -> None:
    doc = load_yaml(text)
    assert doc.marks[("v",)].locate(doc.data["v"], offset) == position


@pytest.mark.parametrize("pure", PARSERS)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a: 1\nb: 2\na: 3\n",
            "f.yaml:3:1: duplicate key 'a' (first on line 1)\n"
            "  hint: remove one of them: YAML would silently keep only the last",
        ),
        (
            "a:\n  x: 1\n  x: 2\n",
            "f.yaml:3:3: duplicate key 'x' (first on line 2)\n"
            "  hint: remove one of them: YAML would silently keep only the last",
        ),
        (
            "a: !!python/object/apply:os.system ['echo hacked']\n",
            "f.yaml:1:4: tag '!!python/object/apply:os.system' is not allowed\n"
            "  hint: remove the tag; recipes accept only the standard tags !!str, !!int, "
            "!!float, !!bool, !!null, !!map and !!seq",
        ),
        (
            "when: !!timestamp 2024-01-01\n",
            "f.yaml:1:7: tag '!!timestamp' is not allowed\n"
            "  hint: remove the tag; recipes accept only the standard tags !!str, !!int, "
            "!!float, !!bool, !!null, !!map and !!seq",
        ),
        (
            "a: !!int abc\n",
            "f.yaml:1:4: 'abc' is not a valid !!int",
        ),
        (
            "base: &b {x: 1}\nc:\n  <<: *b\n",
            "f.yaml:3:3: merge keys (`<<`) are not supported\n"
            "  hint: write the keys out, or put an anchor on the whole value and reuse it "
            "with `*name`",
        ),
        (
            "? [a, b]\n: c\n",
            "f.yaml:1:3: a mapping key must be a plain value, not a list\n"
            "  hint: check for a stray `?` or `{`/`[` before the key",
        ),
        (
            "message: {{ item.id }}\n",
            "f.yaml:1:10: `{{` starts a YAML mapping here, not an expression\n"
            '  hint: write expressions as "${{ ... }}" and quote the value, '
            'e.g. message: "${{ item.id }}"',
        ),
        (
            "a: 1\n---\nb: 2\n",
            "f.yaml:2:1: the file holds more than one YAML document (`---`)\n"
            "  hint: put each recipe in its own file",
        ),
        (
            "a: *nope\n",
            "f.yaml:1:4: alias '*nope' refers to no anchor\n"
            "  hint: define the anchor `&nope` on a value before this line, or quote the "
            "value if `*` is meant literally",
        ),
        (
            "a: &x [1, *x]\n",
            "f.yaml:1:11: alias '*x' refers to a value that contains it (a recursive structure)",
        ),
        (
            "- a\n- b\n",
            "f.yaml:1:1: the top level must be a mapping of keys to values, not a list\n"
            "  hint: a recipe starts with keys such as `flowkit: 1` and `name: ...`",
        ),
        (
            "just text\n",
            "f.yaml:1:1: the top level must be a mapping of keys to values, not a single "
            "value ('just text')\n"
            "  hint: a recipe starts with keys such as `flowkit: 1` and `name: ...`",
        ),
        ("", "f.yaml:1:1: file is empty"),
        ("  \n\n", "f.yaml:1:1: file is empty"),
        ("# only a comment\n", "f.yaml:1:1: file is empty"),
        ("---\n", "f.yaml:1:1: file is empty"),
        (
            "a:\n\tb: 1\n",
            "f.yaml:2:1: invalid YAML: a tab character is used for indentation\n"
            "  hint: indent with spaces; YAML does not allow tabs there",
        ),
        (
            "a: \x07\n",
            "f.yaml:1:4: file contains a control character (U+0007) that YAML does not allow\n"
            "  hint: remove it; a recipe must be plain text",
        ),
    ],
)
def test_refusals(text: str, expected: str, pure: bool) -> None:
    assert problems_of(text, pure=pure) == [expected]


def test_all_refusals_of_a_file_at_once() -> None:
    text = "a: 1\na: 2\nb: !!set {x}\nc: !!binary aGk=\n"
    assert [p.splitlines()[0] for p in problems_of(text)] == [
        "f.yaml:2:1: duplicate key 'a' (first on line 1)",
        "f.yaml:3:4: tag '!!set' is not allowed",
        "f.yaml:4:4: tag '!!binary' is not allowed",
    ]


@pytest.mark.parametrize("pure", PARSERS)
@pytest.mark.parametrize(
    ("text", "position", "hint"),
    [
        (
            "schedule: */15 * * * *\n",
            "1:12",
            'a value that starts with `*` or `&` must be quoted, e.g. schedule: "*/15 * * * *"',
        ),
        (
            "with: {id: ${{ order.id }}}\n",
            "1:13",
            'quote the value, e.g. id: "${{ order.id }}", or write the mapping in block style '
            "(one key per line)",
        ),
        ("a: b: c\n", "1:5", "quote a value that contains `: `, or check the indentation"),
        ("a: @home\n", "1:4", "a value that starts with `@` must be quoted"),
        ("a:\n  - b\n c: 1\n", "3:2", "check the indentation of this line and the one before"),
    ],
)
def test_syntax_errors_have_positions_and_hints(
    text: str, position: str, hint: str, pure: bool
) -> None:
    (problem,) = problems_of(text, pure=pure)
    first, second = problem.splitlines()
    assert first.startswith(f"f.yaml:{position}: invalid YAML: ")
    assert second == f"  hint: {hint}"


def test_python_tags_never_execute(tmp_path: Path) -> None:
    marker = tmp_path / "hacked"
    text = f"a: !!python/object/apply:os.system ['touch {marker}']\n"
    problems_of(text)
    problems_of(text, pure=True)
    text = f"a: !!python/object/new:subprocess.call [['touch', '{marker}']]\n"
    problems_of(text)
    assert not marker.exists()


@pytest.mark.parametrize("pure", PARSERS)
def test_deep_nesting_is_refused_without_recursion_error(pure: bool) -> None:
    # block style needs one more column per level: 2,000 levels is already ~2 MB
    block = "".join(" " * i + f"k{i}:\n" for i in range(2_000)) + " " * 2_000 + "x\n"
    (problem,) = problems_of(block, pure=pure)
    assert problem.startswith(f"f.yaml:{MAX_DEPTH + 1}:")
    assert f"nesting is deeper than {MAX_DEPTH} levels" in problem
    flow = "a: " + "[" * 10_000 + "]" * 10_000 + "\n"
    (problem,) = problems_of(flow, pure=pure)
    assert f"nesting is deeper than {MAX_DEPTH} levels" in problem


def test_nesting_within_the_cap_loads() -> None:
    text = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert load_yaml(text).data["a"] is not None


def test_alias_bomb_is_refused() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        prev, name = chr(96 + i), chr(97 + i)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    (problem,) = problems_of("\n".join(lines) + "\n")
    assert "holds more than 100,000 values once aliases are expanded" in problem


def test_deep_alias_chains_are_bounded() -> None:
    lines = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 200)]
    (problem,) = problems_of("\n".join(lines) + "\n")
    assert "nesting is deeper than" in problem


def test_huge_integer_is_a_problem_not_a_hang() -> None:
    (problem,) = problems_of("a: " + "9" * 100_000 + "\n")
    assert problem == (
        "f.yaml:1:4: number with 100,000 digits is too large\n"
        "  hint: quote it if it is meant as text"
    )
    assert load_yaml("a: '" + "9" * 100_000 + "'\n").data["a"] == "9" * 100_000
    assert load_yaml("a: 0x" + "f" * 10_000 + "\n").data["a"] == 16**10_000 - 1


def test_bytes_nul_non_utf8_and_bom() -> None:
    assert problems_of(b"a: 1\nb: \x00\x01") == [
        "f.yaml:2:4: file contains NUL bytes; it looks like a binary file, not YAML"
    ]
    assert problems_of("a: 1\nb: caf\u00e9 \xff".encode("latin-1")) == [
        "f.yaml:2:7: file is not valid UTF-8 (byte 0xe9)\n  hint: save the file as UTF-8"
    ]
    assert load_yaml(b"\xef\xbb\xbfa: 1\n").data == {"a": 1}
    assert decode_source("é: ü".encode(), "f") == "é: ü"


def test_read_source_caps_the_size(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as fh:
        fh.truncate(MAX_BYTES + 1)
    with pytest.raises(RecipeInvalid) as info:
        read_source(big)
    assert info.value.problems[0].message == "file is larger than the 5 MB limit (5.0 MB)"
    small = tmp_path / "small.yaml"
    small.write_bytes(b"a: 1\n")
    assert read_source(small) == b"a: 1\n"
    with pytest.raises(RecipeInvalid) as info:
        read_source(tmp_path)
    assert info.value.problems[0].message == "is a directory, not a recipe file"
    with pytest.raises(RecipeInvalid) as info:
        read_source(tmp_path / "missing.yaml")
    assert info.value.problems[0].message == "file not found"


def test_mapping_not_required_for_other_documents() -> None:
    assert load_yaml("- 1\n- 2\n", require_mapping=False).data == [1, 2]
