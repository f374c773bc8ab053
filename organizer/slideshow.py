"""Slideshows of one person or several: select → order → render (html, mp4, folder).

The pipeline has three plain stages, each usable alone:

* :func:`select_photos` turns names and options into a :class:`Selection` — the photos in
  capture-time order, undated ones last, each with the boxes of the selected people's
  faces (what the crop and the pan/zoom must keep in frame) and the names for its caption;
* :func:`focus_crop` / :func:`ken_burns` compute, from a photo's size and those boxes,
  the crop of the output's aspect ratio and the gentle zoom that never cut a face off;
* :func:`export_slideshow` renders a selection in one format into a temporary path next
  to the output and moves it into place only when it is complete, so an error or an
  interruption never leaves a half-written slideshow behind.

Photos are decoded one at a time, at the size the output needs (JPEG draft decoding, see
:mod:`organizer.imaging`), so a slideshow of 20,000 twelve-megapixel photos needs no
more memory than one of ten.
"""
from __future__ import annotations

import html as html_lib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TypedDict, Unpack

from PIL import Image
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from .db import Library
from .errors import (
    InvalidRequest,
    LibraryError,
    OrganizerError,
    UnreadableImage,
)
from .imaging import open_image
from .jobs import Cancelled, CancelToken, Progress, as_progress, owner_tag, remove_abandoned
from .jobs import owner_alive as owner_alive  # where the leftovers' owners were first told apart
from .models import Assignment, Face, LibraryMeta, Person, Photo, PhotoStatus
from .queries import normalise_name, resolve_person

FORMATS = ("html", "mp4", "folder")
#: output size per format when none is given: html images fit inside it, the mp4 is it
DEFAULT_SIZES = {"html": (1920, 1080), "mp4": (1280, 720)}
DEFAULT_SECONDS = 4.0
FPS = 25
#: ``include_auto`` adds machine assignments at least this confident. 0.8 keeps only the
#: faces clustering put very close to a named person; "suggested" faces (not yet answered
#: by the user) are never included.
AUTO_MIN_CONFIDENCE = 0.8
#: how far the mp4 zooms in over one photo (1.12 = the last frame shows 1/1.12 of the
#: first frame's width). Gentle: more looks like a zoom effect, less like nothing moves.
MAX_ZOOM = 1.12
#: x264 preset. Measured at 720p, one encoder thread, a 4 s zoom over a detailed photo:
#: "superfast" 1.8-2.0 CPU-seconds (the zoom filter included), "ultrafast" 1.3 but 2.4x
#: the bytes at the same PSNR, "veryfast" slower still; tuning superfast's options
#: (subme, partitions, bframes) saved CPU only by growing the file 40-75%.
X264_PRESET = "superfast"
X264_CRF = 21
#: superfast's choices that buy nothing on a segment of one slow zoom: no scene cut can
#: occur inside it (scenecut=0), nor a fade (weightp=0), and the adaptive B-frame decision
#: (b-adapt=0; superfast's 3 B-frames are kept) always picks the same run of three on a
#: smooth zoom. Measured on 720p segments: 19-20% less CPU time, files 0-3% smaller, PSNR
#: within 0.03 dB of superfast's defaults. (bframes=5 on top: a further 8% CPU and 12%
#: smaller files, but 0.15 dB lower PSNR on detailed photos, so not taken.)
X264_PARAMS = "b-adapt=0:weightp=0:scenecut=0"
#: ffmpeg processes encoding photos at once, one thread each. One single-threaded encoder
#: per core beats one encoder with a thread per core: 4 photos took 3.7 s instead of 5.2 s
#: on 2 cores (same bytes out), since x264's frame threads and the zoom filter wait on
#: each other over a clip of only 100 frames.
MP4_ENCODERS = max(1, min(4, os.cpu_count() or 1))
MIN_SIDE, MAX_SIDE = 16, 7680
HTML_JPEG_QUALITY = 85

Box = tuple[float, float, float, float]      # (top, right, bottom, left), face_recognition's order
Rect = tuple[float, float, float, float]     # (x0, y0, x1, y1)
ProgressCallback = Callable[[int, int], None]   # (photos done, photos total): the older form of Progress


class EmptySelection(InvalidRequest):
    """No photo matches the request (the message says what was asked)."""


class ExportError(OrganizerError):
    """The slideshow could not be written (output not writable, disk full, ffmpeg failed)."""


class ExportCancelled(ExportError, Cancelled):
    """The export was cancelled; nothing was written."""


# --- selection ------------------------------------------------------------------------------

@dataclass(frozen=True)
class PersonRef:
    id: int
    name: str


@dataclass
class Slide:
    """One photo of the slideshow."""

    photo_id: int
    path: str                    # relative to the library root (POSIX)
    file: Path                   # absolute path of the original
    taken_at: datetime | None
    taken_at_source: str | None  # "exif" | "file" | None
    width: int | None            # upright full-size pixels
    height: int | None
    #: boxes of the selected people's faces (upright full-size pixels), the first one is
    #: the first-named person's biggest face: the one the crop keeps if not all fit
    focus: list[Box] = field(default_factory=list)
    #: who is in the photo, selected people first (for the caption)
    names: list[str] = field(default_factory=list)

    @property
    def dated(self) -> bool:
        return self.taken_at is not None

    def date_text(self) -> str:
        if self.taken_at is None:
            return "date unknown"
        text = f"{self.taken_at.day} {self.taken_at:%B %Y}"
        # a file's modification time is often the day it was copied, not taken
        return text if self.taken_at_source != "file" else f"{text} (file date)"

    def caption(self) -> str:
        """Plain text (renderers escape it): "3 May 2001 · Grandma, Grandpa"."""
        return " · ".join(p for p in (self.date_text(), ", ".join(self.names)) if p)


@dataclass
class Selection:
    people: list[PersonRef]
    match: str                      # "all" | "any"
    slides: list[Slide]             # dated by capture time, then the undated ones
    #: photos that matched but cannot be shown: (path, why) — file missing or unreadable
    unavailable: list[tuple[str, str]] = field(default_factory=list)
    #: undated photos left out because a date range was asked for
    undated_excluded: int = 0
    description: str = ""
    #: the library it came from: exports are recorded there, so that forgetting a person
    #: can find the slideshows made of them (see :func:`record_export`)
    library: Library | None = field(default=None, repr=False, compare=False)

    @property
    def undated(self) -> list[Slide]:
        return [s for s in self.slides if not s.dated]

    def __len__(self) -> int:
        return len(self.slides)


