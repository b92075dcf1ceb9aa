"""Bytes written per message at N messages per commit, with and without the rule engine.

    .venv/bin/python bench/wear_probe.py rules|norules N

Feeds bench-site telemetry straight into Pipeline.run_once(flush=True) every N messages (no
broker) and reads /proc/self/io write_bytes: what one commit size costs the SD card.
"""

import random
import sys
import tempfile
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from pathlib import Path

import gateway.rules.engine as eng
from bench._site import write_bench_site
from bench.ingest import io_write_bytes
from edge_config import load_config
from gateway.app import Gateway
from gateway.ingest.mqtt import Inbound
from gateway.install import traffic

if sys.argv[1] == "norules":
    eng.RuleEngine.process = lambda *a, **k: None
    eng.RuleEngine.tick = lambda *a, **k: None
work = Path(tempfile.mkdtemp())
site = write_bench_site(work, 1)
cfg = load_config(site)
gw = Gateway(cfg)
p = gw.pipeline
p.acker = lambda s, items: None
devs = traffic.sim_devices(cfg)
rng = random.Random(1)
# warm
for i in range(200):
    t, pl = traffic.telemetry(rng.choice(devs), rng)
    p.submit(Inbound(0, 0, i % 60000 + 1, 1, t, pl, False, False, int(time.time() * 1000), time.monotonic_ns()))
    p.run_once(flush=True)
conn = p.conn
conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
io0 = io_write_bytes()
N = 500
per = int(sys.argv[2])
for i in range(N):
    t, pl = traffic.telemetry(rng.choice(devs), rng)
    p.submit(Inbound(0, 0, i % 60000 + 1, 1, t, pl, False, False, int(time.time() * 1000), time.monotonic_ns()))
    if i % per == per - 1:
        p.run_once(flush=True)
p._next_tick = 0
p.run_once(flush=True)
print(sys.argv[1], "msgs/commit", per, "bytes/msg", (io_write_bytes() - io0) / N)
