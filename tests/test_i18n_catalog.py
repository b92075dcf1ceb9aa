"""The one catalog (gateway/console/i18n/*.json, read by gateway/core/catalog.py) has words in
Chinese and English for every code the gateway can show a person: every incident type the rules
(and the other writers of incidents) can raise, every ticket state, role, event kind, action and
action field, department, category, severity, care flag and every error code an API answer can
carry. The incident types and the per-instance error codes are found by reading the source (AST),
so a new rule or a new refusal fails here until it has its words."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import pytest

import gateway
from edge_config.device_types import DEVICE_TYPES
from edge_config.resident_settings import DEFAULT_REPORT_TYPES
from edge_config.schema import ResidentFlag, StaffRole
from gateway.api import problems
from gateway.api.auth import ROLES as API_ROLES
from gateway.core import catalog
from gateway.core import incidents as inc
from gateway.core.contract import EVENT_KINDS
from gateway.errors import GatewayError
from gateway.tickets import lifecycle as lc

ROOT = Path(__file__).resolve().parents[1]
# f-string incident types and what they expand to (gateway/rules/offline.py: compound/building groups)
FSTRING_TYPES = {"{level}_offline": ("compound_offline", "building_offline")}
# Classes whose instances carry their own code as the first argument: LinkRefused("link_used", ...)
PER_INSTANCE = {"TicketError", "LinkRefused", "ResidentRefused"}
# Functions that only pass a caller's type on: the rule host's trigger() (its callers are scanned)
# and incidents raised by people (create_manual: a type they choose, 'resident_report' is required;
# residents' reports: the configured report types, whose defaults are required).
PASS_THROUGH = {("engine.py", "trigger"), ("lifecycle.py", "create_manual"), ("reports.py", "submit")}


def _sources() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted((ROOT / "gateway").rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def _fstring(node: ast.JoinedStr) -> str:
    return "".join(
        v.value if isinstance(v, ast.Constant) else "{" + ast.unparse(v.value) + "}"  # type: ignore[attr-defined]
        for v in node.values
    )


def _module_str(path: Path, name: str) -> object:
    """A module-level value of the module at ``path`` (for constants taken from another module)."""
    mod = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return getattr(mod, name, None)


def _table_firsts(tree: ast.Module, name: str) -> list[ast.expr] | None:
    """First elements of the tuple values of a module-level dict ``name`` (a rule table)."""
    for n in tree.body:
        target = n.targets[0] if isinstance(n, ast.Assign) else n.target if isinstance(n, ast.AnnAssign) else None
        if getattr(target, "id", None) == name and isinstance(n.value, ast.Dict):  # type: ignore[union-attr]
            return [v.elts[0] for v in n.value.values if isinstance(v, ast.Tuple)]  # type: ignore[union-attr]
    return None


def _resolve(tree: ast.Module, fn: ast.FunctionDef | None, var: str) -> list[ast.expr] | None:
    """Where a variable naming an incident type gets its value: a parameter of the enclosing
    function (the arguments of that function's calls in the module), or unpacked from a rule table
    (``typ, ... = TABLE[...]`` / ``for ..., (typ, ...) in TABLE.items()``)."""
    if fn is None:
        return None
    params = [a.arg for a in fn.args.args]
    if var in params:
        i = params.index(var)
        out: list[ast.expr] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == fn.name:
                out += [node.args[i]] if len(node.args) > i else [k.value for k in node.keywords if k.arg == var]
        return out or None
    for node in ast.walk(fn):
        target, source = None, None
        if isinstance(node, ast.Assign):
            target, source = node.targets[0], node.value
        elif isinstance(node, ast.For):
            target, source = node.target, node.iter
        if target is None or var not in {getattr(n, "id", None) for n in ast.walk(target)}:
            continue
        table = source.value if isinstance(source, ast.Subscript) else None
        if isinstance(source, ast.Call) and isinstance(source.func, ast.Attribute):
            table = source.func.value  # TABLE.items()
        if isinstance(table, ast.Name):
            return _table_firsts(tree, table.id)
    return None


def incident_types() -> set[str]:
    """Every incident type a writer of incidents names: ``Trigger(type=...)`` and the rule host's
    ``trigger(dev, <type>, ...)``, followed through module constants, f-strings (FSTRING_TYPES),
    function parameters and rule tables. A value the scan cannot follow fails the test."""
    found: set[str] = set()
    unknown: list[str] = []
    for path, tree in _sources():
        consts = {
            t.id: n.value.value
            for n in tree.body
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
            for t in n.targets
            if isinstance(t, ast.Name)
        }

        def value(
            node: ast.expr,
            fn: ast.FunctionDef | None,
            tree: ast.Module = tree,
            path: Path = path,
            consts: dict[str, str] = consts,
        ) -> None:
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
            elif isinstance(node, ast.Name) and node.id in consts:
                found.add(consts[node.id])
            elif isinstance(node, ast.Name) and isinstance(_module_str(path, node.id), str):
                found.add(str(_module_str(path, node.id)))  # NAME = other_module.NAME
            elif isinstance(node, ast.JoinedStr) and _fstring(node) in FSTRING_TYPES:
                found.update(FSTRING_TYPES[_fstring(node)])
            elif fn is not None and (path.name, fn.name) in PASS_THROUGH:
                pass
            elif isinstance(node, ast.Name) and (values := _resolve(tree, fn, node.id)) is not None:
                for v in values:
                    value(v, None)
            else:
                unknown.append(f"{path.name}: {ast.unparse(node)}")

        fns = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
        for fn in [None, *fns]:
            body = tree.body if fn is None else fn.body
            for stmt in body:
                if fn is None and isinstance(stmt, ast.FunctionDef | ast.ClassDef):
                    continue  # walked as functions of their own
                for node in ast.walk(stmt):
                    if not isinstance(node, ast.Call):
                        continue
                    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                    if name == "Trigger":
                        for kw in node.keywords:
                            if kw.arg == "type":
                                value(kw.value, fn)
                    elif name == "trigger" and len(node.args) >= 2:
                        value(node.args[1], fn)
    assert unknown == [], f"incident types the scan cannot follow: {unknown} (extend FSTRING_TYPES or the scan)"
    return found


def per_instance_codes() -> set[str]:
    codes: set[str] = set()
    for _path, tree in _sources():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", "")) in PER_INSTANCE
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                codes.add(str(node.args[0].value))
    return codes


def error_classes() -> set[str]:
    for m in pkgutil.walk_packages(gateway.__path__, "gateway."):
        if not m.name.endswith("__main__"):
            importlib.import_module(m.name)
    for pkg in ("drivers.base", "edge_config.loader"):
        importlib.import_module(pkg)
    out: set[str] = set()
    todo = [GatewayError]
    while todo:
        cls = todo.pop()
        out.add(cls.code)
        todo += cls.__subclasses__()
    return out


def required() -> dict[str, set[str]]:
    return {
        "type": incident_types() | {"resident_report"} | set(DEFAULT_REPORT_TYPES),
        "state": set(lc.STATES),
        "kind": set(EVENT_KINDS),
        "role": set(API_ROLES) | set(lc.ROLES) | set(get_args(StaffRole)),
        "department": set(lc.DEPARTMENTS),
        "category": set(inc.CATEGORIES),
        "sev": set(inc.SEVERITIES),
        # data.action of state changes: the actions, and what the system writes (dispatch_to's "by",
        # the rules' auto-resolve, the rating timeout's auto-close)
        "action": set(lc.ACTIONS) | {"note", "auto", "auto_resolve", "auto_close"},
        "dtype": set(DEVICE_TYPES),
        "field": {f.name for fs in lc.ACTION_FIELDS.values() for f in fs},
        "stage": set(lc.SLA_STAGES),
        "flag": set(get_args(ResidentFlag)),
        "error": error_classes() | set(lc.TicketError.STATUS) | per_instance_codes() | set(problems.ALL_CODES),
    }


def test_the_scan_finds_what_is_known() -> None:
    types = incident_types()
    assert {"sos", "fall", "building_offline", "compound_offline", "sensor_flapping", "inactivity"} <= types
    assert {"notify_channel_failed", "clock_step", "lorawan_gateway_silent", "wandering"} <= types
    assert {"parking_fire_lane", "parking_overstay", "heart_rate_abnormal", "spo2_low", "gate_fault"} <= types
    assert {"link_used", "link_expired", "illegal_transition", "not_assignee"} <= per_instance_codes()


@pytest.mark.parametrize("lang", catalog.LANGUAGES)
def test_every_code_has_words(lang: str) -> None:
    data = catalog.load(lang)
    missing = {
        group: sorted(c for c in codes if not str(data.get(group, {}).get(c, "")).strip())
        for group, codes in required().items()
    }
    assert {g: m for g, m in missing.items() if m} == {}


def test_both_languages_have_the_same_keys() -> None:
    def keys(d: dict[str, object], prefix: str = "") -> set[str]:
        out: set[str] = set()
        for k, v in d.items():
            out |= keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
        return out

    zh, en = (keys(catalog.load(lang)) for lang in catalog.LANGUAGES)
    assert sorted(zh ^ en) == []
    assert set(catalog.GROUPS) <= {k for k, v in catalog.load("zh").items() if isinstance(v, dict)}


def test_label_and_phrase() -> None:
    assert catalog.label("zh", "type", "building_offline") == "楼栋设备大面积离线"
    assert catalog.label("en", "error", "link_used").startswith("the link was already used")
    assert catalog.label("zh", "type", "no_such_type") == "no_such_type"
    assert catalog.phrase("zh", "floor_n", n=12) == "12层"