def parse_date_bound(text: str | date | None, *, end: bool = False) -> datetime | None:
    """``1990``, ``1990-06`` or ``1990-06-15`` as the first (or, with ``end``, the last)
    moment it covers, so ``--from 1990 --to 2000`` means 1 Jan 1990 to 31 Dec 2000."""
    if text is None or text == "":
        return None
    if isinstance(text, datetime):
        return text
    if isinstance(text, date):
        start = datetime(text.year, text.month, text.day)
        nxt = start + timedelta(days=1)
        return nxt - timedelta(microseconds=1) if end else start
    raw = str(text).strip()
    m = re.fullmatch(r"(\d{4})(?:[-/.](\d{1,2})(?:[-/.](\d{1,2}))?)?", raw)
    if not m:
        raise InvalidRequest(f"{raw!r} is not a date: use YYYY, YYYY-MM or YYYY-MM-DD")
    year, month, day = int(m.group(1)), m.group(2), m.group(3)
    try:
        if day:
            start = datetime(year, int(month), int(day))
            nxt = start + timedelta(days=1)
        elif month:
            start = datetime(year, int(month), 1)
            nxt = datetime(year + (start.month == 12), start.month % 12 + 1, 1)
        else:
            start, nxt = datetime(year, 1, 1), datetime(year + 1, 1, 1)
    except ValueError:
        raise InvalidRequest(f"{raw!r} is not a valid date") from None
    return nxt - timedelta(microseconds=1) if end else start


def resolve_people(lib: Library, names: Sequence[str]) -> list[PersonRef]:
    """Each name (or id) as a person, by the one rule of :func:`organizer.queries.resolve_person`.

    Raises :class:`PersonNotFound` naming the first unknown name.
    """
    cleaned = [normalise_name(n) for n in names]
    if not cleaned or not all(cleaned):
        raise InvalidRequest("name at least one person for the slideshow")
    refs: list[PersonRef] = []
    with lib.session() as s:
        for name in cleaned:
            person = resolve_person(s, name)
            if person.id not in {r.id for r in refs}:
                refs.append(PersonRef(person.id, person.name))
    return refs


def _counts_as(include_auto: bool) -> ColumnElement[bool]:
    """SQL condition: the face's person assignment is one the slideshow trusts."""
    confirmed = Face.assignment == Assignment.confirmed
    if not include_auto:
        return confirmed
    return or_(confirmed, and_(Face.assignment == Assignment.auto, Face.confidence >= AUTO_MIN_CONFIDENCE))


def select_photos(lib: Library, names: Sequence[str], *, match: str = "all",
                  date_from: str | date | None = None, date_to: str | date | None = None,
                  min_face: int = 0, include_auto: bool = False) -> Selection:
    """The photos of the named people, in capture-time order.

    * ``match="all"``: photos in which every named person appears; ``"any"``: at least one.
    * ``date_from`` / ``date_to``: inclusive bounds (``1990``, ``1990-06``, a date); with a
      range, undated photos are left out (counted in ``undated_excluded``).
    * ``min_face``: a person counts only where their face is at least this many pixels
      (shorter side of the box in the original photo) — skips specks in a crowd.
    * ``include_auto``: also trust confident automatic assignments
      (:data:`AUTO_MIN_CONFIDENCE`); the default is the user's confirmed faces only.

    Photos whose file is missing or unreadable are listed in ``unavailable``, not shown.
    Raises :class:`PersonNotFound` or :class:`EmptySelection` (nothing matches).
    """
    if match not in ("all", "any"):
        raise InvalidRequest('match must be "all" or "any"')
    if min_face < 0:
        raise InvalidRequest("the minimum face size cannot be negative")
    start, end = parse_date_bound(date_from), parse_date_bound(date_to, end=True)
    if start and end and start > end:
        raise InvalidRequest("the start date is after the end date")
    people = resolve_people(lib, names)
    root = lib.root
    if root is None:
        raise EmptySelection("the library has no photos yet: run `organizer scan PHOTO_DIR` first")
    ids = [p.id for p in people]
    trusted = _counts_as(include_auto)
    side = func.min(Face.bottom - Face.top, Face.right - Face.left)

    with lib.session() as s:
        q = (select(Face.photo_id, Face.person_id, Face.top, Face.right, Face.bottom, Face.left)
             .join(Photo, Photo.id == Face.photo_id)
             .where(Face.person_id.in_(ids), Face.is_face.is_(True), trusted))
        if min_face:
            q = q.where(side >= min_face)
        if start:
            q = q.where(Photo.taken_at >= start)
        if end:
            q = q.where(Photo.taken_at <= end)
        faces_by_photo: dict[int, dict[int, list[Box]]] = {}
        for photo_id, person_id, top, right, bottom, left in s.execute(q):
            assert person_id is not None  # the query keeps only faces of the named people
            faces_by_photo.setdefault(photo_id, {}).setdefault(person_id, []).append((top, right, bottom, left))
        need = set(ids)
        chosen = [pid for pid, by_person in faces_by_photo.items()
                  if (need <= by_person.keys() if match == "all" else by_person)]
        undated_excluded = 0
        if start or end:
            undated_excluded = _count_undated_matches(s, ids, trusted, side, min_face, match)

        slides: list[Slide] = []
        unavailable: list[tuple[str, str]] = []
        names_by_photo = _caption_names(s, chosen, ids, include_auto)
        for chunk in _chunks(chosen, 500):
            for photo in s.scalars(select(Photo).where(Photo.id.in_(chunk))):
                if photo.status != PhotoStatus.ok:
                    unavailable.append((photo.path, photo.error or f"photo is {photo.status.value}"))
                    continue
                by_person = faces_by_photo[photo.id]
                focus: list[Box] = []
                for pid in ids:  # first-named person's biggest face first
                    focus.extend(sorted(by_person.get(pid, []), key=lambda b: -(b[2] - b[0]) * (b[1] - b[3])))
                slides.append(Slide(photo.id, photo.path, root / photo.path, photo.taken_at, photo.taken_at_source,
                                    photo.width, photo.height, focus, names_by_photo.get(photo.id, [])))
    slides.sort(key=lambda sl: (sl.taken_at is None, sl.taken_at or datetime.min, sl.path))
    description = describe_request(people, match, start, end, min_face, include_auto)
    if not slides:
        extra = f" ({len(unavailable)} matching photo(s) are missing or unreadable)" if unavailable else ""
        raise EmptySelection(f"no photos match: {description}{extra}")
    return Selection(people, match, slides, unavailable, undated_excluded, description, library=lib)


