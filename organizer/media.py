"""Image bytes for the front ends: a library photo's file, and the photo rendered small.

Everything that hands image bytes to a browser goes through here, so the one rule that
matters for safety is kept in one place: **a photo is found by its id, never by a path
the caller gives**, and the file must lie inside the library's photo folder, judged by
its real path (every link followed) at the moment it is served.
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from PIL import Image

from .db import Library
from .errors import NotFound
from .ids import is_id
from .imaging import open_image
from .models import Photo

#: sizes the photo view asks for; anything else is clamped into this range so a request
#: cannot make the server decode and encode at absurd sizes
MIN_RENDER_PX, MAX_RENDER_PX = 64, 4096
JPEG_QUALITY = 85


class PhotoNotFound(NotFound):
    """No photo with that id, or its file is not (or no longer) in the library folder."""


def _names_outside(rel: str, *, windows: bool = os.name == "nt") -> bool:
    """Whether a stored (``/``-separated) path, read as written, leaves its folder: empty,
    absolute, ``..``, a NUL; on Windows also a drive, a root or ``..`` between backslashes."""
    pure = PurePosixPath(rel)
    if not rel or "\0" in rel or pure.is_absolute() or ".." in pure.parts:
        return True
    win = PureWindowsPath(rel)
    return windows and bool(win.drive or win.root or ".." in win.parts)


def _inside(root: Path, rel: str) -> Path | None:
    """The real file behind ``root/rel``, if the scan's link rule allows it.

    Two checks. Lexical: a stored path that *names* a place outside the root (absolute,
    ``..``; on Windows also a drive or a backslash step) is refused, whatever wrote it
    into the database. Real: every link is followed *now*, at serving time, by the rule
    the scanner walks by: a folder link is followed wherever it leads (a photo folder
    often links in a second disk) and what lies below it counts as inside; a file link
    must end inside the root, or inside the folder link it was reached through. So a
    file link that points out, or was re-pointed out after the scan, is not served.
    Only the Windows rules know about drives and backslashes: on Linux and macOS ``:``
    and ``\\`` are ordinary characters of a file name ("Screenshot from 2014-05-10 14:23:11.png").
    """
    if _names_outside(rel):
        return None
    base = cur = os.path.realpath(root)
    parts = PurePosixPath(rel).parts
    for i, part in enumerate(parts):
        step = os.path.join(cur, part)
        if os.path.islink(step):
            target = os.path.realpath(step)
            if i < len(parts) - 1 and os.path.isdir(target):
                base = cur = target  # a folder link the scan follows: a new inside
                continue
            step = target
        if not _within(base, step):
            return None
        cur = step
    return Path(cur)


def _within(base: str, path: str) -> bool:
    try:
        return os.path.commonpath([base, path]) == base
    except ValueError:  # different drives (Windows)
        return False


def photo_file(lib: Library, photo_id: int) -> Path:
    """The real file of photo ``photo_id``, guaranteed to lie inside the library root
    (links resolved at the moment of the call, see :func:`_inside`).

    Raises :class:`PhotoNotFound` (a :class:`~organizer.errors.NotFound`) when there is
    no such photo, the library has no root yet, the stored path points outside the root,
    or the file is gone.
    """
    root = lib.root
    with lib.session() as s:
        photo = s.get(Photo, photo_id) if is_id(photo_id) else None
        rel = photo.path if photo is not None else None
    if rel is None:
        raise PhotoNotFound(f"there is no photo {photo_id}")
    if root is None:
        raise PhotoNotFound("the library has no photo folder yet (scan one first)")
    path = _inside(Path(root), rel)
    if path is None:
        raise PhotoNotFound(f"photo {photo_id} is not inside the library folder")
    if not path.is_file():
        raise PhotoNotFound(f"photo {photo_id} is missing from disk ({rel})")
    return path


@dataclass(frozen=True)
class RenderedPhoto:
    jpeg: bytes
    #: changes whenever the file or the requested size changes (for HTTP caching)
    etag: str


def clamp_size(size: int | None, default: int = 1600) -> int:
    if size is None:
        return default
    return max(MIN_RENDER_PX, min(MAX_RENDER_PX, int(size)))


def photo_etag(path: Path, size: int) -> str:
    """Changes when the file is replaced or rewritten (inode, size, mtime and ctime: a
    copy that keeps the old mtime still gets a new ctime) or the size asked for changes."""
    st = path.stat()
    key = f"{path}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{size}"
    return hashlib.sha1(key.encode()).hexdigest()[:20]


def render_photo(lib: Library, photo_id: int, max_size: int | None = None) -> RenderedPhoto:
    """Photo ``photo_id`` upright (EXIF orientation applied, like the stored face boxes),
    at most ``max_size`` px on its longest side, as JPEG.

    Decoding goes through :func:`organizer.imaging.open_image`, so HEIC, WebP-behind-.jpg
    and broken-EXIF files render exactly as the scanner saw them. Raises
    :class:`PhotoNotFound` or :class:`~organizer.errors.UnreadableImage`.
    """
    size = clamp_size(max_size)
    path = photo_file(lib, photo_id)
    loaded = open_image(path, max_size=size)
    buf = io.BytesIO()
    Image.fromarray(loaded.pixels).save(buf, "JPEG", quality=JPEG_QUALITY)
    return RenderedPhoto(buf.getvalue(), photo_etag(path, size))


def thumbnail_etag(face_id: int, jpeg: bytes) -> str:
    """Names the face row and its crop: a face id that comes back for another face (or a
    re-cropped face) never matches what a browser kept."""
    return hashlib.sha1(f"{face_id}|".encode() + jpeg).hexdigest()[:20]
