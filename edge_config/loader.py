"""Load and check the site file, reporting every problem at once with its YAML line.

Messages are built here from pydantic's error *type*, *loc* and *ctx*; the offending input value is
never echoed, so a secret typed into the wrong place cannot leak into logs or the console.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from gateway.errors import ConfigProblem

from .parse_cache import load as parse_cache_load
from .parse_cache import store as parse_cache_store
from .schema import PATTERN_HELP, SiteConfig, cross_check, format_loc

SCHEMA_PATH = Path(__file__).with_name("config.schema.json")


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in the site file. ``message`` says what is wrong and how to fix it."""

    file: str
    line: int | None  # 1-based
    key_path: str  # e.g. "devices[3].location.building"
    message: str
    column: int | None = None  # 1-based; last, so positional construction stays as it was

    def format(self) -> str:
        line = "?" if self.line is None else str(self.line)
        return f"{self.file}:{line}: {self.key_path or '<top level>'}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        """For ``validate --json``: where and what, never the value (the message quotes none)."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.key_path,
            "message": self.message,
        }


class ConfigError(ConfigProblem):
    """The site file is unusable; ``issues`` lists every problem found (sorted by line)."""

    code = "config_invalid"

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues: list[ConfigIssue] = list(issues)
        super().__init__("\n".join(i.format() for i in self.issues))

    def __str__(self) -> str:
        return "\n".join(i.format() for i in self.issues)


# --------------------------------------------------------------------------------------------
# public API


def load_config(
    path: str | Path, env: Mapping[str, str] | None = None, *, parse_cache: Path | None = None
) -> SiteConfig:
    """Load, validate and cross-check a site file. Raises :class:`ConfigError` with all issues.

    ``env`` resolves ``${NAME}`` secret references (default ``os.environ``). ``parse_cache``: a
    folder where the parse of a file that validated is kept for the next load of the same bytes
    (edge_config/parse_cache.py; ``gateway run`` uses it, a restart then skips the YAML parser).
    """
    p = Path(path)
    file = str(p)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError([ConfigIssue(file, None, "", f"cannot read the file ({reason}); check the path")]) from None
    revision = hashlib.sha256(raw).hexdigest()[:12]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError([ConfigIssue(file, None, "", "the file is not UTF-8 text; save it as UTF-8")]) from None

    cached = parse_cache_load(parse_cache, p, raw)
    if cached is not None:
        try:
            cfg = _validate(cached, None, file, env)  # validated exactly as a fresh parse would be
        except ConfigError:
            pass  # e.g. a secret's variable is gone: parse again, so every message has its line
        else:
            cfg._set_source(p, revision)
            return cfg
    # The YAML parser only now: a start from the parse cache never needs ruamel (~10 ms of CPU to import).
    from ruamel.yaml.error import YAMLError

    from . import yaml_source

    too_deep = ConfigIssue(file, None, "", "the file is nested too deeply to be a site file; check its brackets")
    try:
        doc = yaml_source.parse(text)
    except YAMLError as exc:
        problem = yaml_source.problem_of(exc, text)
        raise ConfigError([ConfigIssue(file, problem.line, "", problem.message, problem.column)]) from None
    except RecursionError:  # '[' x 100,000 (found by fuzzing): the parser recurses per level
        raise ConfigError([too_deep]) from None
    if doc is None:
        raise ConfigError(
            [ConfigIssue(file, 1, "", "the file is empty; start from edge_config/examples/community.yaml")]
        )
    if not isinstance(doc, Mapping):
        raise ConfigError(
            [ConfigIssue(file, 1, "", "the top level must be a mapping of sections (version:, gateway:, site: ...)")]
        )

    if _too_many_nodes(doc):  # YAML aliases can expand exponentially ("billion laughs")
        msg = f"the file expands to more than {MAX_NODES:,} values (YAML aliases/anchors?); a site file is far smaller"
        raise ConfigError([ConfigIssue(file, None, "", msg)])
    try:
        data = _plain(doc)
    except RecursionError:
        raise ConfigError([too_deep]) from None
    cfg = _validate(data, doc, file, env)
    parse_cache_store(parse_cache, p, raw, data)
    cfg._set_source(p, revision)
    return cfg