def _count_undated_matches(s: Session, ids: list[int], trusted: ColumnElement[bool], side: ColumnElement[int],
                           min_face: int, match: str) -> int:
    q = (select(Face.photo_id, Face.person_id).join(Photo, Photo.id == Face.photo_id)
         .where(Face.person_id.in_(ids), Face.is_face.is_(True), trusted, Photo.taken_at.is_(None)))
    if min_face:
        q = q.where(side >= min_face)
    seen: dict[int, set[int]] = {}
    for photo_id, person_id in s.execute(q):
        assert person_id is not None  # the query keeps only faces of the named people
        seen.setdefault(photo_id, set()).add(person_id)
    return sum(1 for got in seen.values() if (set(ids) <= got if match == "all" else got))


def _caption_names(s: Session, photo_ids: list[int], selected: list[int],
                   include_auto: bool) -> dict[int, list[str]]:
    """Everyone trusted-named in each photo: the selected people first (in the order
    asked), then others by name. Hidden people appear only if selected."""
    out: dict[int, list[tuple[int, str]]] = {}
    order = {pid: i for i, pid in enumerate(selected)}
    for chunk in _chunks(photo_ids, 500):
        q = (select(Face.photo_id, Person.id, Person.name, Person.hidden).join(Person, Person.id == Face.person_id)
             .where(Face.photo_id.in_(chunk), Face.is_face.is_(True), _counts_as(include_auto)))
        for photo_id, pid, name, hidden in s.execute(q):
            if hidden and pid not in order:
                continue
            entry = (pid, name)
            if entry not in out.setdefault(photo_id, []):
                out[photo_id].append(entry)
    return {ph: [n for _, n in sorted(v, key=lambda e: (order.get(e[0], len(order)), e[1].lower()))]
            for ph, v in out.items()}


