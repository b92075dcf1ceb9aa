"""sd_notify over a real unix datagram socket: READY once connected and writable, WATCHDOG only while
the pipeline ticks, STOPPING on shutdown (issue 8)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from gateway.install import systemd


class _FakeGw:
    def __init__(self) -> None:
        self.connected = False
        alive = threading.Thread(target=time.sleep, args=(30,), daemon=True)
        alive.start()
        self.pipeline = SimpleNamespace(_thread=alive, _next_tick=time.monotonic() + 1.0)

    def health(self) -> dict[str, object]:
        return {"broker_connected": self.connected, "store_writable": True}


def _recv_all(sock: socket.socket, seconds: float) -> list[str]:
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            out.append(sock.recv(4096).decode())
        except TimeoutError:
            break
    return out


def test_ready_watchdog_stopping(tmp_path: Path) -> None:
    addr = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(addr)
    gw = _FakeGw()
    sup = systemd.Supervisor(gw, address=addr, interval_s=0.1, max_age_s=1.0).start()
    try:
        assert _recv_all(sock, 0.5) == []  # not ready: broker not connected
        gw.connected = True

        def ticking() -> None:
            while not stop_tick.is_set():
                gw.pipeline._next_tick = time.monotonic() + 1.0
                time.sleep(0.05)

        stop_tick = threading.Event()
        threading.Thread(target=ticking, daemon=True).start()
        msgs = _recv_all(sock, 1.0)
        assert msgs[0].startswith("READY=1")
        assert msgs.count("WATCHDOG=1") >= 3
        stop_tick.set()  # the writer stops ticking: no more pings once the tick is older than max_age_s
        time.sleep(1.5)
        _recv_all(sock, 0.05)
        later = _recv_all(sock, 0.6)
        assert "WATCHDOG=1" not in later and any(m.startswith("STATUS=unhealthy") for m in later), later
    finally:
        sup.stop()
    assert "STOPPING=1" in _recv_all(sock, 0.5)
    sock.close()


def test_not_under_systemd_is_a_noop(monkeypatch: object) -> None:
    assert systemd.notify("READY=1", address="") is False
    assert systemd.watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert systemd.watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert not systemd.Supervisor(_FakeGw(), address="").start().enabled


def test_abstract_socket_address() -> None:
    name = f"@edge-test-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name[1:])
    try:
        assert systemd.notify("READY=1", address=name)
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()