def _validate(data: Any, doc: Any, file: str, env: Mapping[str, str] | None) -> SiteConfig:
    """The config of parsed ``data``, or ConfigError with every issue (lines from ``doc``, the
    round-trip document, when there is one)."""
    issues: list[ConfigIssue] = []
    cfg: SiteConfig | None = None
    context = {"env": os.environ if env is None else env, "skip_cross_check": True}
    try:
        cfg = SiteConfig.model_validate(data, context=context)
    except ValidationError as exc:
        for e in exc.errors(include_url=False):
            loc = tuple(e["loc"])
            issues.append(ConfigIssue(file, *_position_of(doc, loc, format_loc(loc), _message(e))))
    for loc, msg in cross_check(data):
        issues.append(ConfigIssue(file, *_position_of(doc, loc, format_loc(loc), msg)))

    if issues or cfg is None:
        issues = sorted(set(issues), key=lambda i: (i.line if i.line is not None else 1 << 30, i.key_path, i.message))
        raise ConfigError(issues)
    return cfg


def summary(cfg: SiteConfig) -> str:
    """One line for logs and ``check`` output."""
    site = cfg.site
    n_buildings = sum(len(c.buildings) for c in site.compounds)
    owned = len(cfg.owned_devices())
    foreign = len(cfg.devices) - owned
    devices = f"{owned} devices" + (f" (+{foreign} on other gateways)" if foreign else "")
    return (
        f"ok: community {site.community.name}, {len(site.grids)} grids, {len(site.compounds)} compounds, "
        f"{n_buildings} buildings, {devices}, revision {cfg.revision}"
    )


def json_schema() -> dict[str, Any]:
    """JSON schema of the site file (for editors: yaml-language-server, VS Code)."""
    schema = SiteConfig.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    ordered: dict[str, Any] = _sorted_keys(schema)  # stable text whichever tool dumps it (sort_keys or not)
    return ordered


def _sorted_keys(node: Any) -> Any:  # a JSON tree in, the same tree (keys sorted) out
    if isinstance(node, dict):
        return {k: _sorted_keys(node[k]) for k in sorted(node)}
    if isinstance(node, list):
        return [_sorted_keys(v) for v in node]
    return node


