"""The API under ingest load (issue 5, "API traffic must not slow ingest"), against a real gateway:

- the Governor leaves requests alone while ingest keeps up and caps them only while ingest is
  behind (its backlog measured on the real pipeline, held up by a real writer-thread call);
- the live stream sends an urgent (life-safety / critical) incident at once, ahead of device-status
  changes that are being gathered, and keeps the order incident first within a dispatch.

No timing asserts on performance here: bench/api.py measures that.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.api.stream import is_urgent
from gateway.core.contract import EventKind, IncidentEvent, StatusChange
from gateway.install import traffic
from gateway.install.mosquitto import Mosquitto
from tests.api_harness import ApiServer, trigger, write_api_site
from tests.support import TrackedPublisher, wait_until

pytestmark = pytest.mark.broker


@pytest.fixture
def srv(tmp_path: Path, private_broker: Mosquitto) -> Iterator[ApiServer]:
    s = ApiServer(write_api_site(tmp_path, private_broker.port), tmp_path / "gateway.db").start()
    try:
        yield s
    finally:
        s.stop()


class Events:
    """Reads the stream in a thread: (event, id, data) in arrival order."""

    def __init__(self, base: str, token: str) -> None:
        self.items: list[tuple[str, str | None, str]] = []
        self.ended: httpx.HTTPError | None = None
        self._client = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(5, read=60)
        )
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        try:
            with self._client.stream("GET", "/api/v1/stream") as r:
                cur: dict[str, str] = {}
                for line in r.iter_lines():
                    if line == "":
                        if "event" in cur:
                            self.items.append((cur["event"], cur.get("id"), cur.get("data", "")))
                        cur = {}
                    elif not line.startswith(":"):
                        k, _, v = line.partition(":")
                        cur[k] = v[1:] if v.startswith(" ") else v
        except httpx.HTTPError as exc:  # the server ended the stream (shutdown): keep what arrived
            self.ended = exc

    def index(self, pred: Any) -> int | None:
        for i, item in enumerate(list(self.items)):
            if pred(item):
                return i
        return None

    def close(self) -> None:
        self._client.close()


def _status(srv: ApiServer, device_id: str, online: bool) -> None:
    """A device-status change committed through the writer thread, as ingest would commit it."""

    def write(conn: Any, result: Any, now: int) -> None:
        result.status_changes.append(StatusChange(device_id, online, "test", now))

    srv.gw.pipeline.call(write).result(10)


def _device_event(device_id: str, online: bool) -> Any:
    def pred(item: tuple[str, str | None, str]) -> bool:
        if item[0] != "devices":
            return False
        return any(c["device_id"] == device_id and c["online"] is online for c in json.loads(item[2])["changes"])

    return pred


def test_urgent_incident_is_sent_at_once_ahead_of_gathered_device_changes(srv: ApiServer) -> None:
    hub = srv.app.state.ctx.hub
    ev = Events(srv.base, srv.token("installer"))
    try:
        assert wait_until(lambda: ev.index(lambda i: i[0] == "hello") is not None, 10)
        hub.coalesce_s = 30.0  # non-urgent changes now wait up to 30 s after the previous dispatch
        _status(srv, "acc-b2", False)  # nothing sent for a while: dispatched at once
        assert wait_until(lambda: ev.index(_device_event("acc-b2", False)) is not None, 5)
        _status(srv, "acc-b2", True)  # gathered: not sent yet
        assert wait_until(lambda: len(hub._pending) > 0, 5)  # handed to the hub, held by the gathering window
        assert ev.index(_device_event("acc-b2", True)) is None
        iid = srv.raise_incident(
            trigger("sos-r1|sos-load", "eldercare", "sos", "critical", grid="g1", building="b1", resident="r1")
        )

        def created(item: tuple[str, str | None, str]) -> bool:
            return item[0] == "incident" and json.loads(item[2])["incident_id"] == iid

        # the SOS ends the 30 s wait at once; the gathered device change goes with it, after it
        assert wait_until(lambda: ev.index(created) is not None, 5)
        assert wait_until(lambda: ev.index(_device_event("acc-b2", True)) is not None, 5)
        first_incident, device = ev.index(created), ev.index(_device_event("acc-b2", True))
        assert first_incident is not None and device is not None and first_incident < device
    finally:
        ev.close()


def test_which_changes_are_urgent() -> None:
    def event(kind: EventKind, data: dict[str, Any], snap: dict[str, Any] | None = None) -> IncidentEvent:
        return IncidentEvent(1, "i1", 0, kind, actor=None, role=None, data=data, incident=snap)

    def created(severity: str, life: bool = False) -> IncidentEvent:
        snap = {"severity": severity, "life_safety": life}
        return event("created", dict(snap), snap)

    assert is_urgent(created("critical")) and is_urgent(created("major")) and is_urgent(created("minor", life=True))
    assert not is_urgent(created("warning")) and not is_urgent(created("minor"))
    assert is_urgent(event("severity_changed", {"from": "minor", "to": "critical"}))
    assert not is_urgent(event("severity_changed", {"from": "warning", "to": "minor"}))
    assert not is_urgent(event("state_changed", {"to": "accepted"}))


def test_governor_caps_requests_only_while_ingest_is_behind(srv: ApiServer) -> None:
    governor = srv.app.state.governor
    token = srv.token("installer")
    with srv.client(token) as c:
        for _ in range(5):
            assert c.get("/api/v1/me").status_code == 200
        assert governor.throttled == 0 and governor.passed >= 5  # ingest idle: straight through

        # Hold the writer thread (a real pipeline call) and publish: messages pile up uncommitted.
        gate = threading.Event()
        held = srv.gw.pipeline.call(lambda conn, result, now: gate.wait(60))
        pub = TrackedPublisher("127.0.0.1", srv.cfg.mqtt.port, "api-load-pub")
        try:
            devs = traffic.sim_devices(srv.cfg)
            rng = random.Random(5)
            pub.publish_all([traffic.telemetry(devs[i % len(devs)], rng) for i in range(600)])
            assert wait_until(lambda: srv.gw.pipeline.backlog > 400, 20)
            assert c.get("/api/v1/me").status_code == 200  # still served, one at a time under the cap
            assert governor.throttled >= 1
            metrics = c.get("/metrics").text
            assert "edge_api_requests_throttled_total" in metrics
            backlog = next(ln for ln in metrics.splitlines() if ln.startswith("edge_ingest_backlog_messages"))
            assert float(backlog.split()[-1]) > 400
        finally:
            gate.set()
            held.result(60)
            pub.close()
        assert wait_until(lambda: srv.gw.pipeline.backlog == 0, 30)
        throttled = governor.throttled
        assert c.get("/api/v1/me").status_code == 200
        assert governor.throttled == throttled  # caught up: no cap again


def test_a_requests_writes_are_charged_to_it_with_the_pipeline_threads_time(srv: ApiServer) -> None:
    """The Governor charges a request what its writes cost the pipeline thread (where ingest runs):
    the whole transaction, failed ones too, and nothing for writes outside a request."""
    import asyncio
    import time

    from gateway.api import db

    ctx = srv.app.state.ctx
    loop = srv._loop
    assert loop is not None

    def slow(conn: Any, result: Any, now: int) -> None:
        time.sleep(0.05)

    def failing(conn: Any, result: Any, now: int) -> None:
        time.sleep(0.02)
        raise RuntimeError("refused")

    async def request() -> list[float]:
        meter: list[float] = []
        token = db.request_cost.set(meter)
        try:
            await ctx.write(slow)
            with pytest.raises(RuntimeError):
                await ctx.write(failing)
        finally:
            db.request_cost.reset(token)
        await ctx.write(slow)  # no request being metered
        return meter

    meter = asyncio.run_coroutine_threadsafe(request(), loop).result(30)
    assert len(meter) == 2
    assert meter[0] >= 0.05 and meter[1] >= 0.02


def test_release_waits_for_the_access_log_row_of_a_concurrent_request(srv: ApiServer) -> None:
    """Two requests of one token release the same personal data while the first one's access-log
    row is still being written: the second must not return (let the data leave) before that row is
    committed, and a failed write withholds the data from both."""
    import asyncio

    from gateway.api import access
    from gateway.api.auth import Principal

    ctx = srv.app.state.ctx
    loop = srv._loop
    assert loop is not None
    p = Principal(token_id="tok-race", name="ec1", role="eldercare_worker")
    rel = access.Release()
    rel.add("inc-race", "r1", "personal_data", ["resident_name"])

    def logged(incident: str = "inc-race") -> int:
        conn = sqlite3.connect(srv.db)  # a reader of its own: the writer's connection belongs to its thread
        try:
            return int(conn.execute("SELECT count(*) FROM access_log WHERE incident_id=?", (incident,)).fetchone()[0])
        finally:
            conn.close()

    gate = threading.Event()
    held = srv.gw.pipeline.call(lambda conn, result, now: gate.wait(60))  # the writer thread is busy
    first = asyncio.run_coroutine_threadsafe(ctx.log_release(p, rel, "api"), loop)
    _loop_turns(loop)  # it has handed its access-log row to the (held) writer thread
    second = asyncio.run_coroutine_threadsafe(ctx.log_release(p, rel, "api"), loop)
    _loop_turns(loop)  # the second request has run up to its first wait
    assert not first.done() and not second.done()  # neither lets the data go before the row exists
    gate.set()
    held.result(30)
    first.result(30)
    second.result(30)
    assert logged() == 1  # one row for both (deduplicated), committed before either returned
    third = asyncio.run_coroutine_threadsafe(ctx.log_release(p, rel, "api"), loop)
    third.result(10)
    assert logged() == 1  # logged already: no second row within the dedupe window

    # A write that fails: the concurrent waiter withholds the data too (503), nothing is marked logged.
    rel2 = access.Release()
    rel2.add("inc-race-2", "r1", "personal_data", ["resident_name"])
    gate2 = threading.Event()
    held2 = srv.gw.pipeline.call(lambda conn, result, now: gate2.wait(60))
    failing = asyncio.run_coroutine_threadsafe(_failing_release(ctx, p, rel2), loop)
    _loop_turns(loop)
    waiter = asyncio.run_coroutine_threadsafe(ctx.log_release(p, rel2, "api"), loop)
    _loop_turns(loop)
    assert not waiter.done()
    gate2.set()
    held2.result(30)
    from fastapi import HTTPException

    for fut in (failing, waiter):
        with pytest.raises(HTTPException) as ei:
            fut.result(30)
        assert ei.value.status_code == 503
    asyncio.run_coroutine_threadsafe(ctx.log_release(p, rel2, "api"), loop).result(10)  # retried, written
    assert logged("inc-race-2") == 1


def _loop_turns(loop: Any, turns: int = 3) -> None:
    """Return once the server loop has run everything submitted before this call up to its first
    wait (the loop runs submitted callbacks in order; a few turns cover their first steps)."""
    import asyncio

    async def turn() -> None:
        for _ in range(turns):
            await asyncio.sleep(0)

    asyncio.run_coroutine_threadsafe(turn(), loop).result(5)


async def _failing_release(ctx: Any, p: Any, rel: Any) -> None:
    """log_release whose store write raises (as a full disk would), on the real pipeline thread."""

    def boom(conn: Any, result: Any, now: int) -> None:
        raise RuntimeError("disk full")

    original = ctx.write

    async def write(fn: Any, timeout: float = 10.0) -> Any:
        return await original(boom, timeout)

    ctx.write = write
    try:
        await ctx.log_release(p, rel, "api")
    finally:
        del ctx.write  # back to the class's method