def _chunks(items: list[int], n: int) -> Iterator[list[int]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def describe_request(people: Sequence[PersonRef], match: str, start: datetime | None, end: datetime | None,
                     min_face: int, include_auto: bool) -> str:
    names = [p.name for p in people]
    who = names[0] if len(names) == 1 else (" and " if match == "all" else " or ").join(names)
    if len(names) > 1 and match == "all":
        who += " together"
    parts = [f"photos of {who}"]
    if start or end:
        parts.append(f"from {start:%Y-%m-%d}" if start else "")
        parts.append(f"to {end:%Y-%m-%d}" if end else "")
    if min_face:
        parts.append(f"faces of at least {min_face} px")
    parts.append("confirmed or confidently recognised" if include_auto else "confirmed faces only")
    return ", ".join(p for p in parts if p)


# --- geometry: crops that keep faces in frame ----------------------------------------------

def _clip_box(box: Box, w: float, h: float) -> Box:
    """A detector box may stick out of the photo (a face cut by the border); clip it."""
    top, right, bottom, left = box
    top, bottom = max(0.0, min(top, h)), max(0.0, min(bottom, h))
    left, right = max(0.0, min(left, w)), max(0.0, min(right, w))
    return (top, max(right, left), max(bottom, top), left)


def _union(boxes: Sequence[Box]) -> Box:
    return (min(b[0] for b in boxes), max(b[1] for b in boxes), max(b[2] for b in boxes), min(b[3] for b in boxes))


def _place(centre: float, length: float, lo: float, hi: float) -> float:
    """Start of a window of ``length`` centred on ``centre``, kept inside [lo, hi] when it fits
    (centred on the middle of [lo, hi] when it does not)."""
    if length >= hi - lo:
        return (lo + hi - length) / 2
    return min(max(centre - length / 2, lo), hi - length)


def focus_crop(width: float, height: float, aspect: float, boxes: Sequence[Box]) -> Rect:
    """The largest crop of ``aspect`` (width/height) of a ``width`` x ``height`` photo that
    keeps the faces in ``boxes`` whole, centred on them as far as the photo allows.

    All the boxes are kept when they fit together; otherwise the first box (the main
    person's face) alone. When even that face is larger than any crop of this aspect (a
    close-up in a frame of the other orientation) the rectangle grows past the photo's
    edges instead of cutting the face — the renderer fills the outside with black. Without
    boxes the crop is centred.
    """
    if width <= 0 or height <= 0 or aspect <= 0:
        raise InvalidRequest("invalid photo or output size")
    cw = min(width, height * aspect)
    ch = cw / aspect
    clipped = [_clip_box(b, width, height) for b in boxes]
    target = None
    if clipped:
        union = _union(clipped)
        if union[1] - union[3] <= cw and union[2] - union[0] <= ch:
            target = union
        else:
            target = clipped[0]
            bw, bh = target[1] - target[3], target[2] - target[0]
            if bw > cw or bh > ch:  # grow past the photo rather than cut the face
                cw = max(cw, bw, bh * aspect)
                ch = cw / aspect
    if target is None:
        cx, cy = width / 2, height / 2
    else:
        cx, cy = (target[1] + target[3]) / 2, (target[0] + target[2]) / 2
    x0 = _place(cx, cw, 0.0, width)
    y0 = _place(cy, ch, 0.0, height)
    if target is not None:  # a window larger than the photo is centred on it; keep the face in
        x0 = min(max(x0, target[1] - cw), target[3])
        y0 = min(max(y0, target[2] - ch), target[0])
    return (x0, y0, x0 + cw, y0 + ch)


def ken_burns(start: Rect, boxes: Sequence[Box], max_zoom: float = MAX_ZOOM) -> tuple[float, float, float]:
    """The zoom of one photo: ``(zoom, px, py)``.

    Frame ``t`` (0..1) shows ``start`` scaled by ``1 / (1 + (zoom - 1) * ease(t))`` about the
    fixed point ``(px, py)``. The point is the face centre moved just enough that the
    last frame still holds the whole face box, and ``zoom`` is reduced when the face is too
    big to zoom in that far. Every frame lies inside ``start`` and holds the face (both
    ends do, and each edge moves monotonically between them).
    """
    x0, y0, x1, y1 = start
    if not boxes:
        return 1.0 + (max_zoom - 1.0) / 2, (x0 + x1) / 2, (y0 + y1) / 2
    top, right, bottom, left = boxes[0]
    left, right = min(max(left, x0), x1), min(max(right, x0), x1)
    top, bottom = min(max(top, y0), y1), min(max(bottom, y0), y1)
    right, bottom = max(right, left), max(bottom, top)
    bw, bh = right - left, bottom - top
    zoom = max(1.0, min(max_zoom, (x1 - x0) / bw if bw else max_zoom, (y1 - y0) / bh if bh else max_zoom))
    if zoom <= 1.0 + 1e-6:
        return 1.0, (x0 + x1) / 2, (y0 + y1) / 2
    a = 1.0 - 1.0 / zoom

    def fixed(c: float, lo_box: float, hi_box: float, lo: float, hi: float) -> float:
        lo_p = (hi_box - hi / zoom) / a
        hi_p = (lo_box - lo / zoom) / a
        return min(max(c, lo_p), hi_p) if lo_p <= hi_p else (lo_p + hi_p) / 2

    px = fixed((left + right) / 2, left, right, x0, x1)
    py = fixed((top + bottom) / 2, top, bottom, y0, y1)
    return zoom, px, py


def zoom_rect(start: Rect, zoom: float, px: float, py: float, t: float) -> Rect:
    """The rectangle shown at time ``t`` (0..1) of a :func:`ken_burns` zoom."""
    t = min(max(t, 0.0), 1.0)
    z = 1.0 + (zoom - 1.0) * (t * t * (3 - 2 * t))
    x0, y0, x1, y1 = start
    return (px + (x0 - px) / z, py + (y0 - py) / z, px + (x1 - px) / z, py + (y1 - py) / z)


def box_inside(box: Box, rect: Rect, tol: float = 1e-6) -> bool:
    top, right, bottom, left = box
    x0, y0, x1, y1 = rect
    return left >= x0 - tol and top >= y0 - tol and right <= x1 + tol and bottom <= y1 + tol


# --- rendering helpers ------------------------------------------------------------------------

def _decode(slide: Slide, longest: int) -> tuple[Image.Image, float]:
    """The photo upright at about ``longest`` px on its longest side, and its scale
    (decoded px per original px)."""
    img = open_image(slide.file, max_size=max(16, longest))
    return Image.fromarray(img.pixels), img.scale


def _full_size(slide: Slide) -> tuple[int, int] | None:
    return (slide.width, slide.height) if slide.width and slide.height else None


def render_region(slide: Slide, rect: Rect, out_w: int, out_h: int, *,
                  resample: Image.Resampling = Image.Resampling.LANCZOS) -> Image.Image:
    """``rect`` (original pixels; may reach past the photo) of the photo at ``out_w`` x
    ``out_h``, decoding no more pixels than that needs; outside the photo is black."""
    full = _full_size(slide)
    rw = rect[2] - rect[0]
    if full:
        need = max(full) * out_w / rw if rw else max(full)
        longest = int(min(max(full), math.ceil(need * 1.05)))
        img, scale = _decode(slide, longest)
    else:
        img, scale = _decode(slide, 4096)
    x0, y0, x1, y1 = (v * scale for v in rect)
    w, h = img.size
    if x0 >= 0 and y0 >= 0 and x1 <= w + 0.5 and y1 <= h + 0.5:
        return img.resize((out_w, out_h), resample, box=(x0, y0, min(x1, w), min(y1, h)))
    # part of the rectangle lies outside the photo: paste the photo's part on black
    canvas = Image.new("RGB", (out_w, out_h))
    k = out_w / (x1 - x0)
    px0, py0 = max(0.0, x0), max(0.0, y0)
    px1, py1 = min(float(w), x1), min(float(h), y1)
    tw, th = max(1, round((px1 - px0) * k)), max(1, round((py1 - py0) * k))
    part = img.resize((tw, th), resample, box=(px0, py0, px1, py1))
    canvas.paste(part, (round((px0 - x0) * k), round((py0 - y0) * k)))
    return canvas


def render_fit(slide: Slide, max_w: int, max_h: int) -> Image.Image:
    """The whole photo, fitted inside ``max_w`` x ``max_h`` (never enlarged)."""
    full = _full_size(slide)
    if full:
        k = min(max_w / full[0], max_h / full[1], 1.0)
        img, _ = _decode(slide, max(1, math.ceil(max(full) * k)))
    else:
        img, _ = _decode(slide, max(max_w, max_h))
    if img.width > max_w or img.height > max_h:
        img.thumbnail((max_w, max_h), Image.Resampling.LANCZOS)
    return img


def preview_images(selection: Selection, count: int = 8,
                   size: tuple[int, int] = (320, 180)) -> list[tuple[Slide, bytes]]:
    """JPEG previews of the first ``count`` photos, cropped as the mp4 frames them."""
    import io

    out: list[tuple[Slide, bytes]] = []
    aspect = size[0] / size[1]
    for slide in selection.slides:
        if len(out) >= count:
            break
        full = _full_size(slide)
        try:
            if full is None:
                raise UnreadableImage("size unknown")
            frame = render_region(slide, focus_crop(full[0], full[1], aspect, slide.focus), *size)
        except (UnreadableImage, OSError):
            continue
        buf = io.BytesIO()
        frame.save(buf, "JPEG", quality=80)
        out.append((slide, buf.getvalue()))
    return out


# --- export ---------------------------------------------------------------------------------

@dataclass
class ExportReport:
    output: Path
    format: str
    photos: int                                    # photos in the slideshow
    undated: list[str] = field(default_factory=list)           # their paths (shown last)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why) not included
    size: tuple[int, int] | None = None
    seconds: float | None = None                   # mp4: duration
    #: work folders of earlier exports to the same place whose process had died
    #: (``kill -9``, power cut), removed before this one started
    removed_partials: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        what = {"html": "slideshow folder", "mp4": "video", "folder": "folder of photos"}[self.format]
        text = f"wrote {self.output} ({what}, {self.photos} photo{'s' if self.photos != 1 else ''}"
        if self.seconds is not None:
            text += f", {self.seconds:.0f} s"
        return text + ")"


def parse_size(text: str | tuple[int, int] | None, fmt: str) -> tuple[int, int]:
    """``"1280x720"`` as (width, height); odd sides are rounded down to even (video needs it)."""
    if text is None or text == "":
        return DEFAULT_SIZES.get(fmt, (1920, 1080))
    if isinstance(text, tuple):
        w, h = text
    else:
        m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
        if not m:
            raise InvalidRequest(f"{text!r} is not a size: use WIDTHxHEIGHT, e.g. 1280x720")
        w, h = int(m.group(1)), int(m.group(2))
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise InvalidRequest(f"size {w}x{h} is out of range ({MIN_SIDE} to {MAX_SIDE} px a side)")
    return (w - w % 2, h - h % 2)


@contextmanager
def _staging(out: Path, overwrite: bool) -> Iterator[Path]:
    """A private work folder next to ``out`` (same file system, so the final move is an
    atomic rename); removed whatever happens. Checks ``out`` can be written first."""
    parent = out.parent
    if not parent.is_dir():
        raise ExportError(f"cannot write {out}: the folder {parent} does not exist")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise ExportError(f"{out} already exists: choose another name or allow overwriting")
    try:
        # the owner in the name (written atomically with the folder) lets a later export
        # tell a dead export's leftovers from a running one's (remove_abandoned)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.{owner_tag()}.", suffix=PARTIAL, dir=parent))
    except OSError as exc:
        raise ExportError(f"cannot write to {parent}: {exc.strerror or exc}") from exc
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _move_into_place(built: Path, out: Path, work: Path) -> None:
    if out.exists() or out.is_symlink():
        old = work / "previous"
        os.replace(out, old)   # keep the old one until the new one is in place
    os.replace(built, out)


def export_slideshow(selection: Selection, out: str | Path, fmt: str, *, size: str | tuple[int, int] | None = None,
                     seconds: float = DEFAULT_SECONDS, link: bool = False, overwrite: bool = False,
                     progress: Progress | ProgressCallback | None = None,
                     cancel: threading.Event | CancelToken | None = None, record: bool = True) -> ExportReport:
    """Render ``selection`` as ``fmt`` at ``out`` (a folder for html/folder, a file for mp4).

    Nothing appears at ``out`` until the slideshow is complete. Photos that cannot be read
    are skipped and listed in the report; if none can be read, :class:`ExportError`.
    ``progress`` (a :class:`~organizer.jobs.Progress`, or a ``(done, total)`` callback)
    gets a step after each photo; when it is cancelled, or ``cancel`` is set, the export
    stops before the next photo (:class:`ExportCancelled`, nothing written). Work folders that killed exports left
    next to ``out`` are removed first. With ``record`` (and a selection from a library)
    the export is remembered in the library, for ``organizer forget``.
    """
    if fmt not in FORMATS:
        raise InvalidRequest(f"unknown format {fmt!r}: choose html, mp4 or folder")
    if not seconds or not (0.2 <= float(seconds) <= 600):
        raise InvalidRequest("seconds per photo must be between 0.2 and 600")
    dims = parse_size(size, fmt)
    out = Path(out).expanduser().absolute()
    if not selection.slides:
        raise EmptySelection("the selection is empty")
    report = ExportReport(out, fmt, 0, size=None if fmt == "folder" else dims)
    total = len(selection.slides)
    reporter = as_progress(progress, cancel)

    def step(done: int) -> None:
        if reporter.cancelled:
            raise ExportCancelled("export cancelled")
        reporter.step(done, total, selection.slides[done - 1].path)

    renderer = {"html": _render_html, "mp4": _render_mp4, "folder": _render_folder}[fmt]
    report.removed_partials = remove_abandoned(out.parent, f".{out.name}.", PARTIAL)
    with _staging(out, overwrite) as work:
        built = work / ("slideshow.mp4" if fmt == "mp4" else "slideshow")
        try:
            renderer(selection, built, work, dims, float(seconds), link, report, step)
        except OSError as exc:
            raise ExportError(f"cannot write the slideshow: {exc.strerror or exc}") from exc
        if report.photos == 0:
            raise ExportError(f"none of the {total} photos could be read: {report.skipped[0][1]}")
        try:
            _move_into_place(built, out, work)
        except OSError as exc:
            raise ExportError(f"cannot move the slideshow to {out}: {exc.strerror or exc}") from exc
    if record and selection.library is not None:
        record_export(selection.library, selection.people, out, fmt)
    return report


# --- leftovers: what a killed export leaves, and where exports went -------------------------

PARTIAL = ".partial"
EXPORTS_KEY = "exports"
#: exports remembered per library (the oldest are dropped): enough for every slideshow a
#: family makes, small enough for one meta row
KEEP_RECORDS = 500


@dataclass(frozen=True)
class ExportRecord:
    """A slideshow written for the library: where, of whom, and whether it is the
    organizer's own copy (a dashboard download in its temporary folder, which the
    organizer may delete) or the user's file (which it only names)."""

    path: str
    fmt: str
    people: tuple[int, ...]
    temporary: bool = False


def record_export(lib: Library, people: Sequence[PersonRef], path: Path, fmt: str, *, temporary: bool = False) -> None:
    """Remember an export in the library (a read-only library simply does not remember)."""
    entry = ExportRecord(str(path), fmt, tuple(p.id for p in people), temporary)
    try:
        with lib.session() as s:
            records = [r for r in _load_records(s) if r.path != entry.path] + [entry]
            _store_records(s, records[-KEEP_RECORDS:])
    except LibraryError:
        pass


def take_export_records(s: Session, person_id: int | None) -> list[ExportRecord]:
    """Remove from the library (in session ``s``) the records of exports showing
    ``person_id`` (None: every record) and return them."""
    records = _load_records(s)
    taken = [r for r in records if person_id is None or person_id in r.people]
    if taken:
        _store_records(s, [r for r in records if r not in taken])
    return taken


def _load_records(s: Session) -> list[ExportRecord]:
    row = s.get(LibraryMeta, EXPORTS_KEY)
    try:
        raw = json.loads(row.value) if row is not None else []
        return [ExportRecord(str(r["path"]), str(r["fmt"]), tuple(int(p) for p in r["people"]), bool(r["temporary"]))
                for r in raw]
    except (ValueError, KeyError, TypeError):
        return []  # a damaged record is not worth failing an export or a forget over


def _store_records(s: Session, records: list[ExportRecord]) -> None:
    value = json.dumps([{"path": r.path, "fmt": r.fmt, "people": list(r.people), "temporary": r.temporary}
                        for r in records])
    s.merge(LibraryMeta(key=EXPORTS_KEY, value=value))


def remove_export(path: Path) -> bool:
    """Delete an export the organizer made for itself (file or folder); True if gone."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        return False
    return True


class _ExportOptions(TypedDict, total=False):
    """:func:`export_slideshow`'s keyword options, passed on by :func:`make_slideshow` (its
    defaults apply to those left out)."""

    size: str | tuple[int, int] | None
    seconds: float
    link: bool
    overwrite: bool
    progress: Progress | ProgressCallback | None
    cancel: threading.Event | CancelToken | None
    record: bool


def make_slideshow(lib: Library, names: Sequence[str], out: str | Path, fmt: str, *, match: str = "all",
                   date_from: str | date | None = None, date_to: str | date | None = None, min_face: int = 0,
                   include_auto: bool = False,
                   **export_options: Unpack[_ExportOptions]) -> tuple[Selection, ExportReport]:
    """Select and export in one call (what the CLI does)."""
    if fmt not in FORMATS:
        raise InvalidRequest(f"unknown format {fmt!r}: choose html, mp4 or folder")
    selection = select_photos(lib, names, match=match, date_from=date_from, date_to=date_to,
                              min_face=min_face, include_auto=include_auto)
    report = export_slideshow(selection, out, fmt, **export_options)
    return selection, report


@dataclass
class Download:
    """A slideshow exported to be downloaded: one file (the mp4, or a zip of the folder)."""

    file: Path
    name: str                  # the file name to offer ("Grandma.mp4", "Grandma-html.zip")
    fmt: str
    report: ExportReport

    def summary(self) -> str:
        """What was made, without the private path it was made in."""
        text = self.report.summary().replace(str(self.report.output), "the slideshow")
        if self.report.undated:
            text += f"; {len(self.report.undated)} photo(s) without a date are at the end"
        if self.report.skipped:
            text += f"; {len(self.report.skipped)} photo(s) could not be read"
        return text


def download_slug(people: Sequence[PersonRef]) -> str:
    """A file name from the people's names (letters, digits, ``-``; at most 60)."""
    return re.sub(r"[^\w\-]+", "-", "-".join(p.name for p in people)).strip("-")[:60] or "slideshow"


