"""Decoding photos: open → check → draft-decode → EXIF-transpose → RGB → resize.

This is the only module that decodes image files with Pillow, so every trap found in
real libraries is handled once, here:

* phone photos store "rotate me" in EXIF; face_recognition's own loader ignores it, so
  faces in orientations 3-8 are missed unless we transpose first;
* some JPEGs carry an EXIF block so broken that ``ImageOps.exif_transpose`` raises
  ``SyntaxError`` (we then read the orientation tag by hand, or skip it);
* WebP data behind a ``.jpg`` name (we trust the content, not the extension);
* decompression bombs (refused before decoding any pixel data);
* 12 MP JPEGs decoded at full size only to be shrunk (``draft`` makes libjpeg decode at
  1/2, 1/4 or 1/8 scale directly, several times faster and with far less memory);
* a photo swapped for a named pipe (which blocks a plain ``open`` forever) or a link to
  ``/dev/zero`` (endless bytes) after it was listed: files are opened through
  :func:`open_regular`, which never blocks and reads only what a regular file holds.
"""
from __future__ import annotations

import io
import os
import stat
import struct
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

try:  # HEIC/HEIF from phones
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is a declared dependency
    pass

from .errors import UnreadableImage

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".heic", ".heif", ".bmp"})
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "TIFF", "HEIF", "MPO", "BMP"})

_ORIENTATION_TAG = 0x0112
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_DATETIME_DIGITIZED = 0x9004
_DATETIME = 0x0132
_TRANSPOSE = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


@dataclass
class LoadedImage:
    """A decoded, upright RGB image and how it relates to the original file."""

    pixels: np.ndarray            # HxWx3 uint8, upright, at most max_size on its longest side
    width: int                    # upright full-size width of the original
    height: int                   # upright full-size height of the original
    scale: float                  # pixels-per-original-pixel (<= 1)
    taken_at: datetime | None     # EXIF capture time if present and sane
    format: str


