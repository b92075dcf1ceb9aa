"""QR codes for the resident links (segno: pure Python, no dependencies; README "Dependencies").

Error correction M (15 %): a code printed on paper in a stairwell gets dirty and creased. SVG for
the console and printing, PNG for print shops, and Unicode blocks for the installer's terminal.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import segno


def make(url: str) -> segno.QRCode:
    # Imported on the first code, not with the API: ~2.6 MB of RSS a running gateway does not need
    # until someone prints a resident link (README "Pi budget").
    import segno

    return segno.make(url, error="m", micro=False)


def svg(url: str, *, scale: int = 6) -> str:
    buf = io.BytesIO()
    make(url).save(buf, kind="svg", scale=scale, border=4, xmldecl=False, svgns=True)
    return buf.getvalue().decode("utf-8")


def terminal(url: str) -> str:
    buf = io.StringIO()
    make(url).terminal(out=buf, compact=True, border=2)
    return buf.getvalue()


def save(url: str, path: Path, *, scale: int = 10) -> None:
    """Write an SVG or PNG (by the file's suffix), e.g. for a print shop."""
    kind = "png" if path.suffix.lower() == ".png" else "svg"
    make(url).save(str(path), kind=kind, scale=scale, border=4)
