"""Image bytes for the front ends: a library photo's file, and the photo rendered small.

Everything that hands image bytes to a browser goes through here, so the one rule that
matters for safety is kept in one place: **a photo is found by its id, never by a path
the caller gives**, and the file must lie inside the library's photo folder.
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

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


def _inside(root: Path, rel: str) -> Path | None:
    """``root/rel`` if ``rel`` is a plain relative path that stays inside ``root``.

    The check is lexical on purpose: the scanner follows folder links inside the photo
    folder, so a photo reached through such a link is a library file even though its
    real path is elsewhere. What is refused is a stored path that *names* a place
    outside the root (absolute, ``..``, a drive), whatever wrote it into the database.
    """
    pure = PurePosixPath(rel)
    if not rel or pure.is_absolute() or ".." in pure.parts or "\\" in rel or ":" in pure.parts[0]:
        return None
    path = Path(os.path.normpath(root / Path(*pure.parts)))
    try:
        path.relative_to(root)
    except ValueError:
        return None
    return path


def photo_file(lib: Library, photo_id: int) -> Path:
    """The file of photo ``photo_id``, guaranteed to lie inside the library root.

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
    path = _inside(Path(os.path.normpath(root)), rel)
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
    st = path.stat()
    return hashlib.sha1(f"{path}|{st.st_size}|{st.st_mtime_ns}|{size}".encode()).hexdigest()[:20]


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


def thumbnail_etag(jpeg: bytes) -> str:
    return hashlib.sha1(jpeg).hexdigest()[:20]
