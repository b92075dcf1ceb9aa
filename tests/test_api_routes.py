"""The API's surface as clients see it: every (method, path), its documented status codes and
whether it needs a token, pinned so that moving endpoints between router modules cannot change
them; and every operation carries exactly one OpenAPI tag (its resource)."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edge_config import load_config
from gateway.api import EAGER_ROUTERS, ROUTERS, LoadRouters, create_app
from tests.conftest import write_site

# (method, path) -> documented status codes, taken from the API before it was split into routers.
EXPECTED: dict[tuple[str, str], list[str]] = {
    ("GET", "/api/v1/access-log"): ["200", "401", "403", "422"],
    ("GET", "/api/v1/devices"): ["200", "422"],
    ("GET", "/api/v1/devices/dead-letters"): ["200", "401", "403", "422"],
    ("GET", "/api/v1/devices/unconfigured"): ["200", "401", "403"],
    ("GET", "/api/v1/devices/{device_id}"): ["200", "401", "403", "422"],
    ("GET", "/api/v1/feed/incidents"): ["200", "401", "403", "422"],
    ("GET", "/api/v1/incidents"): ["200", "401", "403", "422"],
    ("POST", "/api/v1/incidents"): ["201", "401", "403", "422"],
    ("GET", "/api/v1/incidents/{incident_id}"): ["200", "401", "403", "422"],
    ("POST", "/api/v1/incidents/{incident_id}/actions"): ["200", "401", "403", "404", "409", "422"],
    ("GET", "/api/v1/incidents/{incident_id}/snapshots"): ["200", "401", "403", "422"],
    ("GET", "/api/v1/incidents/{incident_id}/snapshots/{snapshot_id}"): ["200", "401", "403", "422"],
    ("GET", "/api/v1/me"): ["200"],
    ("POST", "/api/v1/residents/{resident_id}/forget"): ["200", "401", "403", "422"],
    ("GET", "/api/v1/scorecard"): ["200", "401", "403", "422"],
    ("GET", "/api/v1/site"): ["200"],
    ("POST", "/api/v1/session"): ["200", "401", "403", "422", "429"],
    ("POST", "/api/v1/session/signout"): ["200", "401", "403"],
    ("GET", "/api/v1/sessions"): ["200", "401", "403", "422"],
    ("POST", "/api/v1/sessions/revoke"): ["200", "401", "403", "422"],
    ("POST", "/api/v1/signin-links"): ["200", "401", "403", "422"],
    ("GET", "/api/v1/stream"): ["200", "401", "422"],
    ("GET", "/healthz"): ["200"],
    ("GET", "/metrics"): ["200", "401", "403"],
    ("GET", "/readyz"): ["200", "401", "403", "503"],
    # residents (issue 21): the pages' endpoints take the signed link in the body instead of a token
    ("POST", "/api/v1/resident/evaluation/view"): ["200", "403", "409", "422", "429"],
    ("POST", "/api/v1/resident/evaluation"): ["200", "403", "409", "422", "429"],
    ("POST", "/api/v1/resident/report/view"): ["200", "403", "409", "422", "429"],
    ("POST", "/api/v1/resident/report"): ["201", "403", "409", "413", "422", "429"],
    ("POST", "/api/v1/incidents/{incident_id}/evaluation-link"): ["200", "401", "403", "409", "422"],
    ("POST", "/api/v1/buildings/{building}/report-qr"): ["200", "401", "403", "422"],
    ("GET", "/api/v1/warnings"): ["200", "401", "403"],
    ("GET", "/api/v1/feed/warnings"): ["200", "401", "403", "422"],
    # departments on the scorecard (issue 22)
    ("GET", "/api/v1/departments"): ["200", "401", "403", "422"],
    # seeing the site (issue 20)
    ("GET", "/api/v1/devices/page"): ["200", "401", "403", "422"],
    ("GET", "/api/v1/history/incidents"): ["200", "401", "403", "422"],
    ("GET", "/api/v1/history/incidents/{incident_id}/timeline"): ["200", "401", "403", "404", "422"],
    ("GET", "/api/v1/reports/incidents.{fmt}"): ["200", "401", "403", "422"],
    ("GET", "/api/v1/reports/scorecard.{fmt}"): ["200", "401", "403", "422"],
    ("GET", "/api/v1/parking"): ["200", "401", "403", "422"],
    ("GET", "/api/v1/parking/{area_id}/hourly"): ["200", "401", "403", "404", "422"],
    ("GET", "/api/v1/buildings"): ["200", "401", "403"],
    ("GET", "/api/v1/adopt/candidates"): ["200", "401", "403"],
    ("POST", "/api/v1/adopt"): ["200", "401", "403", "409", "422"],
    ("GET", "/api/v1/stats/incidents"): ["200", "401", "403", "422"],
}
RESIDENT_PAGES = {
    ("POST", "/api/v1/resident/evaluation/view"),
    ("POST", "/api/v1/resident/evaluation"),
    ("POST", "/api/v1/resident/report/view"),
    ("POST", "/api/v1/resident/report"),
}
# Liveness is probed by supervisors without credentials; residents have no account (their signed
# link is the credential, in the body); signing a device out needs none (it ends the session its
# cookie names, if any, and clears the cookie); everything else needs a token or a device session.
OPEN = {("GET", "/healthz"), ("POST", "/api/v1/session/signout"), *RESIDENT_PAGES}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d: Path = tmp_path_factory.mktemp("api-routes")
    cfg = load_config(write_site(d, 1883))
    # The document is built from the routers alone: create_app only reads the config and the store
    # path here, so no gateway (broker, store, threads) has to run.
    app = create_app(SimpleNamespace(cfg=cfg, store_path=d / "gateway.db"), first_start_token=False)
    return app.openapi()


def _operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m.upper(), path): op for path, ops in spec["paths"].items() for m, op in ops.items()}


def test_methods_paths_and_status_codes_unchanged(spec: dict[str, Any]) -> None:
    ops = _operations(spec)
    assert set(ops) == set(EXPECTED)
    assert {k: sorted(op["responses"]) for k, op in ops.items()} == EXPECTED


def test_only_liveness_is_open(spec: dict[str, Any]) -> None:
    open_ops = {k for k, op in _operations(spec).items() if not op.get("security")}
    assert open_ops == OPEN


def test_every_operation_has_one_tag(spec: dict[str, Any]) -> None:
    untagged = {k: op.get("tags") for k, op in _operations(spec).items() if len(op.get("tags") or []) != 1}
    assert untagged == {}


def test_fixed_device_paths_match_before_device_id(spec: dict[str, Any]) -> None:
    # Routes match in registration order (which the document keeps) and "dead-letters" and
    # "unconfigured" would pass as device ids, so they must come before /devices/{device_id}.
    paths = list(spec["paths"])
    by_id = paths.index("/api/v1/devices/{device_id}")
    assert paths.index("/api/v1/devices/dead-letters") < by_id
    assert paths.index("/api/v1/devices/unconfigured") < by_id
    assert paths.index("/api/v1/devices/page") < by_id


def test_routers_past_the_probes_are_built_on_first_need(tmp_path: Path) -> None:
    """Start-up builds only the probes' and the stream's routers; any other request, or the
    document, builds the rest first (README "Pi budget"), in the document's order."""
    cfg = load_config(write_site(tmp_path, 1883))
    app = create_app(SimpleNamespace(cfg=cfg, store_path=tmp_path / "gateway.db"), first_start_token=False)
    routers = app.state.routers
    assert set(routers.routes) == set(EAGER_ROUTERS) and not routers.loaded
    seen: list[str] = []

    async def downstream(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])

    async def nothing(*_: Any) -> Any:
        return None

    loader = LoadRouters(downstream, routers)
    for path in ("/healthz", "/readyz", "/metrics", "/api/v1/stream"):
        asyncio.run(loader({"type": "http", "path": path}, nothing, nothing))
    assert not routers.loaded, "a probe built the other routers"
    asyncio.run(loader({"type": "http", "path": "/api/v1/me"}, nothing, nothing))
    assert routers.loaded and set(routers.routes) == set(ROUTERS)
    assert seen == ["/healthz", "/readyz", "/metrics", "/api/v1/stream", "/api/v1/me"]
    included = [r for r in app.router.routes if hasattr(r, "original_router")]
    assert [r.original_router for r in included] == [
        importlib.import_module(f"gateway.api.{name}").router for name in ROUTERS
    ]