class _SizedFile(io.RawIOBase):
    """An open regular file that reads no further than the size it had when opened, so
    a file that keeps growing while it is read cannot make a read endless."""

    def __init__(self, fd: int, size: int) -> None:
        super().__init__()
        self._fd, self._size, self._pos = fd, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")  # counted in bytes, whatever the buffer holds
        n = min(len(view), self._size - self._pos)
        if n <= 0:
            return 0
        got = os.preadv(self._fd, [view[:n]], self._pos) if hasattr(os, "preadv") else self._read_at(view, n)
        self._pos += got
        return got

    def _read_at(self, view: memoryview, n: int) -> int:
        os.lseek(self._fd, self._pos, os.SEEK_SET)
        data = os.read(self._fd, n)
        view[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError(22, "Invalid argument")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def fileno(self) -> int:
        # no descriptor for decoders to read on their own (libtiff would): every read
        # goes through readinto and its size cap
        raise io.UnsupportedOperation("fileno")

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def open_regular(path: str | Path) -> io.BufferedReader:
    """Open ``path`` for reading only if it is a regular file, without ever blocking.

    Listing saw a regular file, but by the time it is read it may have been replaced:
    by a named pipe (a plain ``open`` waits forever for a writer, and Ctrl-C then
    cannot end the scan), or by a link to a device such as ``/dev/zero`` (reads never
    end). So the file is opened with ``O_NONBLOCK`` (and ``O_NOCTTY``), the *opened*
    descriptor is checked with ``fstat`` (no race between check and use), and reads
    stop at the size it had then. Raises :class:`UnreadableImage` for anything that is
    not a regular file, ``OSError`` when it cannot be opened.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a named pipe" if stat.S_ISFIFO(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode)
                    else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a file")
            raise UnreadableImage(f"not a regular file ({kind}): not read")
        return io.BufferedReader(_SizedFile(fd, st.st_size))
    except BaseException:
        os.close(fd)
        raise


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:  # noqa: BLE001 - broken EXIF of any shape: treat as upright
        return 1


def _parse_exif_date(value: object) -> datetime | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "ignore")
    if not isinstance(value, str):
        return None
    value = value.strip().strip("\x00")
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            dt = datetime.strptime(value[:19], fmt)
        except ValueError:
            continue
        if 1826 <= dt.year <= 2200:  # 0000:00:00 and similar camera defaults are not dates
            return dt
    return None


def exif_datetime(img: Image.Image) -> datetime | None:
    """Capture time from EXIF (DateTimeOriginal, then Digitized, then DateTime)."""
    try:
        exif = img.getexif()
        sub = exif.get_ifd(_EXIF_IFD)
        for value in (sub.get(_DATETIME_ORIGINAL), sub.get(_DATETIME_DIGITIZED), exif.get(_DATETIME)):
            dt = _parse_exif_date(value)
            if dt:
                return dt
    except Exception:  # noqa: BLE001 - broken EXIF of any shape: no date
        return None
    return None


def _transpose(img: Image.Image, orientation: int) -> Image.Image:
    if orientation == 1:
        return img
    try:
        out = ImageOps.exif_transpose(img)
        if out is not None:
            return out
    except Exception:  # noqa: BLE001 - the broken-EXIF trap: SyntaxError, struct.error, ...
        pass
    for op in _TRANSPOSE.get(orientation, ()):
        img = img.transpose(op)
    return img


def open_image(path: str | Path, *, max_size: int = 1600, max_pixels: int = 180_000_000) -> LoadedImage:
    """Decode ``path`` upright, at most ``max_size`` px on its longest side.

    Raises :class:`UnreadableImage` with a short reason for anything that is not a
    readable photo (empty, truncated, not an image, too many pixels, unsupported).
    """
    path = Path(path)
    # Truncated files must fail loudly, never decode as half-grey images. (Set on every
    # call: importing face_recognition flips this global to True.)
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        fh = open_regular(path)
    except OSError as exc:
        raise UnreadableImage(f"cannot read file: {exc.strerror or exc}") from exc
    with fh:
        if fh.seek(0, os.SEEK_END) == 0:
            raise UnreadableImage("empty file (0 bytes)")
        fh.seek(0)
        return _decode(fh, max_size, max_pixels)


def _decode(fh: io.BufferedReader, max_size: int, max_pixels: int) -> LoadedImage:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fh) as opened:
                img: Image.Image = opened
                fmt = opened.format or "?"
                if fmt not in ALLOWED_FORMATS:
                    raise UnreadableImage(f"unsupported image format {fmt}")
                w, h = img.size
                if w <= 0 or h <= 0:
                    raise UnreadableImage(f"invalid image size {w}x{h}")
                if w * h > max_pixels:
                    raise UnreadableImage(f"image too large ({w}x{h} = {w * h / 1e6:.0f} MP; "
                                          f"limit {max_pixels / 1e6:.0f} MP): possible decompression bomb")
                orientation = _orientation(img)
                taken_at = exif_datetime(img)
                if fmt == "JPEG" and max(w, h) > max_size:
                    # decode at 1/2, 1/4, 1/8 scale directly; draft keeps the result >= request
                    ratio = max_size / max(w, h)
                    img.draft("RGB", (max(1, int(w * ratio)), max(1, int(h * ratio))))
                img.load()
                decoded_w = img.size[0]
                scale_draft = decoded_w / w
                img = _transpose(img, orientation)
                if img.mode != "RGB":
                    img = _to_rgb(img)
                # upright full-size dimensions
                full_w, full_h = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
                longest = max(img.size)
                if longest > max_size:
                    img.thumbnail((max_size, max_size), Image.Resampling.BILINEAR, reducing_gap=None)
                scale = img.size[0] / full_w if full_w else scale_draft
                pixels = np.asarray(img, dtype=np.uint8)
                if pixels.ndim != 3 or pixels.shape[2] != 3:
                    raise UnreadableImage("could not decode to RGB")
                return LoadedImage(np.ascontiguousarray(pixels), full_w, full_h, scale, taken_at, fmt)
    except UnreadableImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnreadableImage(f"image too large: possible decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise UnreadableImage("not an image, or a format that cannot be read") from exc
    except OSError as exc:
        text = str(exc) or exc.__class__.__name__
        if "truncated" in text.lower() or "premature" in text.lower():
            raise UnreadableImage(f"truncated or corrupt image ({text})") from exc
        if exc.strerror:
            raise UnreadableImage(f"cannot read file: {exc.strerror}") from exc
        raise UnreadableImage(f"corrupt image ({text})") from exc
    except (SyntaxError, ValueError, TypeError, IndexError, KeyError, struct.error, EOFError, ZeroDivisionError) as exc:
        raise UnreadableImage(f"corrupt image ({exc.__class__.__name__}: {exc})") from exc
    except MemoryError as exc:
        raise UnreadableImage("image needs more memory than is available to decode") from exc


def _to_rgb(img: Image.Image) -> Image.Image:
    """Flatten transparency onto white (a transparent PNG background is not black)."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float32)
        peak = float(arr.max()) or 1.0
        img = Image.fromarray((arr * (255.0 / peak)).astype(np.uint8), "L")
    return img.convert("RGB")


def crop_thumbnail(pixels: np.ndarray, box: tuple[int, int, int, int], size: int = 128, margin: float = 0.35) -> bytes:
    """A square JPEG of the face with some context around it (box in ``pixels`` coordinates)."""
    top, right, bottom, left = box
    h, w = pixels.shape[:2]
    side = max(bottom - top, right - left)
    side = int(side * (1 + 2 * margin))
    cy, cx = (top + bottom) // 2, (left + right) // 2
    y0, x0 = max(0, cy - side // 2), max(0, cx - side // 2)
    y1, x1 = min(h, y0 + side), min(w, x0 + side)
    crop = Image.fromarray(pixels[y0:y1, x0:x1])
    crop.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    crop.save(buf, "JPEG", quality=82, optimize=True)
    return buf.getvalue()


def file_time(path: str | Path) -> datetime:
    return datetime.fromtimestamp(os.stat(path).st_mtime)
