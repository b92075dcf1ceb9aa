"""The Computer Language Benchmarks Game's n-body, Python program #1, for comparing CPython speed.

    .venv/bin/python bench/nbody.py 5000000

Published Raspberry Pi 4 timings use this program at 5,000,000 steps (README "Pi budget" says
which, and why a quarter of this machine's core stands in for a Pi 4). Prints the energy before
and after (-0.169075164, -0.169083134 at 5,000,000) and the CPU seconds taken.
"""

from __future__ import annotations

import sys
import time

PI = 3.14159265358979323
SOLAR_MASS = 4 * PI * PI
DAYS_PER_YEAR = 365.24
Body = tuple[list[float], list[float], float]


def _body(pos: list[float], vel: list[float], mass: float) -> Body:
    return (pos, [v * DAYS_PER_YEAR for v in vel], mass * SOLAR_MASS)


SYSTEM: list[Body] = [
    ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], SOLAR_MASS),
    _body(
        [4.84143144246472090e00, -1.16032004402742839e00, -1.03622044471123109e-01],
        [1.66007664274403694e-03, 7.69901118419740425e-03, -6.90460016972063023e-05],
        9.54791938424326609e-04,
    ),
    _body(
        [8.34336671824457987e00, 4.12479856412430479e00, -4.03523417114321381e-01],
        [-2.76742510726862411e-03, 4.99852801234917238e-03, 2.30417297573763929e-05],
        2.85885980666130812e-04,
    ),
    _body(
        [1.28943695621391310e01, -1.51111514016986312e01, -2.23307578892655734e-01],
        [2.96460137564761618e-03, 2.37847173959480950e-03, -2.96589568540237556e-05],
        4.36624404335156298e-05,
    ),
    _body(
        [1.53796971148509165e01, -2.59193146099879641e01, 1.79258772950371181e-01],
        [2.68067772490389322e-03, 1.62824170038242295e-03, -9.51592254519715870e-05],
        5.15138902046611451e-05,
    ),
]
PAIRS = [(SYSTEM[i], SYSTEM[j]) for i in range(len(SYSTEM) - 1) for j in range(i + 1, len(SYSTEM))]


def advance(dt: float, n: int) -> None:
    for _ in range(n):
        for ([x1, y1, z1], v1, m1), ([x2, y2, z2], v2, m2) in PAIRS:
            dx, dy, dz = x1 - x2, y1 - y2, z1 - z2
            mag = dt * ((dx * dx + dy * dy + dz * dz) ** (-1.5))
            b1m, b2m = m1 * mag, m2 * mag
            v1[0] -= dx * b2m
            v1[1] -= dy * b2m
            v1[2] -= dz * b2m
            v2[0] += dx * b1m
            v2[1] += dy * b1m
            v2[2] += dz * b1m
        for r, [vx, vy, vz], _m in SYSTEM:
            r[0] += dt * vx
            r[1] += dt * vy
            r[2] += dt * vz


def energy() -> float:
    e = 0.0
    for ((x1, y1, z1), _v1, m1), ((x2, y2, z2), _v2, m2) in PAIRS:
        dx, dy, dz = x1 - x2, y1 - y2, z1 - z2
        e -= (m1 * m2) / ((dx * dx + dy * dy + dz * dz) ** 0.5)
    for _r, [vx, vy, vz], m in SYSTEM:
        e += m * (vx * vx + vy * vy + vz * vz) / 2.0
    return e


def offset_momentum() -> None:
    px = py = pz = 0.0
    for _r, [vx, vy, vz], m in SYSTEM:
        px -= vx * m
        py -= vy * m
        pz -= vz * m
    v, m = SYSTEM[0][1], SYSTEM[0][2]
    v[0], v[1], v[2] = px / m, py / m, pz / m


if __name__ == "__main__":
    t = time.process_time()
    offset_momentum()
    print(f"{energy():.9f}")
    advance(0.01, int(sys.argv[1]) if len(sys.argv) > 1 else 5_000_000)
    print(f"{energy():.9f}")
    print(f"cpu_s {time.process_time() - t:.2f}")
