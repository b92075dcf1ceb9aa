"""Helpers shared by the tests: real brokers, a tracked publisher, a gateway subprocess."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def service_missing(what: str) -> None:
    """A missing service fails under CI=true (a broken install must not pass) and skips locally."""
    if IN_CI:
        pytest.fail(f"{what} is not available, and CI must have it (.ci/run installs and starts it)")
    pytest.skip(f"{what} is not available")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_until(pred: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


class TrackedPublisher:
    """Publishes QoS 1 and records which messages the broker acknowledged (PUBACK).

    On a disconnect the client is thrown away with its unacknowledged messages ("abandoned"),
    never retried: the broker may or may not have them, so they may be stored zero or one time.
    Everything acknowledged must be stored exactly once.
    """

    def __init__(self, host: str, port: int, client_id: str = "test-publisher") -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self.acked: Counter[tuple[str, bytes]] = Counter()
        self.abandoned: Counter[tuple[str, bytes]] = Counter()
        self._pending: dict[int, tuple[str, bytes]] = {}
        self._early: dict[int, bool] = {}
        self._lock = threading.Lock()
        self._client: paho.Client | None = None
        self._connected = threading.Event()

    def _new_client(self) -> None:
        with self._lock:
            self.abandoned.update(self._pending.values())
            self._pending.clear()
        if self._client is not None:
            self._client.loop_stop()
        self._connected.clear()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True)
        c.max_inflight_messages_set(100)
        c.max_queued_messages_set(0)
        c.on_connect = lambda *a: self._connected.set()
        c.on_disconnect = lambda *a: self._connected.clear()
        c.on_publish = self._on_publish
        self._client = c
        c.connect_async(self.host, self.port, 30)
        c.loop_start()

    def _on_publish(self, client: object, userdata: object, mid: int, reason: object, props: object) -> None:
        ok = not getattr(reason, "is_failure", False)
        with self._lock:
            msg = self._pending.pop(mid, None)
            if msg is None:
                self._early[mid] = ok  # PUBACK raced ahead of our bookkeeping
            elif ok:
                self.acked[msg] += 1

    def publish_all(
        self,
        messages: Iterable[tuple[str, bytes]],
        *,
        pace: float = 0.0,
        on_progress: Callable[[int], None] | None = None,
        timeout: float = 120,
    ) -> None:
        self._new_client()
        deadline = time.monotonic() + timeout
        for n, (topic, payload) in enumerate(messages):
            while True:
                if time.monotonic() > deadline:
                    raise TimeoutError("publisher could not finish")
                if not self._connected.wait(0.2):
                    if self._client is not None and not self._client.is_connected():
                        # Broker gone: abandon the unacknowledged, start a fresh client.
                        self._new_client()
                        self._connected.wait(0.5)
                    continue
                assert self._client is not None
                # Never hold our lock across publish(): paho's network thread may be inside
                # on_publish waiting for it while holding paho's own lock.
                info = self._client.publish(topic, payload, qos=1)
                if info.rc == paho.MQTT_ERR_SUCCESS:
                    with self._lock:
                        early = self._early.pop(info.mid, None)
                        if early is None:
                            self._pending[info.mid] = (topic, payload)
                        elif early:
                            self.acked[(topic, payload)] += 1
                    break
                time.sleep(0.001)
            if on_progress is not None:
                on_progress(n)
            if pace:
                time.sleep(pace)
        # wait for the last PUBACKs
        wait_until(lambda: not self._pending, 30)

    def close(self) -> None:
        with self._lock:
            self.abandoned.update(self._pending.values())
            self._pending.clear()
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()


def stored_messages(db: Path) -> Counter[tuple[str, str]]:
    """(device_id, vals JSON) of every stored reading."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return Counter(conn.execute("SELECT device_id, vals FROM readings WHERE kind != 'bridge'").fetchall())
    finally:
        conn.close()


def count_readings(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


class GatewayProcess:
    """`python -m gateway run` as a real subprocess (so it can be killed with SIGKILL)."""

    def __init__(self, config: Path, store: Path, workdir: Path, api_port: int) -> None:
        self.config, self.store, self.workdir, self.api_port = config, store, workdir, api_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "gateway.log"

    def start(self) -> GatewayProcess:
        logf = open(self.log, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "run",
                "--config",
                str(self.config),
                "--store",
                str(self.store),
                "--api-port",
                str(self.api_port),
            ],
            cwd=ROOT,
            stdout=logf,
            stderr=subprocess.STDOUT,
        )
        logf.close()
        proc = self.proc
        if not wait_until(lambda: port_open("127.0.0.1", self.api_port) or proc.poll() is not None, 30) or (
            proc.poll() is not None
        ):
            raise RuntimeError(f"gateway did not start: {self.log.read_text()[-3000:]}")
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