def export_download(selection: Selection, folder: Path, fmt: str, *, size: str | tuple[int, int] | None = None,
                    seconds: float = DEFAULT_SECONDS, progress: Progress | None = None) -> Download:
    """Export ``selection`` into ``folder`` (new, empty) as one file to download: the mp4,
    or the html/folder slideshow zipped. Recorded in the library as the organizer's own
    copy (``organizer forget`` deletes it). On any error ``folder`` is left as it was
    made: whoever made it removes it."""
    slug = download_slug(selection.people)
    target = folder / (f"{slug}.mp4" if fmt == "mp4" else slug)
    report = export_slideshow(selection, target, fmt, size=size, seconds=seconds, progress=progress, record=False)
    if fmt == "mp4":
        file, name = target, f"{slug}.mp4"
    else:  # a folder downloads as one zip
        try:
            file = Path(shutil.make_archive(str(target), "zip", root_dir=target.parent, base_dir=target.name))
        except OSError as exc:
            raise ExportError(f"cannot write the zip file: {exc.strerror or exc}") from exc
        shutil.rmtree(target, ignore_errors=True)
        name = f"{slug}-{fmt}.zip"
    if selection.library is not None:
        record_export(selection.library, selection.people, file, fmt, temporary=True)
    return Download(file, name, fmt, report)


