"""``edge-gateway simulate`` against a broker it cannot reach ends within seconds, saying where and
why, with a non-zero exit; ``--duration`` holds even when the broker goes away mid-run (issue 23,
item 8). Every "broker" here is real and on loopback: a closed port, a listener whose accept queue
is full (SYNs dropped: the connect times out), a listener that accepts TCP but never speaks MQTT,
a name that cannot resolve, a Mosquitto refusing the login, a Mosquitto killed mid-run."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_config import load_config
from gateway.install.mosquitto import Mosquitto, free_port
from gateway.install.mqtt_reach import BrokerUnreachable
from gateway.install.simulator import Simulator
from tests.conftest import write_site
from tests.support import ROOT, service_missing

# Python start-up and loading the site file on a busy 2-core machine, on top of the wait itself.
SLACK_S = 12.0


def _simulate(site: Path, *args: str, timeout: float = 30) -> tuple[int, str, float]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "simulate", "--config", str(site), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stderr, time.monotonic() - t0


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return write_site(tmp_path, free_port())


@pytest.fixture
def full_listener() -> Iterator[int]:
    """A port whose accept queue is full: the kernel drops further SYNs, so connects time out."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=2)  # takes the one queue slot
    try:
        yield port
    finally:
        filler.close()
        srv.close()


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """TCP is accepted (by the kernel's queue) but nothing ever answers: no MQTT CONNACK."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    try:
        yield srv.getsockname()[1]
    finally:
        srv.close()


def test_closed_port_is_refused_at_once(site: Path) -> None:
    port = free_port()
    rc, err, took = _simulate(site, "--port", str(port), "--duration", "60")
    assert rc == 1, err
    assert f"cannot reach the MQTT broker at 127.0.0.1:{port}: connection refused" in err
    assert took < SLACK_S


def test_dropped_syns_time_out_after_the_connect_timeout(site: Path, full_listener: int) -> None:
    rc, err, took = _simulate(site, "--port", str(full_listener), "--connect-timeout", "2", "--duration", "60")
    assert rc == 1, err
    assert f"127.0.0.1:{full_listener}: timed out after 2.0 s" in err
    assert 2.0 <= took < 2.0 + SLACK_S


def test_a_listener_that_never_speaks_mqtt(site: Path, silent_listener: int) -> None:
    rc, err, took = _simulate(site, "--port", str(silent_listener), "--connect-timeout", "2")
    assert rc == 1, err
    assert f"127.0.0.1:{silent_listener}: TCP connected but no MQTT answer (CONNACK) within 2.0 s" in err
    assert 2.0 <= took < 2.0 + SLACK_S


def test_a_name_that_cannot_resolve(site: Path) -> None:
    # Spaces make it an invalid host name: the C library refuses it without asking a DNS server.
    rc, err, took = _simulate(site, "--host", "no such host", "--connect-timeout", "3")
    assert rc == 1, err
    assert "cannot reach the MQTT broker at no such host:" in err and "DNS: the name does not resolve" in err
    assert took < SLACK_S


def test_duration_shorter_than_the_connect_timeout_is_kept(site: Path, full_listener: int) -> None:
    rc, err, took = _simulate(site, "--port", str(full_listener), "--connect-timeout", "30", "--duration", "1.5")
    assert rc == 1, err
    assert "timed out after 1.5 s" in err
    assert took < 1.5 + SLACK_S


def test_a_refused_login_names_the_reason(tmp_path: Path) -> None:
    try:
        broker = Mosquitto(tmp_path / "broker", recommended=False, extra="allow_anonymous false\n").start()
    except RuntimeError as exc:
        service_missing(f"mosquitto ({exc})")
        raise
    try:
        rc, err, took = _simulate(write_site(tmp_path, broker.port), "--connect-timeout", "5")
    finally:
        broker.stop()
    assert rc == 1, err
    assert f"127.0.0.1:{broker.port}: the broker refused the connection: Not authorized" in err
    assert took < SLACK_S


def test_duration_holds_when_the_broker_dies_mid_run(tmp_path: Path) -> None:
    """Connected first, then the broker is killed: publish() used to wait for it forever."""
    try:
        broker = Mosquitto(tmp_path / "broker", recommended=False).start()
    except RuntimeError as exc:
        service_missing(f"mosquitto ({exc})")
        raise
    cfg = load_config(write_site(tmp_path, broker.port))
    sim = Simulator(cfg, "127.0.0.1", broker.port, rate=50, client_id="edge-sim-dies")
    done = threading.Event()
    threading.Timer(1.0, lambda: broker.stop(kill=True)).start()
    t0 = time.monotonic()
    threading.Thread(target=lambda: (sim.run(4.0), done.set()), daemon=True).start()
    try:
        assert done.wait(4.0 + 6.0), "the simulator outlived its duration after the broker died"
    finally:
        sim.stop()
        broker.stop()
    assert 4.0 <= time.monotonic() - t0 < 10.0
    assert sim.stats.acked > 0  # it did publish while the broker was there


def test_run_raises_and_a_started_simulator_keeps_the_reason(tmp_path: Path) -> None:
    """run() raises with host and port; start() (the demo runs the simulator in a thread) keeps the
    error on the simulator and logs it instead of dying with a traceback."""
    port = free_port()
    cfg = load_config(write_site(tmp_path, port))
    sim = Simulator(cfg, "127.0.0.1", port, connect_timeout_s=2)
    t0 = time.monotonic()
    with pytest.raises(BrokerUnreachable) as info:
        sim.run(30)
    assert (info.value.host, info.value.port, info.value.code) == ("127.0.0.1", port, "broker_unreachable")
    assert time.monotonic() - t0 < 3
    started = Simulator(cfg, "127.0.0.1", port, connect_timeout_s=1).start(30)
    started.wait(10)
    assert isinstance(started.error, BrokerUnreachable) and "connection refused" in started.error.reason
