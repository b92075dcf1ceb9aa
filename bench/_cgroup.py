"""A control group that caps one process tree's CPU and memory (bench/pi_budget.py).

Two layouts exist and the machine has one of them:
- cgroup v2 (unified): one directory per group with ``cpu.max`` ("quota period") and
  ``memory.max``; the cpu and memory controllers must be enabled in the parent's
  ``cgroup.subtree_control``.
- cgroup v1: one hierarchy per controller, ``/sys/fs/cgroup/cpu/<g>/cpu.cfs_period_us`` and
  ``cpu.cfs_quota_us``, ``/sys/fs/cgroup/memory/<g>/memory.limit_in_bytes``; the process joins
  both by writing its pid to each group's ``cgroup.procs``.

A machine with cgroup2 mounted but no controllers delegated to it (a hybrid layout, as on this
project's development machine) is treated as v1. Neither usable: :class:`CgroupUnavailable`,
whose message says what was tried and why it failed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


class CgroupUnavailable(RuntimeError):
    """No control group with a CPU quota and a memory limit can be created here."""


@dataclass
class Budget:
    """A created group; ``enter()`` (in the child before exec) moves the calling process into it."""

    version: int
    dirs: list[Path]  # v2: [group]; v1: [cpu group, memory group]
    cpu_period_us: int
    cpu_quota_us: int
    memory_bytes: int
    notes: list[str] = field(default_factory=list)

    @property
    def cpu_share(self) -> float:
        return self.cpu_quota_us / self.cpu_period_us

    def enter(self, pid: int | None = None) -> None:
        """Move ``pid`` (default: this process) into the group; its children stay in it."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(pid or os.getpid()))

    def set_cpu_quota(self, quota_us: int | None) -> None:
        """Change the CPU quota; None removes it (the memory limit stays)."""
        if self.version == 2:
            value = "max" if quota_us is None else str(quota_us)
            (self.dirs[0] / "cpu.max").write_text(f"{value} {self.cpu_period_us}")
        else:
            (self.dirs[0] / "cpu.cfs_quota_us").write_text(str(-1 if quota_us is None else quota_us))

    def oom_kills(self) -> int:
        """Processes the kernel killed in this group for exceeding the memory limit."""
        f = self.dirs[0] / "memory.events" if self.version == 2 else self.dirs[1] / "memory.oom_control"
        for line in f.read_text().splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill":
                return int(v)
        return 0

    def memory_peak_bytes(self) -> int | None:
        """The group's peak memory charge (RSS + page cache the kernel charged to it)."""
        f = self.dirs[0] / "memory.peak" if self.version == 2 else self.dirs[1] / "memory.max_usage_in_bytes"
        try:
            return int(f.read_text().split()[0])
        except (OSError, ValueError):
            return None

    def throttled_s(self) -> float:
        """Time the group spent throttled by the CPU quota so far."""
        if self.version == 2:
            f, key, scale = self.dirs[0] / "cpu.stat", "throttled_usec", 1e6
        else:
            f, key, scale = self.dirs[0] / "cpu.stat", "throttled_time", 1e9
        for line in f.read_text().splitlines():
            k, _, v = line.partition(" ")
            if k == key:
                return int(v) / scale
        return 0.0

    def remove(self) -> None:
        """Delete the group (its processes must have ended; any left are moved out first)."""
        for d in self.dirs:
            parent = d.parent
            try:
                for pid in (d / "cgroup.procs").read_text().split():
                    (parent / "cgroup.procs").write_text(pid)
                d.rmdir()
            except OSError:
                pass


def _v2_usable(root: Path) -> bool:
    controllers = root / "cgroup.controllers"
    return controllers.exists() and {"cpu", "memory"} <= set(controllers.read_text().split())


def create(name: str, *, cpu_quota_us: int, cpu_period_us: int, memory_bytes: int, root: Path = ROOT) -> Budget:
    """Create group ``name`` with the quota and the memory limit, v2 if usable, else v1."""
    tried: list[str] = []
    if _v2_usable(root):
        try:
            return _create_v2(root, name, cpu_quota_us, cpu_period_us, memory_bytes)
        except OSError as exc:
            tried.append(f"cgroup v2 at {root}: {exc}")
    else:
        tried.append(f"cgroup v2: {root}/cgroup.controllers lacks cpu and memory (no unified hierarchy with them)")
    cpu, mem = root / "cpu", root / "memory"
    if (cpu / "cpu.cfs_quota_us").exists() and (mem / "memory.limit_in_bytes").exists():
        try:
            return _create_v1(cpu, mem, name, cpu_quota_us, cpu_period_us, memory_bytes)
        except OSError as exc:
            tried.append(f"cgroup v1 at {cpu} and {mem}: {exc}")
    else:
        tried.append(f"cgroup v1: no {cpu}/cpu.cfs_quota_us or {mem}/memory.limit_in_bytes")
    raise CgroupUnavailable(
        "cannot create a control group with a CPU quota and a memory limit ("
        + "; ".join(tried)
        + "). The bench needs root and either cgroup v2 with the cpu and memory controllers or the v1 cpu "
        "and memory hierarchies mounted under /sys/fs/cgroup (see `mount | grep cgroup`)."
    )


def _create_v2(root: Path, name: str, quota: int, period: int, memory: int) -> Budget:
    sub = root / "cgroup.subtree_control"
    enabled = set(sub.read_text().split())
    missing = {"cpu", "memory"} - enabled
    if missing:
        sub.write_text(" ".join(f"+{c}" for c in sorted(missing)))
    d = root / name
    d.mkdir(exist_ok=True)
    (d / "cpu.max").write_text(f"{quota} {period}")
    (d / "memory.max").write_text(str(memory))
    notes = []
    swap = d / "memory.swap.max"
    if swap.exists():
        swap.write_text("0")  # the limit means memory, not memory + swap
        notes.append("memory.swap.max 0")
    return Budget(2, [d], period, quota, memory, notes)


def _create_v1(cpu: Path, mem: Path, name: str, quota: int, period: int, memory: int) -> Budget:
    c, m = cpu / name, mem / name
    c.mkdir(exist_ok=True)
    m.mkdir(exist_ok=True)
    (c / "cpu.cfs_period_us").write_text(str(period))
    (c / "cpu.cfs_quota_us").write_text(str(quota))
    (m / "memory.limit_in_bytes").write_text(str(memory))
    notes = []
    memsw = m / "memory.memsw.limit_in_bytes"
    if memsw.exists():  # only with swap accounting; then swap must not extend the limit either
        memsw.write_text(str(memory))
        notes.append("memory.memsw.limit_in_bytes = the limit")
    return Budget(1, [c, m], period, quota, memory, notes)
