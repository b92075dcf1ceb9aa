"""Camera snapshots referenced from incidents, viewable through the API (issue 7)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from gateway.install.mosquitto import Mosquitto
from gateway.vision.snapshots import SnapshotStore
from tests.api_harness import ApiServer, trigger, write_api_site

JPEG = b"\xff\xd8\xff\xe0" + b"snapshot-bytes" * 20 + b"\xff\xd9"


@pytest.fixture
def srv() -> Iterator[tuple[ApiServer, SnapshotStore]]:
    bdir = tempfile.TemporaryDirectory(prefix="edge-broker-")
    ddir = tempfile.TemporaryDirectory(prefix="edge-snap-")
    broker = Mosquitto(Path(bdir.name)).start()
    d = Path(ddir.name)
    server = ApiServer(write_api_site(d, broker.port), d / "gateway.db").start()
    store = SnapshotStore(d / "snapshots", 10 * 1024 * 1024)
    # A camera watching building 2's door: its device is the access controller there.
    server.gw.cameras = SimpleNamespace(snapshots=store, stop=lambda: None)
    server.gw.cfg.cameras.cameras = [SimpleNamespace(id="cam-b2", device="acc-b2")]
    try:
        yield server, store
    finally:
        server.stop()
        broker.stop()
        ddir.cleanup()
        bdir.cleanup()


def test_incident_snapshots_are_listed_and_served_to_who_may_see_the_incident(
    srv: tuple[ApiServer, SnapshotStore],
) -> None:
    server, store = srv
    iid = server.raise_incident(
        trigger("acc-b2|intrusion", "security", "intrusion", "major", grid="g2", building="b2", devices=["acc-b2"])
    )
    (row,) = server.read("SELECT first_ms FROM incidents WHERE id=?", (iid,))
    sid = store.put("cam-b2", "zone-back", int(row[0]), JPEG)
    store.put("cam-other", "zone-x", int(row[0]), JPEG)  # another camera: not this incident's
    with server.client(server.token("property_staff", name="ps1")) as c:
        listed = c.get(f"/api/v1/incidents/{iid}/snapshots")
        assert listed.status_code == 200
        assert [s["id"] for s in listed.json()["items"]] == [sid]
        img = c.get(f"/api/v1/incidents/{iid}/snapshots/{sid}")
        assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg" and img.content == JPEG
        other = store.find("cam-other")[0].id
        assert c.get(f"/api/v1/incidents/{iid}/snapshots/{other}").status_code == 404
    with server.client() as c:
        assert c.get(f"/api/v1/incidents/{iid}/snapshots").status_code == 401


def test_elder_care_incident_images_only_for_personal_data_roles(srv: tuple[ApiServer, SnapshotStore]) -> None:
    server, _ = srv
    iid = server.raise_incident(
        trigger(
            "sos-r1|sos", "eldercare", "sos", "critical", grid="g1", building="b1", resident="r1", devices=["sos-r1"]
        )
    )
    with server.client(server.token("property_staff", name="ps2")) as c:
        assert c.get(f"/api/v1/incidents/{iid}/snapshots").status_code == 403
    with server.client(server.token("eldercare_worker", name="ec1")) as c:
        r = c.get(f"/api/v1/incidents/{iid}/snapshots")
        assert r.status_code == 200 and r.json() == {"items": []}
