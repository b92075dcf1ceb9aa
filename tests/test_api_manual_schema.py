"""``POST /api/v1/incidents``: the OpenAPI schema states the constraints the gateway enforces
(issue 23, item 11), so bodies generated from the schema are accepted.

Bodies are generated from the served OpenAPI document by schemathesis (positive mode: valid by the
schema) and sent with an installer token to a real gateway (private Mosquitto, API on uvicorn).
At least 90 % must be created (2xx). The remaining refusals may only be for reasons that depend on
the moment, not on the body, which no schema can state: the token's rate limit (429), a
``request_id`` already used by a different action (409 ``request_id_reused``) and a busy gateway
(503). An installer token has every grid and compound in scope; scope refusals (403 for a scoped
token) are the fourth such reason, covered in test_api_endpoints.py.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from gateway.install.mosquitto import Mosquitto
from tests.api_harness import ApiServer, write_api_site
from tests.support import service_missing

pytestmark = pytest.mark.broker
EXAMPLES = 120
STATE_REASONS = {429: "rate limit", 409: "request_id_reused", 503: "busy"}


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[ApiServer, str]]:
    bdir = tempfile.TemporaryDirectory(prefix="edge-broker-")
    ddir = tempfile.TemporaryDirectory(prefix="edge-manual-")
    try:
        broker = Mosquitto(Path(bdir.name)).start()
    except RuntimeError as exc:
        service_missing(f"mosquitto executable ({exc})")
        raise
    d = Path(ddir.name)
    srv = ApiServer(write_api_site(d, broker.port), d / "gateway.db").start()
    try:
        yield srv, srv.token("installer", name="inst")
    finally:
        srv.stop()
        broker.stop()
        ddir.cleanup()
        bdir.cleanup()


def _body_schema(srv: ApiServer, token: str) -> dict[str, Any]:
    doc = httpx.get(f"{srv.base}/api/v1/openapi.json", headers={"Authorization": f"Bearer {token}"}).json()
    schemas: dict[str, Any] = doc["components"]["schemas"]
    return schemas


def test_the_schema_states_the_constraints(api: tuple[ApiServer, str]) -> None:
    srv, token = api
    schemas = _body_schema(srv, token)
    body, loc = schemas["ManualIncident"], schemas["ManualLocation"]
    assert body["additionalProperties"] is False and loc["additionalProperties"] is False
    assert set(body["required"]) == {"category", "type", "severity", "location", "description"}
    assert body["properties"]["description"]["maxLength"] == 1000  # what the ticket loop keeps
    assert body["properties"]["description"]["pattern"] == r"[^\s\x1c-\x1f\x85]"  # not only blanks, as str.strip sees
    props = loc["properties"]
    # the site's own ids (from the config the app runs with)
    cfg = srv.gw.cfg
    assert _enum(props["building"]) == sorted(b.id for c in cfg.site.compounds for b in c.buildings)
    assert _enum(props["grid"]) == sorted(g.id for g in cfg.site.grids)
    assert _enum(props["compound"]) == sorted(c.id for c in cfg.site.compounds)
    assert _enum(props["space"]) == sorted(s.id for a in cfg.site.parking_areas for s in a.spaces)
    # at least one of building, space, grid, compound; a unit only with a building that has it
    one_of = next(part["anyOf"] for part in loc["allOf"] if any("required" in b for b in part["anyOf"]))
    assert {tuple(b["required"]) for b in one_of} == {("building",), ("space",), ("grid",), ("compound",)}


def _enum(prop: dict[str, Any]) -> list[str]:
    return sorted(v for branch in prop.get("anyOf", [prop]) for v in branch.get("enum", []))


def test_most_schema_valid_bodies_are_accepted(api: tuple[ApiServer, str]) -> None:
    srv, token = api
    schema = schemathesis.openapi.from_url(f"{srv.base}/api/v1/openapi.json")
    op = next(
        r.ok() for r in schema.get_all_operations() if r.ok().path == "/api/v1/incidents" and r.ok().method == "post"
    )
    outcomes: Counter[int] = Counter()
    refused: list[str] = []

    @given(case=op.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: Any) -> None:
        response = case.call(base_url=srv.base, headers={"Authorization": f"Bearer {token}"}, timeout=15)
        outcomes[response.status_code] += 1
        if not 200 <= response.status_code < 300:
            refused.append(f"{response.status_code} {case.body!r}: {response.text[:300]}")

    run()
    total = sum(outcomes.values())
    accepted = sum(n for s, n in outcomes.items() if 200 <= s < 300)
    print(f"manual incidents from the schema: {total} bodies, {accepted} accepted, statuses {dict(outcomes)}")
    assert total >= EXAMPLES // 2
    assert accepted >= 0.9 * total, "\n".join(refused[:15])
    other = [r for r in refused if int(r.split()[0]) not in STATE_REASONS]
    assert other == [], "refused for reasons the schema could state:\n" + "\n".join(other[:15])
