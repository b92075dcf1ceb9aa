"""One error root: every product exception derives from gateway.errors.GatewayError with a stable
code, the tree drawn in gateway/errors.py matches the code, and the API answers a GatewayError
with its own status and code through one handler."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway import errors
from gateway.api import gateway_error_response
from gateway.core.store import StoreFull
from gateway.tickets.lifecycle import TicketError
from tests.support import ROOT

PRODUCT_PACKAGES = ("gateway", "drivers", "edge_config", "cloud_sync")


def _module_names(path: Path, prefix: str) -> Iterator[str]:
    """Every module under ``path``, including directories without __init__.py (namespace
    packages such as gateway/core), which pkgutil.iter_modules does not list."""
    for info in pkgutil.iter_modules([str(path)], prefix):
        if info.name.rsplit(".", 1)[-1] == "__main__":  # runs the CLI when imported
            continue
        yield info.name
        if info.ispkg:
            yield from _module_names(path / info.name.rsplit(".", 1)[-1], info.name + ".")
    for sub in sorted(path.iterdir()):
        if sub.is_dir() and not (sub / "__init__.py").exists() and any(sub.glob("*.py")):
            yield from _module_names(sub, f"{prefix}{sub.name}.")


def product_exceptions() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for pkg in PRODUCT_PACKAGES:
        for name in [pkg, *_module_names(ROOT / pkg, pkg + ".")]:
            module = importlib.import_module(name)
            for obj in vars(module).values():
                if (
                    inspect.isclass(obj)
                    and issubclass(obj, BaseException)
                    and obj.__module__ == module.__name__  # defined here, not imported
                ):
                    found.append(obj)
    return found


EXCEPTIONS = product_exceptions()


def test_the_walk_finds_the_known_exceptions() -> None:
    # Guards the walk itself: a broken discovery would make the tests below pass vacuously.
    names = {c.__name__ for c in EXCEPTIONS}
    assert {"GatewayError", "StoreFull", "DecodeError", "ConfigError", "TicketError", "FrameError"} <= names
    assert len(EXCEPTIONS) >= 20


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_product_exception_derives_from_the_root(cls: type[BaseException]) -> None:
    assert issubclass(cls, errors.GatewayError)
    code = cls.__dict__.get("code")
    assert isinstance(code, str) and re.fullmatch(r"[a-z][a-z0-9_]*", code), f"{cls.__name__} needs its own code"
    assert isinstance(cls.http_status, int) and 400 <= cls.http_status <= 599


def test_codes_are_unique() -> None:
    codes = [c.__dict__["code"] for c in EXCEPTIONS]
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)


TREE_LINE = re.compile(r"^(?P<indent> *)\* (?P<name>\w+)\s+(?P<module>[\w.]+)\s+(?P<code>\w+)\s+(?P<status>[\w-]+)$")


def _drawn_tree() -> dict[str, tuple[str | None, str, str, str]]:
    """name -> (parent, module, code, status) as drawn in gateway/errors.py's docstring."""
    doc = errors.__doc__ or ""
    drawn: dict[str, tuple[str | None, str, str, str]] = {}
    stack: list[tuple[int, str]] = []
    for line in doc.splitlines():
        m = TREE_LINE.match(line[4:]) if line.startswith("    ") else None
        if not m:
            continue
        depth = len(m["indent"]) // 2
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parent = stack[-1][1] if stack else None
        assert m["name"] not in drawn, f"{m['name']} is drawn twice"
        drawn[m["name"]] = (parent, m["module"], m["code"], m["status"])
        stack.append((depth, m["name"]))
    return drawn


def test_the_docstring_tree_matches_the_code() -> None:
    drawn = _drawn_tree()
    assert set(drawn) == {c.__name__ for c in EXCEPTIONS}, "gateway/errors.py's drawing is stale"
    for cls in EXCEPTIONS:
        parent, module, code, status = drawn[cls.__name__]
        base = cls.__mro__[1]
        assert parent == (None if cls is errors.GatewayError else base.__name__), cls
        assert module == cls.__module__, cls
        assert code == cls.__dict__["code"], cls
        if status.isdigit():
            assert int(status) == cls.http_status, cls


