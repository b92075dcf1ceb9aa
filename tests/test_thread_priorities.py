"""Bulk threads yield the CPU to the life-safety path: the telemetry session's network thread runs
at a lower priority (a higher nice value) than the life-safety session's and the pipeline, which
keep the process's own; a thread only ever lowers itself."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from edge_config import load_config
from gateway.app import Gateway
from gateway.core.threadprio import BULK_NICE, yield_to_life_safety
from gateway.install.mosquitto import Mosquitto
from tests.conftest import MINI_DEVICES, write_site
from tests.support import wait_until


def nice_of(thread: threading.Thread) -> int:
    assert thread.native_id is not None
    return os.getpriority(os.PRIO_PROCESS, thread.native_id)


def test_the_telemetry_network_thread_yields_and_the_life_safety_path_does_not(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)
    gw = Gateway(load_config(write_site(tmp_path, private_broker.port, devices=MINI_DEVICES)))
    gw.start()
    try:
        assert wait_until(lambda: gw.broker_connected, 10)
        by_name = {t.name: t for t in threading.enumerate()}
        telemetry = [t for n, t in by_name.items() if n.startswith("paho-mqtt-client-") and n.endswith("-telemetry")]
        safety = [t for n, t in by_name.items() if n.startswith("paho-mqtt-client-") and n.endswith("-safety")]
        assert len(telemetry) == 1 and len(safety) == 1, sorted(by_name)
        assert wait_until(lambda: nice_of(telemetry[0]) == max(own, BULK_NICE), 5)
        assert nice_of(safety[0]) == own
        assert nice_of(by_name["pipeline"]) == own
    finally:
        gw.stop()


def test_a_thread_lowers_itself_only() -> None:
    seen: dict[str, object] = {}

    def bulk() -> None:
        seen["ok"] = yield_to_life_safety()
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        seen["again"] = yield_to_life_safety(BULK_NICE - 5)  # never raises its priority back
        seen["after"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    t = threading.Thread(target=bulk)
    t.start()
    t.join(5)
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert seen == {"ok": True, "nice": max(own, BULK_NICE), "again": True, "after": max(own, BULK_NICE)}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own  # the caller's own is untouched
