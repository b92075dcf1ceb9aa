"""Writer-thread CPU per message with the rule engine on vs off (in-process, no broker).

    .venv/bin/python bench/rules_cpu.py [--n 20000] [--warm 5000] [--per 1,20] [--modes rules,norules]

Feeds mixed telemetry from the ~1,000-device bench site (Zigbee2MQTT door contacts, ChirpStack
parking sensors, native access controllers) through ``Pipeline.run_once(flush=True)`` with the
acker replaced, ``per`` messages per commit, and measures the thread's CPU time (``thread_time``:
robust on a shared, noisy machine). Each mode runs in its own subprocess (fresh store).

Prints one line per (mode, per): ``RESULT mode=... per=... us_per_msg=... wall_us_per_msg=...
rule_engine_us_per_msg=...`` (the last: CPU inside RuleEngine.process/tick only).
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._wait import BenchFailed  # noqa: E402


def one(mode: str, per: int, n: int, warm: int, seed: int) -> None:
    import gateway.rules.engine as eng
    from bench._site import write_bench_site
    from edge_config import load_config
    from gateway.app import Gateway
    from gateway.ingest.mqtt import Inbound
    from gateway.install import traffic

    spent = [0]
    if mode == "norules":
        eng.RuleEngine.process = lambda *a, **k: None  # type: ignore[method-assign]
        eng.RuleEngine.tick = lambda *a, **k: None  # type: ignore[method-assign]
    else:
        for name in ("process", "tick"):
            orig = getattr(eng.RuleEngine, name)

            def timed(self: Any, *a: Any, _orig: Any = orig) -> None:
                t0 = time.thread_time_ns()
                try:
                    _orig(self, *a)
                finally:
                    spent[0] += time.thread_time_ns() - t0

            setattr(eng.RuleEngine, name, timed)
    work = Path(tempfile.mkdtemp())
    cfg = load_config(write_bench_site(work, 1))
    gw = Gateway(cfg)
    p = gw.pipeline
    p.acker = lambda s, items: None
    devs = traffic.sim_devices(cfg)
    rng = random.Random(seed)
    msgs = []
    for _ in range(warm + n):
        t, pl = traffic.telemetry(rng.choice(devs), rng)
        msgs.append((t, pl))

    def feed(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            t, pl = msgs[i]
            p.submit(Inbound(0, 0, i % 60000 + 1, 1, t, pl, False, False, int(time.time() * 1000), time.monotonic_ns()))
            if (i - lo) % per == per - 1:
                p.run_once(flush=True)
        p.run_once(flush=True)

    feed(0, warm)
    spent[0] = 0
    c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
    feed(warm, warm + n)
    c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
    print(
        f"RESULT mode={mode} per={per} n={n} us_per_msg={(c1 - c0) / n / 1000:.1f}"
        f" wall_us_per_msg={(w1 - w0) / n / 1000:.1f} rule_engine_us_per_msg={spent[0] / n / 1000:.1f}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--warm", type=int, default=5000)
    ap.add_argument("--per", default="1,20")
    ap.add_argument("--modes", default="rules,norules")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--one", nargs=2, metavar=("MODE", "PER"))
    ap.add_argument("--limit", type=float, default=300.0, help="seconds each mode may take (~20 s at the defaults)")
    a = ap.parse_args()
    if a.one:
        one(a.one[0], int(a.one[1]), a.n, a.warm, a.seed)
        return
    for per in (int(x) for x in a.per.split(",")):
        for mode in a.modes.split(","):
            cmd = [sys.executable, __file__, "--one", mode, str(per), "--n", str(a.n), "--warm", str(a.warm)]
            try:
                subprocess.run([*cmd, "--seed", str(a.seed)], check=True, timeout=a.limit)
            except subprocess.TimeoutExpired:
                raise BenchFailed(f"no RESULT for mode={mode} per={per} within {a.limit:.0f} s") from None
            except subprocess.CalledProcessError as exc:
                raise BenchFailed(
                    f"mode={mode} per={per} exited with code {exc.returncode} (its error is above)"
                ) from None


if __name__ == "__main__":
    main()
