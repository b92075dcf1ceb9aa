"""Start a private Mosquitto from the recommended config (tests, benchmarks, the demo).

The recommended file lives in deploy/mosquitto.conf; here it is only re-pointed at a free
loopback port and a temporary persistence folder, so what is tested is what installers deploy.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

RECOMMENDED_CONF = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto.conf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def recommended_conf(port: int, data_dir: Path, extra: str = "", *, source: Path = RECOMMENDED_CONF) -> str:
    text = source.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^listener .*$", f"listener {port} 127.0.0.1", text)
    text = re.sub(r"(?m)^persistence_location .*$", f"persistence_location {data_dir}/", text)
    return text + "\n" + extra


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Mosquitto:
    """A mosquitto process on a loopback port; restartable with the same persistence folder."""

    def __init__(self, workdir: Path, *, port: int | None = None, extra: str = "", recommended: bool = True) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.exe = exe
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.conf = self.workdir / "mosquitto.conf"
        if recommended:
            body = recommended_conf(self.port, self.workdir, extra)
        else:
            body = f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{extra}\n"
        if os.geteuid() == 0:
            # As root, mosquitto drops to its own user, which cannot enter a test's private temp
            # folder; a throw-away broker may keep root instead.
            body += "\nuser root\n"
        self.conf.write_text(body, encoding="utf-8")
        self.log = self.workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        logf = open(self.log, "ab")  # noqa: SIM115 - handed to the child process
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        if not wait_port(self.port):
            self.stop()
            raise RuntimeError(f"mosquitto did not start on port {self.port}: {self.log.read_text()[-2000:]}")
        return self

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
