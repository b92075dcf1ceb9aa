"""Where a running gateway's memory is: ``python bench/_memprobe.py run ...`` runs ``gateway`` with a
thread that writes one JSON line per ``MEMPROBE_S`` seconds (default 1) to ``MEMPROBE_OUT``.

Used through bench/pi_budget.py's ``PI_BUDGET_GATEWAY`` (the gateway's command line)::

    MEMPROBE_OUT=/tmp/mem.jsonl PI_BUDGET_GATEWAY="$PWD/.venv/bin/python bench/_memprobe.py" \\
        .venv/bin/python bench/pi_budget.py --outage-s 900

Each line: the process's RSS split as /proc/PID/smaps_rollup splits it (anonymous, file-backed),
its threads, SQLite's own allocator figures (``sqlite3_status64``: memory in use now and its high
water, page-cache overflow), glibc's (``mallinfo2``: heap bytes in use and free, mmapped bytes, all
arenas), the number of blocks Python's allocator holds, the SQLite connections open on the store
(file descriptors of ``*.db``), the pipeline's queues (messages received and not yet taken, per
session), and with ``MEMPROBE_TRACEMALLOC=1`` the Python heap traced by tracemalloc (its top
allocation sites written at each new high; tracemalloc more than doubles the heap, so inside the
bench's 256 MB group it may be killed: run it on a shorter outage). Not part of the product.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (n, ctypes.c_size_t)
        for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def _libs() -> tuple[ctypes.CDLL | None, ctypes.CDLL | None]:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
    except (OSError, AttributeError):
        libc = None
    try:
        lite = ctypes.CDLL("libsqlite3.so.0")  # the one _sqlite3 links (ldd), so the same counters
        lite.sqlite3_status64.argtypes = [
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_int64),
            ctypes.POINTER(ctypes.c_int64),
            ctypes.c_int,
        ]
    except (OSError, AttributeError):
        lite = None
    return libc, lite


def _status(lite: ctypes.CDLL, op: int) -> tuple[int, int]:
    cur, hi = ctypes.c_int64(), ctypes.c_int64()
    lite.sqlite3_status64(op, ctypes.byref(cur), ctypes.byref(hi), 0)
    return cur.value, hi.value


def _rollup() -> dict[str, int]:
    out: dict[str, int] = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    return out


_seen: list[object] = []  # the gateway's Pipeline


def _db_fds() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}").endswith(".db")
        except OSError:
            pass
    return n


def _probe(path: str, every: float, trace: bool) -> None:
    libc, lite = _libs()
    mb = 1 / 1024
    best = 0.0
    with open(path, "a", buffering=1) as out:
        while True:
            r = _rollup()
            rec: dict[str, object] = {
                "t": round(time.time(), 2),
                "pid": os.getpid(),
                "rss": round(r.get("Rss", 0) * mb, 1),
                "anon": round(r.get("Anonymous", 0) * mb, 1),
                "file": round((r.get("Rss", 0) - r.get("Anonymous", 0)) * mb, 1),
                "threads": threading.active_count(),
                "os_threads": len(os.listdir("/proc/self/task")),
                "py_blocks": sys.getallocatedblocks(),
            }
            if lite is not None:
                used, used_hi = _status(lite, 0)  # SQLITE_STATUS_MEMORY_USED
                ovf, ovf_hi = _status(lite, 2)  # SQLITE_STATUS_PAGECACHE_OVERFLOW
                rec |= {"sqlite": round(used / 2**20, 1), "sqlite_hi": round(used_hi / 2**20, 1)}
                rec |= {"sqlite_pc": round(ovf / 2**20, 1), "sqlite_pc_hi": round(ovf_hi / 2**20, 1)}
            if libc is not None:
                m = libc.mallinfo2()
                rec |= {
                    "malloc_used": round(m.uordblks / 2**20, 1),
                    "malloc_free": round(m.fordblks / 2**20, 1),
                    "malloc_mmap": round(m.hblkhd / 2**20, 1),
                    "malloc_heap": round(m.arena / 2**20, 1),
                }
            if trace:
                import tracemalloc

                cur, hi = tracemalloc.get_traced_memory()
                rec |= {"py_traced": round(cur / 2**20, 1), "py_traced_hi": round(hi / 2**20, 1)}
            rec["db_connections"] = _db_fds()
            if _seen:
                pl = _seen[-1]
                rec["queued"] = int(pl.backlog)  # type: ignore[attr-defined]
                rec["q_safety"] = pl._q_safety.qsize()  # type: ignore[attr-defined]
                rec["q_tele"] = pl._q_tele.qsize()  # type: ignore[attr-defined]
            out.write(json.dumps(rec) + "\n")
            if trace and float(rec["rss"]) > best + 5:  # type: ignore[arg-type]
                best = float(rec["rss"])  # type: ignore[arg-type]
                import tracemalloc

                snap = tracemalloc.take_snapshot()
                top = [f"{s.size / 2**20:.2f} MB {s.count} {s.traceback}" for s in snap.statistics("lineno")[:25]]
                out.write(json.dumps({"t": rec["t"], "top": top}) + "\n")
            time.sleep(every)


def main() -> int:
    path = os.environ.get("MEMPROBE_OUT", f"/tmp/memprobe-{os.getpid()}.jsonl")
    trace = os.environ.get("MEMPROBE_TRACEMALLOC") == "1"
    if trace:
        import tracemalloc

        tracemalloc.start(1)
    t = threading.Thread(
        target=_probe,
        args=(path, float(os.environ.get("MEMPROBE_S", "1")), trace),
        name="memprobe",
        daemon=True,
    )
    t.start()
    from gateway.cli import main as gateway_main
    from gateway.ingest.pipeline import Pipeline

    init = Pipeline.__init__

    def remember(self: Pipeline, *a: object, **k: object) -> None:
        init(self, *a, **k)  # type: ignore[arg-type]
        _seen.append(self)  # its backlog: messages received and not committed yet

    Pipeline.__init__ = remember  # type: ignore[method-assign]

    sys.argv = ["edge-gateway", *sys.argv[1:]]
    return int(gateway_main() or 0)


if __name__ == "__main__":
    raise SystemExit(main())
