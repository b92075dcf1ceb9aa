"""systemd integration without dependencies: sd_notify over $NOTIFY_SOCKET, the watchdog, log files.

deploy/edge-gateway.service runs ``edge-gateway run`` with ``Type=notify`` and ``WatchdogSec=30``:

- ``READY=1`` once the broker is connected and the store is writable (``systemctl start`` returns
  then, and units ordered after the gateway start only then);
- ``WATCHDOG=1`` every ``WatchdogSec/2`` **only while healthy**: the pipeline (writer) thread is
  alive and has run its periodic tick recently. A stuck writer stops the pings and systemd
  restarts the service (``Restart=on-failure``); a broker outage does not (the gateway reconnects
  by itself, and the broker keeps the messages);
- ``STOPPING=1`` when the gateway shuts down.

Without ``NOTIFY_SOCKET`` (not under systemd) everything here is a no-op.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger("gateway.install.systemd")


def _address(raw: str) -> str:
    return "\0" + raw[1:] if raw.startswith("@") else raw  # '@' = Linux abstract namespace


def notify(message: str, address: str | None = None) -> bool:
    """Send one sd_notify datagram. False when not under systemd or the socket is gone."""
    raw = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
    if not raw:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(_address(raw))
            s.sendall(message.encode())
        return True
    except OSError as exc:
        log.debug("sd_notify failed: %s", exc)
        return False


def watchdog_interval_s(env: dict[str, str] | None = None) -> float | None:
    """Half of systemd's WatchdogSec (``WATCHDOG_USEC``), or None when no watchdog is set for us."""
    e = os.environ if env is None else env
    usec = e.get("WATCHDOG_USEC")
    pid = e.get("WATCHDOG_PID")
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    try:
        return max(0.05, int(usec) / 1e6 / 2)
    except ValueError:
        return None


def pipeline_healthy(gw: Gateway, max_age_s: float = 10.0) -> tuple[bool, str]:
    """The writer thread is alive and ticked (it ticks about once a second) within ``max_age_s``."""
    p = gw.pipeline
    thread = getattr(p, "_thread", None)
    if thread is None or not thread.is_alive():
        return False, "pipeline thread not running"
    next_tick = float(getattr(p, "_next_tick", 0.0))
    age = time.monotonic() - (next_tick - 1.0)
    if age > max_age_s:
        return False, f"pipeline has not ticked for {age:.0f} s"
    return True, "ok"


def ready(gw: Gateway) -> bool:
    h = gw.health()
    return bool(h.get("broker_connected")) and bool(h.get("store_writable"))


class Supervisor:
    """READY / WATCHDOG / STOPPING for a running :class:`gateway.app.Gateway`."""

    def __init__(
        self,
        gw: Gateway,
        *,
        address: str | None = None,
        interval_s: float | None = None,
        max_age_s: float | None = None,
    ) -> None:
        self.gw = gw
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self.interval_s = interval_s if interval_s is not None else watchdog_interval_s()
        # A tick older than the whole watchdog period means the writer is stuck.
        self.max_age_s = max_age_s if max_age_s is not None else max(5.0, 2 * (self.interval_s or 5.0))
        self.is_ready = False
        self.pings = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def start(self) -> Supervisor:
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="sd-notify", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        step = min(1.0, self.interval_s or 1.0)
        next_ping = 0.0
        while not self._stop.wait(0 if not self.is_ready else step):
            if not self.is_ready:
                if ready(self.gw):
                    self.is_ready = notify("READY=1\nSTATUS=receiving", self.address)
                else:
                    self._stop.wait(0.2)
                    continue
            if self.interval_s is None:
                continue
            now = time.monotonic()
            if now < next_ping:
                continue
            ok, why = pipeline_healthy(self.gw, self.max_age_s)
            if ok:
                if notify("WATCHDOG=1", self.address):
                    self.pings += 1
                next_ping = now + self.interval_s
            else:
                log.error("not pinging the systemd watchdog: %s", why)
                notify(f"STATUS=unhealthy: {why}", self.address)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.enabled:
            notify("STOPPING=1", self.address)


def add_log_file(path: str | Path, max_mb: float = 10.0, backups: int = 5) -> logging.Handler:
    """Log to ``path`` too, rotated by size (for installs without journald; see docs/installer.md)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    h = logging.handlers.RotatingFileHandler(
        p, maxBytes=int(max_mb * 1024 * 1024), backupCount=backups, encoding="utf-8"
    )
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(h)
    return h