def json_schema_text() -> str:
    """The exact text of the committed ``edge_config/config.schema.json``."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def write_json_schema(path: str | Path = SCHEMA_PATH) -> Path:
    """Regenerate ``config.schema.json``."""
    target = Path(path)
    target.write_text(json_schema_text(), encoding="utf-8")
    return target


# --------------------------------------------------------------------------------------------
# YAML helpers


MAX_NODES = 2_000_000  # values after alias expansion; a 3,000-household site has ~100,000


# Any: ruamel YAML nodes and plain YAML data, and pydantic type annotations (_unwrap, _type_at)
def _too_many_nodes(doc: Any) -> bool:
    """Count values iteratively (aliases counted each time they are used), stopping at MAX_NODES."""
    stack, n = [doc], 0
    while stack:
        node = stack.pop()
        n += 1
        if n > MAX_NODES:
            return True
        if isinstance(node, Mapping):
            stack.extend(node.values())
            n += len(node)
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _plain(node: Any) -> Any:
    """ruamel round-trip nodes -> plain dict/list/scalars (keeps pydantic and checks simple)."""
    if isinstance(node, Mapping):
        return {_plain(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if type(node).__name__ == "ScalarBoolean":
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, dt.datetime):
        return dt.datetime(
            node.year, node.month, node.day, node.hour, node.minute, node.second, node.microsecond, node.tzinfo
        )
    if hasattr(node, "value") and type(node).__name__ == "TaggedScalar":
        return str(node.value)
    return node


def _position_of(doc: Any, loc: Sequence[Any], key_path: str, message: str) -> tuple[int | None, str, str, int | None]:
    """ConfigIssue's (line, key_path, message, column) for ``loc``: the 1-based line and column of
    the deepest node of ``loc`` that exists in the YAML document (a key's own position)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    lc = getattr(doc, "lc", None)
    pos: tuple[int, int] | None = (lc.line, lc.col) if lc is not None and lc.line is not None else None
    node = doc
    for part in loc:
        try:
            if isinstance(node, CommentedMap) and part in node:
                pos = node.lc.key(part)
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                pos = node.lc.item(part)
                node = node[part]
            else:
                break
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    if pos is None:
        return None, key_path, message, None
    return pos[0] + 1, key_path, message, pos[1] + 1


# --------------------------------------------------------------------------------------------
# messages


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _type_at(loc: Sequence[Any]) -> Any:
    """The declared type at ``loc`` inside SiteConfig (None if it cannot be followed)."""
    tp: Any = SiteConfig
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            tp = field.annotation
        elif typing.get_origin(tp) is list and isinstance(part, int):
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            return None
    return _unwrap(tp)


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    tp = _type_at(loc)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


_NUM = "write a plain number without quotes or units"
_MAP = "indent 'key: value' entries under the key, or write {key: value, ...}"
_KIND = {
    "string_type": 'must be text; quote it ("...") if YAML reads it as a number, date or list',
    "int_type": f"must be a whole number; {_NUM}",
    "int_parsing": f"must be a whole number; {_NUM}",
    "int_from_float": f"must be a whole number (no decimals); {_NUM}",
    "float_type": f"must be a number; {_NUM}",
    "float_parsing": f"must be a number; {_NUM}",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list: one '- item' per line, or [a, b]",
    "dict_type": f"must be a mapping; {_MAP}",
    "model_type": f"must be a mapping; {_MAP}",
    "model_attributes_type": f"must be a mapping; {_MAP}",
    "time_type": 'must be a time of day written as a quoted "HH:MM", e.g. "07:00"',
    "time_parsing": 'must be a time of day written as a quoted "HH:MM", e.g. "07:00"',
    "date_type": "must be a date written as YYYY-MM-DD, e.g. 2024-03-01",
    "date_parsing": "must be a date written as YYYY-MM-DD, e.g. 2024-03-01",
    "date_from_datetime_parsing": "must be a date written as YYYY-MM-DD, e.g. 2024-03-01",
    "date_from_datetime_inexact": "must be a date without a time, e.g. 2024-03-01",
    "path_type": "must be a file path (text)",
}

_CUSTOM = {"secret_type", "secret_literal", "env_undefined", "env_empty"}


# Any: a pydantic error entry
def _message(e: Any) -> str:
    """A fix-it message from one pydantic error dict. Never includes e['input']."""
    etype: str = e["type"]
    loc: tuple[Any, ...] = tuple(e["loc"])
    ctx: Mapping[str, Any] = e.get("ctx") or {}
    key = loc[-1] if loc else ""

    if etype == "extra_forbidden":
        model = _model_at(loc[:-1])
        allowed = sorted(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        fix = f"; did you mean '{close[0]}'? Rename it" if close else "; remove or rename it"
        listing = f". Allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"unknown key '{key}'{fix}{listing}"
    if etype == "missing":
        model = _model_at(loc[:-1])
        field = model.model_fields.get(str(key)) if model is not None else None
        desc = f" ({field.description})" if field is not None and field.description else ""
        return f"required key '{key}' is missing; add it{desc}"
    if etype in _CUSTOM:
        return str(e["msg"])  # our own templates; they name env variables only
    if etype == "value_error":
        # our validators' texts name no value; the scrub guards against one that ever does
        return _scrub(str(ctx.get("error", "invalid value")), e.get("input"))
    if etype == "assertion_error":
        return "invalid value"
    if loc == ("version",) and etype in ("literal_error", "int_parsing", "int_type"):
        return "unsupported config version; this gateway understands version: 1"
    if etype == "literal_error" or etype == "enum":
        return f"must be one of {ctx.get('expected', 'the documented values')}"
    if etype == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return f"wrong format: {PATTERN_HELP.get(pattern, f'must match the pattern {pattern}')}"
    if etype in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[etype]
        bound = ctx.get(
            {"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt", "less_than_equal": "le"}[etype]
        )
        return f"must be {op} {bound}; change the number"
    if etype in ("string_too_short", "too_short"):
        n = ctx.get("min_length")
        return "must not be empty" if n in (0, 1) else f"needs at least {n} characters/entries"
    if etype in ("string_too_long", "too_long"):
        return f"is too long: at most {ctx.get('max_length')} characters/entries"
    if etype.endswith("_type") and "input" in e and e["input"] is None:
        return "is empty (null); give it a value or remove the key to use the default"
    if etype in _KIND:
        return _KIND[etype]
    # Any other pydantic error: its type in words, never its text. pydantic's texts may embed the
    # input, or parts of it (a union's tag, a parser's detail), which no scrub can find reliably.
    return f"invalid value ({etype.replace('_', ' ')}); see docs/config.md for what this key takes"


_WORD = re.compile(r"^[a-z][a-z0-9_]*$")


def _scrub(msg: str, raw: Any) -> str:
    """``msg`` with the rejected input cut out: all of a field's value; of a model's mapping (a
    model validator's input) every leaf except plain lower-case words, which are the schema's
    own vocabulary its messages use ("a team of kind department needs department: ...")."""
    if not isinstance(raw, Mapping | list | tuple):
        return msg.replace(str(raw), "(…)") if raw is not None and len(str(raw)) >= 3 else msg
    leaves: list[str] = []
    stack = [raw]
    while stack and len(leaves) < 1000:
        node = stack.pop()
        if isinstance(node, Mapping):
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
        elif isinstance(node, str | int | float) and len(str(node)) >= 3 and not _WORD.match(str(node)):
            leaves.append(str(node))
    for leaf in sorted(leaves, key=len, reverse=True):
        msg = msg.replace(leaf, "(…)")
    return msg