# --- folder ---------------------------------------------------------------------------------

def folder_name(slide: Slide, index: int, width: int = 4) -> str:
    """``2001-05-03_143000_0007_IMG_1234.jpg``: the date prefix makes any file viewer show
    the photos in order; the running number keeps photos of the same second in order, and
    undated photos (``undated_...``) sort after every date."""
    stem = re.sub(r"[^\w.\-]+", "_", Path(slide.path).name).strip("._") or f"photo{Path(slide.path).suffix}"
    seq = f"{index:0{width}d}"
    if slide.taken_at is None:
        return f"undated_{seq}_{stem}"
    return f"{slide.taken_at:%Y-%m-%d_%H%M%S}_{seq}_{stem}"


def _render_folder(selection: Selection, built: Path, work: Path, dims: tuple[int, int], seconds: float,
                   link: bool, report: ExportReport, step: Callable[[int], None]) -> None:
    built.mkdir()
    width = max(4, len(str(len(selection.slides))))
    for i, slide in enumerate(selection.slides, 1):
        target = built / folder_name(slide, i, width)
        try:
            if link:
                try:
                    os.link(slide.file, target)
                except OSError:  # another file system, or links not allowed: copy
                    shutil.copy2(slide.file, target)
            else:
                shutil.copy2(slide.file, target)
        except FileNotFoundError:
            report.skipped.append((slide.path, "file not found"))
        else:
            report.photos += 1
            if not slide.dated:
                report.undated.append(slide.path)
        step(i)


# --- html -----------------------------------------------------------------------------------

def _render_html(selection: Selection, built: Path, work: Path, dims: tuple[int, int], seconds: float,
                 link: bool, report: ExportReport, step: Callable[[int], None]) -> None:
    images = built / "images"
    images.mkdir(parents=True)
    width = max(4, len(str(len(selection.slides))))
    shown: list[tuple[Slide, str, tuple[int, int]]] = []
    for i, slide in enumerate(selection.slides, 1):
        try:
            img = render_fit(slide, *dims)
        except UnreadableImage as exc:
            report.skipped.append((slide.path, str(exc)))
        else:
            name = f"{len(shown) + 1:0{width}d}.jpg"
            img.save(images / name, "JPEG", quality=HTML_JPEG_QUALITY)
            shown.append((slide, f"images/{name}", img.size))
            report.photos += 1
            if not slide.dated:
                report.undated.append(slide.path)
            del img
        step(i)
    (built / "index.html").write_text(html_page(selection, shown, seconds), encoding="utf-8")


