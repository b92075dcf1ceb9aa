"""Parse the site file's YAML so that no error or warning can carry a value from the file.

ruamel.yaml's own texts quote values: a duplicate key's error carries both values (a password
typed twice is printed twice), an undefined alias names the text after ``*``, a scalar tagged
``!!int``/``!!float``/``!!bool`` that cannot be converted escapes as a bare ``ValueError`` or
``KeyError`` holding the text, and its warnings (a reused anchor) print the source line. Here:

1. duplicate keys raise a ``DuplicateKeyError`` that holds the key and the two positions only;
2. a failed conversion becomes a marked error at the value's position, without the value;
3. warnings are silenced while parsing (the YAML spec allows a reused anchor);
4. :func:`problem_of` builds the message from the parser's context and problem phrases with every
   quoted span longer than one character cut out (single characters such as ``'\\t'`` or ``'@'``
   stay: they say which character broke the syntax and cannot spell a value).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import ConstructorError, DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

# A key is named in a message only when it looks like a key name (keys are the file's structure,
# not its values; anything else is described, not quoted).
_KEY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_HARMLESS = re.compile(r"^(?:\\?.|<[a-z ]+>)$", re.DOTALL)  # one character, an escape, or a token name

_FIXES = {
    "found undefined alias": "a value starting with '*' or '&' must be quoted",
    "cannot start any token": "quote the value (values starting with @, `, % or a tab need quotes); indent with spaces",
    "mapping values are not allowed here": "quote a value that contains ': ', or fix the indentation",
    "found unexpected end of stream": "a quote or bracket opened at this line is never closed",
    "could not be converted": "remove the !! tag or correct the value",
}
_DEFAULT_FIX = "fix the syntax at this line (indentation, ':' after keys, quotes, no duplicate keys)"


class _Constructor(RoundTripConstructor):
    """The round-trip constructor with errors that hold positions, never values."""

    def check_mapping_key(self, node: Any, key_node: Any, mapping: Any, key: Any, value: Any) -> bool:
        if key in mapping:
            try:  # the round-trip map records each key's position as it is added
                first: int | None = mapping.lc.key(key)[0] + 1
            except (AttributeError, KeyError, TypeError):
                first = None
            # ruamel's own class, with a problem text that holds no value; the key and the first line
            # ride along as attributes for problem_of (the error never leaves this module's callers)
            err = DuplicateKeyError(
                "while constructing a mapping", node.start_mark, "found duplicate key", key_node.start_mark
            )
            setattr(err, "edge_key", key)  # noqa: B010  (attributes ruamel's class does not declare)
            setattr(err, "edge_first_line", first)  # noqa: B010
            raise err
        return True

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        try:
            return super().construct_non_recursive_object(node, tag)
        except YAMLError:
            raise
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            # e.g. `!!int abc` raises ValueError("invalid literal ... 'abc'"): keep the place, drop the text
            problem = "a value tagged with an explicit type (!!int, !!float, !!bool ...) could not be converted"
            raise ConstructorError(None, None, problem, node.start_mark) from exc


def parse(text: str) -> Any:
    """The document as ruamel round-trip nodes (line numbers kept). Raises ``YAMLError``
    (messages via :func:`problem_of`) or ``RecursionError`` on absurd nesting."""
    y = YAML(typ="rt")
    y.Constructor = _Constructor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ruamel's warnings quote the source line
        return y.load(text)


@dataclass(frozen=True)
class Problem:
    line: int | None  # 1-based
    column: int | None  # 1-based
    message: str


def problem_of(exc: YAMLError, text: str) -> Problem:
    """Where the YAML broke and why, in words that quote no value of the file (``text``: the file)."""
    if isinstance(exc, ReaderError) and isinstance(exc.position, int):  # a character YAML forbids
        pos = exc.position
        code = f"#x{exc.character:02x}" if isinstance(exc.character, int) else "a character"
        return Problem(
            text.count("\n", 0, pos) + 1,
            pos - text.rfind("\n", 0, pos),
            f"invalid YAML: {code} is a control character YAML does not allow; delete it",
        )
    mark = None
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    if isinstance(exc, DuplicateKeyError) and hasattr(exc, "edge_key"):
        key_name = exc.edge_key
        key = f"'{key_name}'" if isinstance(key_name, str) and _KEY_NAME.match(key_name) else "a key"
        first_line = getattr(exc, "edge_first_line", None)
        where = f" (first at line {first_line})" if first_line is not None else ""
        return Problem(
            line, column, f"invalid YAML: {key} is written twice in the same mapping{where}; keep one of them"
        )
    parts = [str(p) for p in (getattr(exc, "context", None), getattr(exc, "problem", None)) if p]
    detail = _scrub(", ".join(parts)) if parts else ""
    fix = next((f for phrase, f in _FIXES.items() if phrase in detail), _DEFAULT_FIX)
    return Problem(line, column, f"invalid YAML{': ' + detail if detail else ''}; {fix}")


def _scrub(text: str) -> str:
    """Cut every quoted span that could hold text from the file; keep it to one line."""

    def keep(m: re.Match[str]) -> str:
        return m.group(0) if _HARMLESS.match(m.group(0)[1:-1]) else "(…)"

    return " ".join(_QUOTED.sub(keep, text).split())
