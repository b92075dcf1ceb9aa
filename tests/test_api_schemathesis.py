"""Schemathesis against the gateway's own OpenAPI schema, on a real gateway: no generated input may
produce a 5xx, with an installer token and with a low-privilege (property staff) token.
Bounded (max_examples) so the API suite stays quick; the live stream is excluded (it never ends)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from gateway.install.mosquitto import Mosquitto
from tests.api_harness import ApiServer, trigger, write_api_site
from tests.support import service_missing

pytestmark = pytest.mark.broker
MAX_EXAMPLES = 12


@pytest.fixture(scope="module")
def fuzz_env() -> Iterator[dict[str, Any]]:
    bdir = tempfile.TemporaryDirectory(prefix="edge-broker-")
    ddir = tempfile.TemporaryDirectory(prefix="edge-fuzz-")
    try:
        broker = Mosquitto(Path(bdir.name)).start()
    except RuntimeError as exc:
        service_missing(f"mosquitto executable ({exc})")
        raise
    d = Path(ddir.name)
    srv = ApiServer(write_api_site(d, broker.port), d / "gateway.db").start()
    srv.raise_incident(
        trigger(
            "sos-r1|sos", "eldercare", "sos", "critical", grid="g1", building="b1", resident="r1", devices=["sos-r1"]
        )
    )
    try:
        yield {
            "srv": srv,
            "tokens": {
                "installer": srv.token("installer", name="inst"),
                "low": srv.token("property_staff", name="ps1"),
            },
        }
    finally:
        srv.stop()
        broker.stop()
        ddir.cleanup()
        bdir.cleanup()


def _fuzz(fuzz_env: dict[str, Any], token: str, examples: int = MAX_EXAMPLES) -> int:
    """Every operation of the schema, MAX_EXAMPLES generated cases each (positive and negative)."""
    srv = fuzz_env["srv"]
    schema = schemathesis.openapi.from_url(f"{srv.base}/api/v1/openapi.json")
    failures: list[str] = []
    statuses: list[int] = []
    n_ops = 0
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path == "/api/v1/stream":
            continue  # never ends; covered by the SSE tests
        n_ops += 1

        strategy = op.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE) | op.as_strategy(
            generation_mode=schemathesis.GenerationMode.NEGATIVE
        )

        @given(case=strategy)
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            response = case.call(base_url=srv.base, headers={"Authorization": f"Bearer {token}"}, timeout=10)
            statuses.append(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query}: {response.status_code}")

        run()
    assert n_ops >= 12 and len(statuses) >= n_ops * 3
    assert any(200 <= s < 300 for s in statuses) and any(400 <= s < 500 for s in statuses)
    assert failures == []
    return len(statuses)


ROLES = [
    "installer",
    "property_staff",
    "eldercare_worker",
    "grid_worker",
    "community_office",
    "street_office",
    "department",
    "central_platform",
]


@pytest.mark.parametrize("role", ROLES)
def test_no_server_errors_for_every_role(fuzz_env: dict[str, Any], role: str) -> None:
    """Every role's token: the installer with the full budget, the others with half each."""
    token = fuzz_env["srv"].token(role, name=f"fuzz-{role}")
    cases = _fuzz(fuzz_env, token, MAX_EXAMPLES if role == "installer" else MAX_EXAMPLES // 2)
    print(f"schemathesis {role}: {cases} generated cases, no 5xx")