def test_existing_behaviour_is_kept() -> None:
    # Classes that carry their own fields keep their constructors, messages and codes.
    from drivers.base import DecodeError
    from edge_config.loader import ConfigError, ConfigIssue

    e = TicketError("illegal_transition", "cannot accept", "accepted", ["start"])
    assert (e.code, e.http_status, str(e), e.allowed) == ("illegal_transition", 409, "cannot accept", ["start"])
    assert TicketError("made_up", "x").http_status == 400
    assert TicketError.code == "ticket_refused"
    d = DecodeError("bad_value", "battery 250")
    assert (str(d), d.reason, d.code) == ("bad_value: battery 250", "bad_value", "decode_error")
    with pytest.raises(ValueError):
        DecodeError("not_a_reason", "x")
    c = ConfigError([ConfigIssue("site.yaml", 3, "mqtt.port", "bad")])
    assert str(c) == "site.yaml:3: mqtt.port: bad" and c.code == "config_invalid"
    assert isinstance(StoreFull("full"), errors.Unavailable) and StoreFull.http_status == 503


# --- the API handler --------------------------------------------------------------------------


def _app_raising(exc: Exception) -> FastAPI:
    app = FastAPI()
    app.add_exception_handler(errors.GatewayError, gateway_error_response)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return app


async def _get(app: FastAPI, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.get(path)


@pytest.mark.parametrize(
    ("exc", "status", "code", "detail"),
    [
        (
            TicketError("illegal_transition", "cannot start", "new", ["accept"]),
            409,
            "illegal_transition",
            {"code": "illegal_transition", "message": "cannot start", "current_state": "new", "allowed": ["accept"]},
        ),
        (
            TicketError("not_found", "no incident x"),
            404,
            "not_found",
            {"code": "not_found", "message": "no incident x", "current_state": None, "allowed": []},
        ),
        (StoreFull("database or disk is full"), 503, "store_full", "database or disk is full"),
    ],
)
def test_the_handler_answers_with_the_errors_status_and_code(
    exc: Exception, status: int, code: str, detail: Any
) -> None:
    r = asyncio.run(_get(_app_raising(exc), "/boom"))
    assert r.status_code == status
    assert r.json() == {"detail": detail, "code": code}


@pytest.mark.broker
def test_a_refused_ticket_action_on_the_real_api() -> None:
    from gateway.install.mosquitto import Mosquitto
    from tests.api_harness import ApiServer, trigger, write_api_site
    from tests.support import service_missing

    with tempfile.TemporaryDirectory(prefix="edge-broker-") as bdir, tempfile.TemporaryDirectory() as ddir:
        try:
            broker = Mosquitto(Path(bdir)).start()
        except RuntimeError as exc:
            service_missing(f"mosquitto executable ({exc})")
            raise
        try:
            d = Path(ddir)
            srv = ApiServer(write_api_site(d, broker.port), d / "gateway.db").start()
            try:
                token = srv.token("property_staff", name="ps1")
                iid = srv.raise_incident(
                    trigger("acc-b2|door_forced", "security", "door_forced", "major", grid="g2", building="b2")
                )
                with srv.client(token) as c:
                    bad = c.post(f"/api/v1/incidents/{iid}/actions", json={"action": "start"})
                    refused = c.post(f"/api/v1/incidents/{iid}/actions", json={"action": "dispatch"})
            finally:
                srv.stop()
        finally:
            broker.stop()
    assert bad.status_code == 409, bad.text
    body = bad.json()
    assert body["code"] == "illegal_transition" and body["detail"]["code"] == "illegal_transition"
    # raised incidents are dispatched to a team at once; start needs an accepted one
    assert body["detail"]["current_state"] == "dispatched" and "accept" in body["detail"]["allowed"]
    assert "start" not in body["detail"]["allowed"] and "cannot start" in body["detail"]["message"]
    assert refused.status_code == 403, refused.text  # dispatch is a supervisors' action
    assert refused.json()["code"] == "forbidden" and refused.json()["detail"]["code"] == "forbidden"
