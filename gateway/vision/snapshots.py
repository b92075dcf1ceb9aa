"""Local store of intrusion snapshots (JPEG files under a size quota, oldest removed first).

A snapshot id is ``<camera>-<ts_ms>-<zone>-<n>``; the file is ``<dir>/<id>.jpg`` with mode 0600
(it may show residents). The intrusion reading's ``meta.snapshot`` carries the id, and an
incident finds its snapshots by device and time: :meth:`SnapshotStore.for_incident` (the
incident's devices and first_ms..last_ms), so no incident schema change is needed.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

_ID_RE = re.compile(r"^([a-z0-9][a-z0-9_-]{0,63})-(\d{13})-([a-z0-9][a-z0-9_-]{0,63})-(\d+)$")


@dataclass(frozen=True)
class Snapshot:
    id: str
    camera: str
    zone: str
    ts_ms: int
    size: int
    path: Path


class SnapshotStore:
    def __init__(self, directory: str | Path, quota_bytes: int) -> None:
        self.dir = Path(directory)
        self.quota = quota_bytes
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._n = 0
        self._index: dict[str, Snapshot] = {}
        for p in self.dir.glob("*.jpg"):
            snap = self._parse(p)
            if snap is not None:
                self._index[snap.id] = snap
        self._total = sum(s.size for s in self._index.values())

    def _parse(self, p: Path) -> Snapshot | None:
        m = _ID_RE.match(p.stem)
        if m is None:
            return None
        try:
            size = p.stat().st_size
        except OSError:
            return None
        return Snapshot(p.stem, m.group(1), m.group(3), int(m.group(2)), size, p)

    def put(self, camera: str, zone: str, ts_ms: int, jpeg: bytes) -> str:
        """Store one JPEG; returns its id. Evicts the oldest snapshots beyond the quota."""
        if len(jpeg) > self.quota:
            raise ValueError("snapshot larger than the whole quota")
        with self._lock:
            self._n += 1
            sid = f"{camera}-{ts_ms:013d}-{zone}-{self._n}"
            path = self.dir / f"{sid}.jpg"
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, jpeg)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            self._index[sid] = Snapshot(sid, camera, zone, ts_ms, len(jpeg), path)
            self._total += len(jpeg)
            self._evict()
            return sid

    def _evict(self) -> None:
        if self._total <= self.quota:
            return
        for snap in sorted(self._index.values(), key=lambda s: (s.ts_ms, s.id)):
            if self._total <= self.quota:
                break
            try:
                snap.path.unlink()
            except FileNotFoundError:
                pass
            self._total -= snap.size
            del self._index[snap.id]

    @property
    def total_bytes(self) -> int:
        return self._total

    def get(self, snapshot_id: str) -> bytes | None:
        """The JPEG bytes, or None (unknown / evicted). Ids are validated: no path tricks."""
        if not _ID_RE.match(snapshot_id):
            return None
        with self._lock:
            snap = self._index.get(snapshot_id)
        if snap is None:
            return None
        try:
            return snap.path.read_bytes()
        except FileNotFoundError:
            return None

    def forget(self, ids: list[str]) -> None:
        """Drop files another component deleted (retention, resident forget; gateway/privacy.py)."""
        with self._lock:
            for sid in ids:
                snap = self._index.pop(sid, None)
                if snap is not None:
                    self._total -= snap.size

    def find(self, camera: str | None = None, from_ms: int = 0, to_ms: int = 2**62) -> list[Snapshot]:
        with self._lock:
            snaps = list(self._index.values())
        return sorted(
            (s for s in snaps if (camera is None or s.camera == camera) and from_ms <= s.ts_ms <= to_ms),
            key=lambda s: s.ts_ms,
        )

    def for_incident(self, cameras: list[str], first_ms: int, last_ms: int, slack_ms: int = 5000) -> list[Snapshot]:
        """Snapshots of these cameras taken while the incident was being triggered."""
        return [s for c in cameras for s in self.find(c, first_ms - slack_ms, last_ms + slack_ms)]
