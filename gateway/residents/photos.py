"""Photos residents attach to a report: size-limited, re-encoded, metadata stripped.

Only JPEG and PNG are accepted (the page converts what the phone's camera gives it — HEIC included,
where the browser can decode it — to JPEG before upload). The image's dimensions are read from
its header *before* decoding, so a small file that would decode to a huge bitmap (a
decompression bomb) is refused without allocating it. The pixels are then decoded with Pillow
(a core dependency: a site without cameras has no OpenCV, and residents' reports need no camera),
scaled down to ``photo_max_px`` on the long side and re-encoded as a fresh JPEG: nothing of the
original file survives — no EXIF (GPS position, phone model, time), no comments, no trailing data.
"""

from __future__ import annotations

import io
import struct

from gateway.errors import InputError

MAX_PIXELS = 40_000_000  # ~ a 48-megapixel phone sensor's binned output; more is refused unread
JPEG_QUALITY = 82


class PhotoRefused(InputError):
    code = "photo_refused"


def dimensions(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG IHDR or a JPEG SOF marker; PhotoRefused for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:2] != b"\xff\xd8":
        raise PhotoRefused("the photo must be a JPEG or PNG image")
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise PhotoRefused("the JPEG image is damaged")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and i + 9 <= len(data):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(w), int(h)
        if length < 2:
            raise PhotoRefused("the JPEG image is damaged")
        i += 2 + length
    raise PhotoRefused("the JPEG image has no frame header")


def reencode(data: bytes, *, max_bytes: int, max_px: int) -> bytes:
    """A fresh, metadata-free JPEG no larger than ``max_px`` on its long side."""
    if len(data) > max_bytes:
        raise PhotoRefused(f"the photo is larger than {max_bytes} bytes")
    w, h = dimensions(data)
    if w <= 0 or h <= 0 or w * h > MAX_PIXELS:
        raise PhotoRefused(f"the photo's size {w}x{h} is not accepted")
    # Imported here, not with the module: a running gateway that is sent no photo does not carry
    # Pillow (~2.5 MB of RSS on a Pi's 256 MB budget; README "Pi budget").
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as src:
            if src.format not in ("JPEG", "PNG"):
                raise PhotoRefused("the photo must be a JPEG or PNG image")
            # exif_transpose applies the EXIF orientation, so the photo stands the right way up
            img = ImageOps.exif_transpose(src).convert("RGB")
    except PhotoRefused:
        raise
    except Exception:  # untrusted bytes: whatever Pillow's decoders raise (OSError, SyntaxError...)
        raise PhotoRefused("the photo could not be decoded") from None
    img.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)  # only ever shrinks, keeps the aspect
    out = io.BytesIO()
    # a fresh file: no exif/icc/comment arguments, so none of the original's metadata is written
    img.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()