_HTML_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
html, body {{ margin: 0; height: 100%; background: #000; color: #eee; font: 16px/1.4 system-ui, sans-serif;
  overflow: hidden; }}
#show {{ position: fixed; inset: 0; }}
.slide {{ position: absolute; inset: 0; margin: 0; opacity: 0; visibility: hidden;
  transition: opacity .6s, visibility .6s; }}
.slide.active {{ opacity: 1; visibility: visible; }}
.slide img {{ width: 100%; height: 100%; object-fit: contain; display: block; }}
.slide figcaption {{ position: absolute; left: 0; right: 0; bottom: 0; padding: 1.2em 1.5em 3.6em;
  background: linear-gradient(transparent, rgba(0,0,0,.65)); text-shadow: 0 1px 2px #000; font-size: 1.15em; }}
#bar {{ position: fixed; left: 0; right: 0; bottom: 0; display: flex; gap: .5em; align-items: center;
  justify-content: center; padding: .6em; opacity: .25; transition: opacity .3s; }}
#bar:hover, #bar:focus-within {{ opacity: 1; }}
#bar button {{ background: rgba(255,255,255,.15); color: #fff; border: 0; border-radius: 4px; padding: .45em .9em;
  font-size: 1em; cursor: pointer; }}
#counter {{ min-width: 6em; text-align: center; }}
</style>
</head>
<body>
<div id="show" aria-live="polite">
{figures}
</div>
<div id="bar">
<button id="prev" type="button" aria-label="previous photo" title="previous (←)">&#9664;</button>
<button id="play" type="button" aria-label="pause" title="play / pause (space)">&#10074;&#10074;</button>
<button id="next" type="button" aria-label="next photo" title="next (→)">&#9654;</button>
<span id="counter">1 / {count}</span>
<button id="full" type="button" aria-label="full screen" title="full screen (f)">&#x26F6;</button>
</div>
<script>
(function () {{
  "use strict";
  var seconds = {seconds};
  var slides = Array.prototype.slice.call(document.querySelectorAll(".slide"));
  var current = 0, timer = null, playing = true;
  var counter = document.getElementById("counter"), play = document.getElementById("play");
  function load(i) {{
    var img = slides[i] && slides[i].querySelector("img");
    if (img && !img.getAttribute("src")) img.setAttribute("src", img.getAttribute("data-src"));
  }}
  function show(i) {{
    if (!slides.length) return;
    i = (i + slides.length) % slides.length;
    slides[current].classList.remove("active");
    current = i;
    slides[current].classList.add("active");
    load(current); load(current + 1); load(current - 1);
    counter.textContent = (current + 1) + " / " + slides.length;
    document.body.setAttribute("data-current", String(current));
    if (playing) schedule();
  }}
  function schedule() {{
    clearTimeout(timer);
    timer = setTimeout(function () {{ show(current + 1); }}, seconds * 1000);
  }}
  function setPlaying(on) {{
    playing = on;
    play.innerHTML = on ? "&#10074;&#10074;" : "&#9654;&#xFE0E;";
    play.setAttribute("aria-label", on ? "pause" : "play");
    if (on) schedule(); else clearTimeout(timer);
  }}
  function fullscreen() {{
    var el = document.documentElement;
    if (document.fullscreenElement) document.exitFullscreen();
    else if (el.requestFullscreen) el.requestFullscreen();
  }}
  document.getElementById("prev").onclick = function () {{ show(current - 1); }};
  document.getElementById("next").onclick = function () {{ show(current + 1); }};
  play.onclick = function () {{ setPlaying(!playing); }};
  document.getElementById("full").onclick = fullscreen;
  document.addEventListener("keydown", function (e) {{
    if (e.key === "ArrowRight" || e.key === "PageDown") show(current + 1);
    else if (e.key === "ArrowLeft" || e.key === "PageUp") show(current - 1);
    else if (e.key === " ") {{ setPlaying(!playing); e.preventDefault(); }}
    else if (e.key === "f" || e.key === "F") fullscreen();
    else if (e.key === "Home") show(0);
    else if (e.key === "End") show(slides.length - 1);
  }});
  var x0 = null;
  document.addEventListener("touchstart", function (e) {{ x0 = e.touches[0].clientX; }});
  document.addEventListener("touchend", function (e) {{
    if (x0 === null) return;
    var dx = e.changedTouches[0].clientX - x0; x0 = null;
    if (Math.abs(dx) > 40) show(current + (dx < 0 ? 1 : -1));
  }});
  show(0);
}})();
</script>
</body>
</html>
"""


def html_page(selection: Selection, shown: Sequence[tuple[Slide, str, tuple[int, int]]], seconds: float) -> str:
    """index.html: every name and caption goes through ``html.escape``; no external file,
    font or script, so the folder plays offline from a USB stick."""
    esc = html_lib.escape
    figures = []
    for i, (slide, src, (w, h)) in enumerate(shown):
        caption = slide.caption()
        # the first image loads at once (it shows even before the script runs); the rest on demand
        attr = "src" if i == 0 else "data-src"
        figures.append(
            f'<figure class="slide{" active" if i == 0 else ""}" data-index="{i}">'
            f'<img {attr}="{esc(src)}" width="{w}" height="{h}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")
    names = ", ".join(p.name for p in selection.people)
    title = f"{names} — {len(shown)} photos"
    return _HTML_TEMPLATE.format(title=esc(title), figures="\n".join(figures), count=len(shown),
                                 seconds=json.dumps(float(seconds)))


# --- mp4 ------------------------------------------------------------------------------------

@cache
def _setpriv() -> str | None:
    """util-linux's setpriv, if it takes --pdeathsig here (it is older than 2.33 elsewhere)."""
    exe = shutil.which("setpriv")
    if exe is None:
        return None
    try:
        ok = subprocess.run([exe, "--pdeathsig", "KILL", "--", "true"], check=False, capture_output=True,
                            timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return None
    return exe if ok else None


#: run as ``python -c`` before exec'ing ffmpeg where setpriv is missing: the same prctl,
#: then a check that the parent did not die before it took effect
_PDEATHSIG_LAUNCHER = ("import ctypes, os, sys\n"
                       "ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)\n"  # PR_SET_PDEATHSIG, SIGKILL
                       "os.getppid() == int(sys.argv[1]) or os._exit(137)\n"
                       "os.execv(sys.argv[2], sys.argv[2:])")


def _dies_with_us(cmd: list[str]) -> list[str]:
    """``cmd`` so that it is killed when the thread that starts it dies, ``kill -9``
    included: an encoder left running would go on writing video of the person into a
    folder nobody will clean. Linux's PR_SET_PDEATHSIG is set in the child before exec
    (by setpriv, else by a few lines of Python: subprocess's preexec_fn is not safe in the
    dashboard's threads). Elsewhere ``cmd`` is unchanged."""
    if not sys.platform.startswith("linux"):
        return cmd
    setpriv = _setpriv()
    if setpriv is not None:
        return [setpriv, "--pdeathsig", "KILL", "--", *cmd]
    return [sys.executable, "-I", "-S", "-c", _PDEATHSIG_LAUNCHER, str(os.getpid()), *cmd]


def ffmpeg_exe() -> str:
    """ffmpeg from the imageio-ffmpeg wheel: no system ffmpeg needed."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise ExportError("mp4 export needs the imageio-ffmpeg package (pip install imageio-ffmpeg)") from exc
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:  # pragma: no cover - wheel without a binary for this platform
        raise ExportError(f"no ffmpeg binary available: {exc}") from exc


def _zoom_filter(w: int, h: int, src_w: int, src_h: int, zoom: float, fx: float, fy: float, frames: int) -> str:
    """ffmpeg filters turning one still frame (the start rectangle at ``src_w`` x ``src_h``)
    into ``frames`` frames of a zoom about the point (fx, fy) (fractions of the frame).

    Each frame scales the still so the zoomed rectangle is exactly ``w`` x ``h``, then crops
    it: the rectangle's left edge sits at fx * (scaled width - w), which is where the
    homothety of :func:`zoom_rect` puts it. (crop's ``iw`` is fixed when the filter is set
    up, so the offsets are computed from the frame number, like the scale.)
    """
    last = max(1, frames - 1)
    t = f"clip(n/{last},0,1)"
    z = f"(1+{zoom - 1:.6f}*{t}*{t}*(3-2*{t}))"
    # converting to yuv420p once, before the per-frame scale, halves the bytes scaled per frame
    return (f"format=yuv420p,loop=loop={frames - 1}:size=1:start=0,"
            f"scale=w='max({w},round({w}*{z}))':h='max({h},round({h}*{z}))':eval=frame:flags=bicubic,"
            f"crop={w}:{h}:'{fx * w:.4f}*({z}-1)':'{fy * h:.4f}*({z}-1)'")


def _render_mp4(selection: Selection, built: Path, work: Path, dims: tuple[int, int], seconds: float,
                link: bool, report: ExportReport, step: Callable[[int], None]) -> None:
    """One short H.264 segment per photo (ffmpeg does the per-frame zoom), then joined
    without re-encoding. Up to :data:`MP4_ENCODERS` segments are encoded at once while
    Python decodes the next photo."""
    exe = ffmpeg_exe()
    w, h = dims
    frames = max(1, round(seconds * FPS))
    segments: list[Path] = []
    running: list[tuple[subprocess.Popen, Path]] = []   # oldest first

    def finish(proc: subprocess.Popen, log: Path) -> None:
        if proc.wait() != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise ExportError(f"ffmpeg failed: {' / '.join(tail) or f'exit code {proc.returncode}'}")

    try:
        for i, slide in enumerate(selection.slides, 1):
            full = _full_size(slide)
            try:
                if full is None:
                    probe = open_image(slide.file, max_size=64)   # the original's size, decoded small
                    full = (probe.width, probe.height)
                start = focus_crop(full[0], full[1], w / h, slide.focus)
                zoom, px, py = ken_burns(start, slide.focus)
                # the still carries enough pixels for the most zoomed frame
                src_w = max(w, round(w * zoom)) // 2 * 2
                src_h = max(h, round(h * zoom)) // 2 * 2
                still = render_region(slide, start, src_w, src_h)
            except UnreadableImage as exc:
                report.skipped.append((slide.path, str(exc)))
                step(i)
                continue
            fx = (px - start[0]) / (start[2] - start[0])
            fy = (py - start[1]) / (start[3] - start[1])
            seg = work / f"seg{i:06d}.mp4"
            log = work / f"seg{i:06d}.log"
            cmd = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                   "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{src_w}x{src_h}", "-r", str(FPS), "-i", "-",
                   "-vf", _zoom_filter(w, h, src_w, src_h, zoom, fx, fy, frames),
                   "-frames:v", str(frames), "-threads", "1", "-filter_threads", "1",
                   "-c:v", "libx264", "-preset", X264_PRESET, "-crf", str(X264_CRF),
                   *(["-x264-params", X264_PARAMS] if X264_PARAMS else []),
                   "-pix_fmt", "yuv420p", "-r", str(FPS), "-video_track_timescale", str(FPS * 512), str(seg)]
            data = still.tobytes()
            del still
            while len(running) >= MP4_ENCODERS:
                finish(*running.pop(0))
            with open(log, "wb") as log_file:
                proc = subprocess.Popen(_dies_with_us(cmd), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=log_file)
            running.append((proc, log))
            try:
                assert proc.stdin is not None  # stdin=PIPE
                proc.stdin.write(data)
                proc.stdin.close()
            except BrokenPipeError:
                pass  # ffmpeg died; finish() reports why
            del data
            segments.append(seg)
            report.photos += 1
            if not slide.dated:
                report.undated.append(slide.path)
            step(i)
        while running:
            finish(*running.pop(0))
    finally:
        for proc, _ in running:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    if not segments:
        return
    listing = work / "segments.txt"
    listing.write_text("".join(f"file '{p.name}'\n" for p in segments), encoding="utf-8")
    log = work / "concat.log"
    with open(log, "wb") as log_file:
        rc = subprocess.run(_dies_with_us([exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "concat",
                                           "-safe", "0", "-i", str(listing), "-c", "copy", "-movflags", "+faststart",
                                           str(built)]),
                            check=False, stdout=subprocess.DEVNULL, stderr=log_file, cwd=work).returncode
    if rc != 0:
        raise ExportError(f"ffmpeg could not join the video: {log.read_text(errors='replace').strip()[-300:]}")
    report.seconds = report.photos * frames / FPS
