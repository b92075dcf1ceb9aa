"""The residents' endpoints under generated input: schemathesis over the new operations (with the
residents' loop on, public and staff ones) and hypothesis over evaluation bodies with real, used,
forged and random links. No input may produce a 5xx; a valid link is used once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.install.mosquitto import Mosquitto
from gateway.residents import sender
from tests.api_harness import trigger
from tests.resident_harness import SMS_AUTH, ResidentEnv

pytestmark = pytest.mark.broker
NEW = ("/api/v1/resident/", "/api/v1/warnings", "/api/v1/feed/warnings", "evaluation-link", "report-qr")


@pytest.fixture
def env(tmp_path: Path, private_broker: Mosquitto, monkeypatch: pytest.MonkeyPatch) -> Iterator[ResidentEnv]:
    monkeypatch.setenv("RESIDENT_SMS_AUTH", SMS_AUTH)
    e = ResidentEnv(tmp_path, private_broker.port).start()
    try:
        yield e
    finally:
        e.stop()


def _resolved(env: ResidentEnv) -> tuple[str, int]:
    """An SOS handled by ec1: resolved, an evaluation request waiting."""
    srv = env.srv
    iid = srv.raise_incident(
        trigger("sos-r1|sos", "eldercare", "sos", "critical", grid="g1", building="b1", resident="r1")
    )
    with srv.client(srv.token("eldercare_worker", name="ec1")) as c:
        for action, data in (("accept", None), ("resolve", {"what_done": "已处理"})):
            r = c.post(f"/api/v1/incidents/{iid}/actions", json={"action": action, "data": data})
            assert r.status_code == 200, r.text
    req = srv.read("SELECT id FROM evaluation_requests WHERE incident_id=? AND status='pending'", (iid,))[0][0]
    return iid, int(req)


def test_schemathesis_over_the_residents_operations(env: ResidentEnv) -> None:
    srv = env.srv
    _resolved(env)
    schema = schemathesis.openapi.from_url(f"{srv.base}/api/v1/openapi.json")
    tokens = {"installer": srv.token("installer", name="inst"), "grid": srv.token("grid_worker", name="gw9")}
    statuses: list[int] = []
    failures: list[str] = []
    n_ops = 0
    for result in schema.get_all_operations():
        op = result.ok()
        if not any(part in op.path for part in NEW):
            continue
        n_ops += 1
        strategy = op.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE) | op.as_strategy(
            generation_mode=schemathesis.GenerationMode.NEGATIVE
        )

        @given(case=strategy, who=st.sampled_from(sorted(tokens)))
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any, who: str) -> None:
            r = case.call(base_url=srv.base, headers={"Authorization": f"Bearer {tokens[who]}"}, timeout=10)
            statuses.append(r.status_code)
            if r.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.body!r:.200}: {r.status_code}")

        run()
    assert n_ops == 8
    assert failures == []
    assert any(200 <= s < 300 for s in statuses) and any(400 <= s < 500 for s in statuses)
    print(f"schemathesis residents: {len(statuses)} generated cases over {n_ops} operations, no 5xx")


def test_evaluation_bodies_fuzzed(env: ResidentEnv) -> None:
    srv = env.srv
    iid, req = _resolved(env)

    def mint() -> str:
        out = srv.gw.pipeline.call(lambda c, r, n: sender.mint(c, srv.cfg, req, n)).result(10)
        assert out is not None
        return str(out[0])

    live = mint()
    junk = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=40),
        st.lists(st.none()),
    )
    bodies = st.fixed_dictionaries(
        {},
        optional={
            "token": st.sampled_from([live, live[:-1], "evaluate." + "A" * 22 + ".1.x", live.upper()]) | junk,
            "solved": st.booleans() | junk,
            "rating": st.integers(-3, 9) | junk,
            "comment": st.text(max_size=600) | junk,
            "lang": st.sampled_from(["zh", "en", "fr"]) | junk,
        },
    )
    seen: list[tuple[int, str | None]] = []

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=bodies)
    @example(body={"token": live, "solved": True, "rating": 4, "comment": "<b>谢谢</b>"})
    def fuzz(body: dict[str, Any]) -> None:
        with httpx.Client(base_url=srv.base) as anon:
            for path in ("/api/v1/resident/evaluation", "/api/v1/resident/evaluation/view"):
                r = anon.post(path, json=body)
                assert r.status_code < 500, r.text
                seen.append((r.status_code, r.json().get("code") if r.status_code != 200 else None))

    fuzz()
    assert (200, None) in seen and (403, "link_used") in seen  # the link acted once, then was refused
    rated = srv.read(
        "SELECT count(*) FROM incident_events WHERE incident_id=? AND kind='state_changed'"
        " AND json_extract(data, '$.to')='evaluated'",
        (iid,),
    )[0][0]
    assert rated == 1
