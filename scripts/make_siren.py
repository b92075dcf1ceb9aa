"""Writes gateway/console/sounds/siren.wav, the console's alarm sound (made here, no third-party
audio): a two-tone pattern (960 Hz / 770 Hz, 0.22 s each, three times) then 0.5 s of silence, which
the page loops until someone acknowledges. 8 kHz, 8-bit mono keeps it ~14 KB. Run:
    .venv/bin/python scripts/make_siren.py
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

RATE = 8000
OUT = Path(__file__).resolve().parents[1] / "gateway" / "console" / "sounds" / "siren.wav"


def tone(freq: float, seconds: float, volume: float = 0.8) -> bytes:
    n = int(RATE * seconds)
    fade = int(RATE * 0.01)  # 10 ms ramps: no clicks between tones
    out = bytearray()
    for i in range(n):
        env = min(1.0, i / fade, (n - i) / fade)
        # a square-ish wave (sine plus its third harmonic) carries through a phone speaker
        x = math.sin(2 * math.pi * freq * i / RATE) + 0.3 * math.sin(6 * math.pi * freq * i / RATE)
        out.append(int(128 + 127 * volume * env * x / 1.3))
    return bytes(out)


def main() -> None:
    frames = b"".join(tone(960, 0.22) + tone(770, 0.22) for _ in range(3)) + bytes([128]) * int(RATE * 0.5)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(OUT), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(RATE)
        w.writeframes(frames)
    print(f"{OUT}: {OUT.stat().st_size} bytes, {len(frames) / RATE:.2f} s")


if __name__ == "__main__":
    main()
