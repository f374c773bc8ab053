"""The scanner: list files → decide what changed → decode+detect+embed in workers →
commit in batches.

Each stage is a plain function. What the scanner promises:

* **incremental**: an unchanged file (same size and mtime) is not opened at all; a file
  whose size/mtime changed but whose content hash did not is only re-stamped;
* **moves keep labels**: a photo that vanished from one path and appears at another
  with the same content hash keeps its row, faces and labels;
* **edits keep labels**: when a file's content changes, the new faces inherit the
  person/decisions of the old face they match (embedding distance), and user-confirmed
  faces that no longer match anything are kept rather than dropped;
* **crash-safe**: a photo and its faces are written in one transaction, batches commit
  as they finish, and a file counts as scanned only once committed — a kill loses at
  most one batch and the next run carries on without duplicates;
* **bad files are values**: each gets a Photo row with ``status=error`` and a reason;
  the scan goes on.
"""
from __future__ import annotations

import difflib
import errno
import hashlib
import math
import multiprocessing
import os
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.orm import Session

from . import faces as face_api
from .config import Settings
from .db import Library
from .errors import PhotoRootError, UnreadableImage
from .imaging import crop_thumbnail, is_image_name, open_image, open_regular
from .models import (
    Assignment,
    Face,
    FaceRejection,
    FaceThumb,
    Person,
    Photo,
    PhotoStatus,
    ScanRun,
    embedding_from_bytes,
    embedding_to_bytes,
    utcnow,
)

#: a re-done photo's new face inherits an old face's labels when this close (same person,
#: same photo: re-detections of one face land well under 0.2; different people in one
#: photo are far above)
RELABEL_DISTANCE = 0.35
HASH_CHUNK = 1 << 20
#: a batch is also committed when this many seconds passed since the last commit, so a
#: slow scan loses little to a crash; a module setting so tests can switch it off
#: (``math.inf``) and count batches independently of the machine's speed
COMMIT_INTERVAL_S = 5.0
#: longest time one file may take to read, decode and analyse in a worker before it is
#: recorded as failed. The slowest real case measured is the cnn detector on a CPU at
#: upsample 4, far below this; a file that takes longer is stuck (a device or a network
#: file that never answers), and one stuck file must not hold up the whole scan
FILE_TIME_LIMIT_S = 600.0


# ---------------------------------------------------------------------------------------
# results and progress


@dataclass
class ScanProgress:
    done: int
    total: int
    faces: int
    failed: int
    path: str = ""


ProgressCallback = Callable[[ScanProgress], None]


@dataclass
class ScanReport:
    root: str
    files_seen: int = 0
    unchanged: int = 0
    new: int = 0
    changed: int = 0
    restamped: int = 0
    moved: int = 0
    removed: int = 0
    kept_missing: int = 0
    failed: int = 0
    faces_added: int = 0
    faces_removed: int = 0
    labels_carried: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    removal_skipped: int = 0
    #: known photos in folders that could not be listed: kept as they are, not removed
    unreadable_kept: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def processed(self) -> int:
        return self.new + self.changed + self.failed

    def summary(self) -> str:
        parts = [
            f"{self.new} new", f"{self.changed} changed", f"{self.moved} moved", f"{self.removed} removed",
            f"{self.unchanged} unchanged", f"{self.failed} failed", f"{self.faces_added} faces found",
        ]
        if self.kept_missing:
            parts.append(f"{self.kept_missing} missing photos kept (they hold confirmed faces)")
        if self.unreadable_kept:
            parts.append(f"{self.unreadable_kept} photos kept in folders that could not be read (not removed)")
        if self.removal_skipped:
            parts.append(f"{self.removal_skipped} missing photos not removed (whole library looks unplugged)")
        return ", ".join(parts) + f" in {self.seconds:.1f}s"


# ---------------------------------------------------------------------------------------
# stage 1: list files


@dataclass(frozen=True)
class FileEntry:
    rel: str
    size: int
    mtime: float


@dataclass(frozen=True)
class ListingError:
    """Something the listing could not look at. Every one protects the known photos at
    ``rel`` and under it from being taken as deleted: what cannot be seen is not gone."""

    rel: str
    reason: str
    #: a photo file (recorded as a failed photo) rather than a folder
    is_file: bool = True
    #: False for a name that is not valid UTF-8: the database cannot hold it, so it is
    #: reported but gets no row (``rel`` is then a printable form, not the real name)
    storable: bool = True
    #: an entry that could not be looked at at all (it may be a folder, or a link to a
    #: folder on an unplugged disk): reported only when it protects known photos
    maybe_folder: bool = False


def _utf8(name: str) -> bool:
    """Whether a name read from the file system is valid UTF-8 (Python hands invalid
    bytes over as lone surrogates, which SQLite, JSON and a terminal all refuse)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_name(name: str) -> str:
    """A non-UTF-8 name as text: ``b"Caf\\xe9.jpg"`` reads ``Caf\\xe9.jpg``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _within(path: str, folders: list[str]) -> bool:
    for folder in folders:
        try:
            if os.path.commonpath([folder, path]) == folder:
                return True
        except ValueError:  # different drives (Windows)
            continue
    return False


def _stat_failure(exc: OSError, *, is_file: bool = True) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENOENT:
        return "broken symbolic link"
    return f"cannot read file: {exc.strerror}" if is_file else f"cannot be looked at: {exc.strerror}"


def list_files(root: Path) -> Iterator[FileEntry | ListingError]:
    """Every image file under ``root`` (following folder links, never looping).

    Hidden files and folders (".name") are skipped: they hold thumbnails caches and
    the like, not photos. A link to a *file* is followed only if its real path lies
    inside the root or inside a folder that a followed folder link leads to; one that
    leads elsewhere is recorded as failed with the reason, so a link planted in the
    photo folder cannot pull an outside file into the library (the dashboard re-checks
    real paths when serving). File links are judged after the whole walk, so the answer
    does not depend on the order in which folders are visited.
    """
    seen_dirs: set[tuple[int, int]] = set()
    try:
        st = os.stat(root)
    except OSError as exc:
        raise PhotoRootError(f"photo folder {root} cannot be read: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise PhotoRootError(f"{root} is not a folder")
    seen_dirs.add((st.st_dev, st.st_ino))
    allowed = [os.path.realpath(root)]
    file_links: list[tuple[str, Path, os.stat_result]] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            rel = folder.relative_to(root).as_posix() or "."
            yield ListingError(rel, f"folder cannot be read: {exc.strerror}", is_file=False)
            continue
        subdirs: list[Path] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            rel = path.relative_to(root).as_posix()
            if not _utf8(entry.name):
                yield from _undecodable(entry, printable_name(rel))
                continue
            try:
                est = entry.stat(follow_symlinks=True)
            except OSError as exc:
                if is_image_name(entry.name):
                    yield ListingError(rel, _stat_failure(exc))
                else:
                    yield ListingError(rel, _stat_failure(exc, is_file=False), is_file=False, maybe_folder=True)
                continue
            if stat.S_ISDIR(est.st_mode):
                key = (est.st_dev, est.st_ino)
                if key in seen_dirs:
                    continue  # a folder link back into the tree: already walked
                seen_dirs.add(key)
                if entry.is_symlink():
                    allowed.append(os.path.realpath(path))
                subdirs.append(path)
            elif stat.S_ISREG(est.st_mode) and is_image_name(entry.name):
                if entry.is_symlink():
                    file_links.append((rel, path, est))
                else:
                    yield FileEntry(rel, est.st_size, est.st_mtime)
        stack.extend(reversed(subdirs))
    for rel, path, est in file_links:
        if _within(os.path.realpath(path), allowed):
            yield FileEntry(rel, est.st_size, est.st_mtime)
        else:
            yield ListingError(rel, "symbolic link to a file outside the photo folder: not followed")


def _undecodable(entry: os.DirEntry, shown: str) -> Iterator[ListingError]:
    """A name that is not valid UTF-8 (an old camera's or a zip's Latin-1 "Caf\\xe9.jpg"):
    reported with the way out, never a crash; a folder so named is not walked."""
    try:
        is_dir = entry.is_dir()
    except OSError:
        is_dir = False
    if is_dir:
        yield ListingError(shown, "folder name is not valid UTF-8: rename the folder to scan the photos in it",
                           is_file=False, storable=False)
    elif is_image_name(entry.name):
        yield ListingError(shown, "file name is not valid UTF-8: rename the file to scan it", storable=False)


def file_hash(path: Path) -> str:
    """The content hash, read through :func:`~organizer.imaging.open_regular`: a file
    swapped for a pipe or a device after listing is refused instead of read forever."""
    h = hashlib.blake2b(digest_size=20)
    with open_regular(path) as fh:
        while chunk := fh.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------
# stage 2: decide what changed


@dataclass
class KnownPhoto:
    id: int
    path: str
    size: int
    mtime: float
    content_hash: str | None
    status: PhotoStatus
    #: what the user told us about this photo's faces: (confirmed faces, other answers:
    #: named, "not a face", "not this person"); pairs identical files with the right row
    user_data: tuple[int, int] = (0, 0)


@dataclass
class ScanPlan:
    unchanged: list[FileEntry] = field(default_factory=list)
    #: files to decode: (entry, id of the existing row at that path or None, known hash or None)
    todo: list[tuple[FileEntry, int | None, str | None]] = field(default_factory=list)
    restamp: list[tuple[int, FileEntry]] = field(default_factory=list)
    moves: list[tuple[int, FileEntry]] = field(default_factory=list)
    #: (id of a vanished row holding user data, id of the unlabelled row of an identical
    #: file that is still there, that file): the first takes the second's place
    adoptions: list[tuple[int, int, FileEntry]] = field(default_factory=list)
    vanished: list[KnownPhoto] = field(default_factory=list)
    #: known photos under a folder that could not be listed: neither seen nor gone
    unreadable: list[KnownPhoto] = field(default_factory=list)
    listing_errors: list[ListingError] = field(default_factory=list)


def load_known(library: Library) -> dict[str, KnownPhoto]:
    with library.session() as s:
        def per_photo(q: Select[int, int]) -> dict[int, int]:
            return {pid: n for pid, n in s.execute(q.group_by(Face.photo_id))}

        count = select(Face.photo_id, func.count())
        confirmed = per_photo(count.where(Face.assignment == Assignment.confirmed))
        answers = per_photo(count.where(or_(Face.person_id.is_not(None), Face.is_face.is_(False))))
        rejected = per_photo(count.join(FaceRejection, FaceRejection.face_id == Face.id))
        rows = s.execute(select(Photo.id, Photo.path, Photo.size, Photo.mtime, Photo.content_hash, Photo.status))
        return {r.path: KnownPhoto(r.id, r.path, r.size, r.mtime, r.content_hash, r.status,
                                   (confirmed.get(r.id, 0), answers.get(r.id, 0) + rejected.get(r.id, 0)))
                for r in rows}


def _under(path: str, folders: list[str]) -> bool:
    return any(f == "." or path.startswith(f + "/") for f in folders)


def _path_likeness(a: str, b: str, *, closely: bool = True) -> tuple[bool, float]:
    """How alike two paths are, to pair identical files with rows: same folder first,
    then how similar the whole paths read (dup1.jpg is closer to dup1b.jpg than dup2.jpg).
    ``closely=False`` skips the character comparison (hundreds of copies of one file)."""
    same_folder = a.rpartition("/")[0] == b.rpartition("/")[0]
    return same_folder, difflib.SequenceMatcher(None, a, b).ratio() if closely else 0.0


def _pair_by_hash(rows: list[KnownPhoto],
                  files: list[tuple[FileEntry, str | None]]) -> list[tuple[KnownPhoto, FileEntry]]:
    """Pair known rows with files of the same content, the rows holding the most user
    data first, each with the file whose path is most like its own.

    Several rows can share one hash (copies of one photo); keeping one per hash paired
    an unlabelled copy and left the label on a row whose file was gone.
    """
    groups: dict[str, tuple[list[KnownPhoto], list[FileEntry]]] = {}
    for k in rows:
        if k.content_hash:
            groups.setdefault(k.content_hash, ([], []))[0].append(k)
    for e, h in files:
        if h in groups:
            groups[h][1].append(e)
    pairs: list[tuple[KnownPhoto, FileEntry]] = []
    for group_rows, group_files in groups.values():
        closely = len(group_rows) * len(group_files) <= 2500
        options = sorted(((k.user_data, _path_likeness(k.path, e.rel, closely=closely), -i, -j, k, e)
                          for i, k in enumerate(group_rows) for j, e in enumerate(group_files)),
                         key=lambda o: o[:4], reverse=True)
        rows_taken: set[int] = set()
        files_taken: set[str] = set()
        for *_, k, e in options:
            if k.id not in rows_taken and e.rel not in files_taken:
                rows_taken.add(k.id)
                files_taken.add(e.rel)
                pairs.append((k, e))
    return pairs


def plan_scan(root: Path, known: dict[str, KnownPhoto], entries: Iterable[FileEntry | ListingError],
              hasher: Callable[[list[Path]], list[str | None]]) -> ScanPlan:
    """Sort files into unchanged / to re-stamp / moved / to decode, touching no pixels.

    Content hashes are computed only where they can save work: for files whose size or
    mtime changed (maybe a mere touch or a copy), and for new files when some known
    photos vanished (maybe a move).

    A known photo is taken as gone only when the listing looked everywhere it could be:
    one under a folder (or a folder link) that could not be listed, at any depth, is
    kept as it is and reported, like the photos of an unplugged disk.
    """
    plan = ScanPlan()
    seen: set[str] = set()
    fresh: list[FileEntry] = []
    changed: list[tuple[FileEntry, KnownPhoto]] = []
    errors: list[ListingError] = []
    for e in entries:
        if isinstance(e, ListingError):
            errors.append(e)
            seen.add(e.rel)
            continue
        seen.add(e.rel)
        k = known.get(e.rel)
        if k is None:
            fresh.append(e)
        elif k.status == PhotoStatus.ok and k.size == e.size and abs(k.mtime - e.mtime) < 1e-3:
            plan.unchanged.append(e)
        else:
            changed.append((e, k))
    blind = [e.rel for e in errors]
    unseen = [k for path, k in known.items() if path not in seen]
    plan.unreadable = [k for k in unseen if _under(k.path, blind) and k.status != PhotoStatus.missing]
    hidden = {k.id for k in plan.unreadable}
    plan.listing_errors = [e for e in errors
                           if not e.maybe_folder or any(_under(k.path, [e.rel]) for k in plan.unreadable)]
    plan.vanished = [k for k in unseen if k.status != PhotoStatus.missing and k.id not in hidden]
    missing = [k for k in unseen if k.status == PhotoStatus.missing]
    # a photo that was already missing can come back under another path: count it as vanished for matching
    movable = [k for k in plan.vanished + missing if k.content_hash]

    changed_hashes = hasher([root / e.rel for e, _ in changed]) if changed else []
    for (e, k), h in zip(changed, changed_hashes, strict=True):  # the hasher gives one hash per path
        if h is not None and h == k.content_hash and k.status != PhotoStatus.error:
            plan.restamp.append((k.id, e))
        else:
            plan.todo.append((e, k.id, h))

    fresh_hashes = hasher([root / e.rel for e in fresh]) if (fresh and movable) else [None] * len(fresh)
    moved = _pair_by_hash(movable, list(zip(fresh, fresh_hashes, strict=True)))
    plan.moves = [(k.id, e) for k, e in moved]
    paired = {e.rel for _, e in moved}
    plan.todo += [(e, None, h) for e, h in zip(fresh, fresh_hashes, strict=True) if e.rel not in paired]
    _plan_adoptions(plan, known, [k for k in movable if k.user_data > (0, 0)], {k.id for k, _ in moved})
    moved_ids = {pid for pid, _ in plan.moves} | {ghost for ghost, _, _ in plan.adoptions}
    plan.vanished = [k for k in plan.vanished if k.id not in moved_ids]
    return plan


def _plan_adoptions(plan: ScanPlan, known: dict[str, KnownPhoto], labelled: list[KnownPhoto], moved: set[int]) -> None:
    """A labelled photo is gone but an identical, unlabelled copy is still there: the
    labelled row takes the copy's place, so the user's answers stay on a real file
    instead of a "missing" row next to the same face unlabelled."""
    labelled = [k for k in labelled if k.id not in moved]
    if not labelled:
        return
    present = [(e, known[e.rel]) for e in plan.unchanged] + [(e, known[e.rel]) for _, e in plan.restamp]
    bare = [(e, k.content_hash) for e, k in present if k.user_data == (0, 0) and k.status == PhotoStatus.ok]
    for ghost, e in _pair_by_hash(labelled, bare):
        plan.adoptions.append((ghost.id, known[e.rel].id, e))
    adopted = {e.rel for _, _, e in plan.adoptions}
    plan.unchanged = [e for e in plan.unchanged if e.rel not in adopted]
    plan.restamp = [(pid, e) for pid, e in plan.restamp if e.rel not in adopted]


def hash_files(paths: list[Path], threads: int = 4) -> list[str | None]:
    def one(p: Path) -> str | None:
        try:
            return file_hash(p)
        except (OSError, UnreadableImage):  # gone, unreadable, or no longer a regular file
            return None

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, paths))


# ---------------------------------------------------------------------------------------
# stage 3: decode, detect, embed (runs in worker processes)


@dataclass
class FaceResult:
    box: tuple[int, int, int, int]        # original upright pixels
    landmarks: dict[str, list[list[int]]]  # original upright pixels
    embedding: bytes
    size: int
    quality: float
    thumb: bytes
    #: what computed the embedding (Face.embedding_engine)
    engine: str = face_api.DLIB_ENGINE


@dataclass
class FileResult:
    rel: str
    size: int
    mtime: float
    content_hash: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: datetime | None = None
    taken_at_source: str | None = None
    faces: list[FaceResult] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class DetectOptions:
    model: str = "hog"
    upsample: int = 1
    max_size: int = 1600
    max_pixels: int = 180_000_000
    thumb_size: int = 128
    #: seconds one file may take (see FILE_TIME_LIMIT_S)
    time_limit: float = FILE_TIME_LIMIT_S

    @classmethod
    def from_settings(cls, s: Settings) -> DetectOptions:
        return cls(s.model, s.upsample, s.max_size, s.max_pixels, s.thumb_size, FILE_TIME_LIMIT_S)

    @property
    def label(self) -> str:
        return f"{self.model}/u{self.upsample}/{self.max_size}"


class FileTimeout(Exception):
    """One file took longer than its time limit (raised by the alarm inside the worker)."""


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`FileTimeout` in this thread after ``seconds``.

    An alarm signal interrupts a read that blocks (a file on a device or a network share
    that never answers) as well as Python code; it needs the main thread of its process,
    which is where pool workers and the one-worker scan run their files. Elsewhere (a
    scan started from a thread) files run without a limit.
    """
    usable = (seconds > 0 and math.isfinite(seconds) and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise FileTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def analyse_file(root: str, entry: FileEntry, known_hash: str | None, opts: DetectOptions) -> FileResult:
    """Everything the library needs to know about one file, within the file's time limit.
    Never raises for bad files: a stuck one becomes a failed file like a corrupt one."""
    try:
        with _time_limit(opts.time_limit):
            return _analyse(root, entry, known_hash, opts)
    except FileTimeout:
        return FileResult(entry.rel, entry.size, entry.mtime, known_hash,
                          error=f"reading and analysing took longer than {opts.time_limit:g} s: skipped "
                                "(a file on a device or network share that does not answer?)")


def _analyse(root: str, entry: FileEntry, known_hash: str | None, opts: DetectOptions) -> FileResult:
    path = Path(root) / entry.rel
    res = FileResult(entry.rel, entry.size, entry.mtime)
    try:
        res.content_hash = known_hash or file_hash(path)
        img = open_image(path, max_size=opts.max_size, max_pixels=opts.max_pixels)
    except UnreadableImage as exc:
        res.error = str(exc)
        return res
    except OSError as exc:
        res.error = f"cannot read file: {exc.strerror or exc}"
        return res
    res.width, res.height = img.width, img.height
    if img.taken_at:
        res.taken_at, res.taken_at_source = img.taken_at, "exif"
    else:
        res.taken_at, res.taken_at_source = datetime.fromtimestamp(entry.mtime), "file"
    try:
        boxes = face_api.detect(img.pixels, model=opts.model, upsample=opts.upsample)
        detected = face_api.embed(img.pixels, boxes)
    except (RuntimeError, MemoryError) as exc:  # dlib signals trouble as RuntimeError
        res.error = f"face detection failed: {exc}"
        return res
    inv = 1.0 / img.scale if img.scale else 1.0
    for d in detected:
        top, right, bottom, left = d.box
        box = (round(top * inv), round(right * inv), round(bottom * inv), round(left * inv))
        size = min(box[2] - box[0], box[1] - box[3])
        landmarks = {k: [[round(x * inv), round(y * inv)] for x, y in pts] for k, pts in d.landmarks.items()}
        res.faces.append(FaceResult(
            box=box, landmarks=landmarks, embedding=embedding_to_bytes(d.embedding), size=size,
            quality=face_api.quality_score(size, d.sharpness, d.frontal),
            thumb=crop_thumbnail(img.pixels, d.box, opts.thumb_size), engine=d.engine,
        ))
    return res


def _worker_init() -> None:
    face_api.warm_up()


class _Runner:
    """Runs analyse_file over many files in worker processes, in bounded flight.

    If a worker dies (a decoder crash on a hostile file), the pool is rebuilt and the
    files that were in flight are retried one at a time, so only the file that really
    kills the worker is recorded as failed.
    """

    def __init__(self, root: Path, opts: DetectOptions, workers: int) -> None:
        self.root, self.opts, self.workers = str(root), opts, workers
        self.pool: ProcessPoolExecutor | None = None

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            # the fork server loads dlib's models and the checked embedding engine once
            # (organizer.scan_worker_preload) and every worker is forked with them in
            # memory, instead of each worker loading and checking its own copy: 0.8 s off
            # the start of every scan on 2 cores, and the model pages are shared
            ctx.set_forkserver_preload([__name__, "organizer.scan_worker_preload"])
        else:
            # spawned workers load their own models, but the engine file is built here,
            # once, rather than by every worker at the same time on a first scan
            face_api.prepare_engine()
        return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init)

    def run(self, todo: list[tuple[FileEntry, int | None, str | None]]) -> Iterator[FileResult]:
        if self.workers <= 1:
            for entry, _, h in todo:
                yield analyse_file(self.root, entry, h, self.opts)
            return
        # biggest files first (size as the proxy for decode and detection time): a big
        # photo started last would keep one core busy while the others wait at the end
        todo = sorted(todo, key=lambda item: -item[0].size)
        self.pool = self._new_pool(self.workers)
        try:
            yield from self._run_pool(todo)
        finally:
            self.pool.shutdown(wait=False, cancel_futures=True)

    def _run_pool(self, todo: list[tuple[FileEntry, int | None, str | None]]) -> Iterator[FileResult]:
        queue = list(reversed(todo))
        in_flight: dict[Future, tuple[FileEntry, int | None, str | None]] = {}
        limit = self.workers * 4
        suspects: list[tuple[FileEntry, int | None, str | None]] = []
        while queue or in_flight:
            while queue and len(in_flight) < limit:
                item = queue.pop()
                assert self.pool is not None
                in_flight[self.pool.submit(analyse_file, self.root, item[0], item[2], self.opts)] = item
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            broken = False
            for fut in done:
                item = in_flight.pop(fut)
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    broken = True
                    suspects.append(item)
            if broken:
                suspects.extend(in_flight.values())
                in_flight.clear()
                assert self.pool is not None
                self.pool.shutdown(wait=False, cancel_futures=True)
                for item in suspects:
                    yield self._isolated(item)
                suspects.clear()
                self.pool = self._new_pool(self.workers)

    def _isolated(self, item: tuple[FileEntry, int | None, str | None]) -> FileResult:
        entry, _, h = item
        with self._new_pool(1) as pool:
            try:
                return pool.submit(analyse_file, self.root, entry, h, self.opts).result()
            except BrokenProcessPool:
                return FileResult(entry.rel, entry.size, entry.mtime, h, error="the image decoder crashed on this file")


# ---------------------------------------------------------------------------------------
# stage 4: commit


def _carry_labels(s: Session, photo_id: int, new_faces: list[Face]) -> int:
    """Move the user's decisions from a photo's old faces to its re-detected faces.

    Returns how many old faces handed their labels on. User-confirmed or user-rejected
    old faces that match nothing are kept (never silently dropped); the rest go.
    """
    new_ids = [f.id for f in new_faces if f.id]
    old = list(s.scalars(select(Face).where(Face.photo_id == photo_id, Face.id.not_in(new_ids))))
    if not old:
        return 0
    carried = 0
    rejections: dict[int, list[int]] = {}
    for f in old:
        rejections[f.id] = list(s.scalars(select(FaceRejection.person_id).where(FaceRejection.face_id == f.id)))
    taken: set[int] = set()
    keep: set[int] = set()
    for nf in new_faces:
        vec = embedding_from_bytes(nf.embedding)
        best, best_d = None, RELABEL_DISTANCE
        for of in old:
            if of.id in taken:
                continue
            d = float(np.linalg.norm(of.vector - vec))
            if d < best_d:
                best, best_d = of, d
        if best is None:
            continue
        taken.add(best.id)
        if best.person_id is not None or not best.is_face or rejections[best.id]:
            nf.person_id, nf.assignment = best.person_id, best.assignment
            nf.confidence, nf.is_face = best.confidence, best.is_face
            nf.cluster_id = best.cluster_id
            s.flush()
            for pid in rejections[best.id]:
                s.add(FaceRejection(face_id=nf.id, person_id=pid))
            s.execute(update(Person).where(Person.cover_face_id == best.id).values(cover_face_id=nf.id))
            carried += 1
    for of in old:
        if of.id not in taken and (of.assignment == Assignment.confirmed or rejections[of.id] or not of.is_face):
            keep.add(of.id)
    drop = [f.id for f in old if f.id not in keep]
    if drop:
        s.execute(delete(Face).where(Face.id.in_(drop)))
    return carried


def _face_rows(res: FileResult, detector: str) -> list[tuple[Face, bytes]]:
    rows = []
    for fr in res.faces:
        top, right, bottom, left = fr.box
        face = Face(top=top, right=right, bottom=bottom, left=left, landmarks=fr.landmarks, embedding=fr.embedding,
                    embedding_engine=fr.engine, detector=detector, size=fr.size, quality=fr.quality, is_face=True)
        rows.append((face, fr.thumb))
    return rows


def commit_results(library: Library, batch: list[tuple[FileResult, int | None]], detector: str,
                   report: ScanReport) -> None:
    """Write a batch of analysed files in one transaction (all or nothing)."""
    with library.session() as s:
        for res, existing_id in batch:
            photo = s.get(Photo, existing_id) if existing_id else None
            if photo is None:
                photo = s.scalar(select(Photo).where(Photo.path == res.rel))
            is_new = photo is None
            if photo is None:
                photo = Photo(path=res.rel)
                s.add(photo)
            photo.size, photo.mtime, photo.scanned_at = res.size, res.mtime, utcnow()
            if res.error:
                # keep whatever faces a previously readable version had: a read error is
                # no reason to forget labels
                photo.status, photo.error = PhotoStatus.error, res.error
                photo.content_hash = res.content_hash or photo.content_hash
                report.failed += 1
                report.errors.append((res.rel, res.error))
                continue
            photo.status, photo.error = PhotoStatus.ok, None
            photo.content_hash, photo.width, photo.height = res.content_hash, res.width, res.height
            photo.taken_at, photo.taken_at_source, photo.detector = res.taken_at, res.taken_at_source, detector
            s.flush()
            new_faces = []
            for face, thumb in _face_rows(res, detector.split("/")[0]):
                face.photo_id = photo.id
                s.add(face)
                new_faces.append((face, thumb))
            s.flush()
            for face, thumb in new_faces:
                s.add(FaceThumb(face_id=face.id, jpeg=thumb))
            if not is_new:
                before = s.scalar(select(func.count()).select_from(Face).where(Face.photo_id == photo.id)) or 0
                report.labels_carried += _carry_labels(s, photo.id, [f for f, _ in new_faces])
                s.flush()
                after = s.scalar(select(func.count()).select_from(Face).where(Face.photo_id == photo.id)) or 0
                report.faces_removed += before - after
                report.changed += 1
            else:
                report.new += 1
            report.faces_added += len(new_faces)


def record_listing_errors(library: Library, errors: list[ListingError], known: dict[str, KnownPhoto],
                          report: ScanReport) -> None:
    with library.session() as s:
        for e in errors:
            report.errors.append((e.rel, e.reason))
            if not e.is_file:
                continue
            report.failed += 1
            if not e.storable:
                continue
            k = known.get(e.rel)
            photo = s.get(Photo, k.id) if k else None
            if photo is None:
                photo = Photo(path=e.rel, size=0, mtime=0.0)
                s.add(photo)
            photo.status, photo.error, photo.scanned_at = PhotoStatus.error, e.reason, utcnow()


def apply_moves_and_restamps(library: Library, plan: ScanPlan, report: ScanReport) -> None:
    """Moves, re-stamps and adoptions (counted as moves) in one transaction."""
    with library.session() as s:
        if plan.adoptions:
            bare = [present for _, present, _ in plan.adoptions]
            report.faces_removed += s.scalar(select(func.count()).select_from(Face).where(Face.photo_id.in_(bare))) or 0
            s.execute(delete(Photo).where(Photo.id.in_(bare)))
        for pid, e in [*plan.moves, *((ghost, e) for ghost, _, e in plan.adoptions)]:
            s.execute(update(Photo).where(Photo.id == pid).values(path=e.rel, size=e.size, mtime=e.mtime,
                                                                  status=PhotoStatus.ok, error=None))
        for pid, e in plan.restamp:
            s.execute(update(Photo).where(Photo.id == pid).values(size=e.size, mtime=e.mtime))
    report.moved += len(plan.moves) + len(plan.adoptions)
    report.restamped += len(plan.restamp)


def remove_vanished(library: Library, vanished: list[KnownPhoto], report: ScanReport) -> None:
    """Forget photos that are gone, except those holding user-confirmed faces (kept as missing)."""
    if not vanished:
        return
    ids = [k.id for k in vanished]
    with library.session() as s:
        keep = set(s.scalars(select(Face.photo_id).where(
            Face.photo_id.in_(ids), Face.assignment == Assignment.confirmed).distinct()))
        drop = [i for i in ids if i not in keep]
        if drop:
            report.faces_removed += s.scalar(select(func.count()).select_from(Face).where(Face.photo_id.in_(drop))) or 0
            s.execute(delete(Photo).where(Photo.id.in_(drop)))
        if keep:
            s.execute(update(Photo).where(Photo.id.in_(keep)).values(status=PhotoStatus.missing,
                                                                     error="file not found at last scan"))
    report.removed += len(ids) - len(keep)
    report.kept_missing += len(keep)


# ---------------------------------------------------------------------------------------
# the whole job


def resolve_root(library: Library, photo_dir: str | Path, *, new_root: bool = False) -> Path:
    """Check the folder against the library; the caller ties it with :func:`tie_root`.

    A library indexes one folder. Scanning another folder is refused unless the caller
    says the library moved there (``new_root``), also while the old folder is missing:
    an unplugged disk is not a move, and taking it for one would forget every photo on it.
    """
    root = Path(photo_dir).expanduser()
    if not root.exists():
        raise PhotoRootError(f"photo folder {root} does not exist")
    if not root.is_dir():
        raise PhotoRootError(f"{root} is not a folder")
    root = root.resolve()
    if not _utf8(str(root)):
        raise PhotoRootError(f"the path of the photo folder {printable_name(str(root))} is not valid UTF-8; "
                             "rename the folder (or a folder above it)")
    old = library.root
    if old is not None and old != root and not new_root:
        if old.exists():
            raise PhotoRootError(
                f"this library indexes {old}; to index {root} use another --db, "
                f"or pass --new-root if the photos moved there")
        raise PhotoRootError(
            f"this library indexes {old}, which is not there now (disk unplugged?); nothing was changed: "
            f"plug it in and scan it, or pass --new-root if the photos moved to {root}")
    return root


def tie_root(library: Library, root: Path, known: dict[str, KnownPhoto], plan: ScanPlan) -> None:
    """Record ``root`` as the library's folder; a move (``--new-root``) only to a folder
    that holds at least one of the library's photos, so a wrong folder is refused before
    anything is forgotten."""
    old = library.root
    if old == root:
        return
    found = (len(plan.unchanged) + len(plan.restamp) + len(plan.moves) + len(plan.adoptions)
             + sum(pid is not None for _, pid, _ in plan.todo))
    if old is not None and known and not found:
        raise PhotoRootError(
            f"none of the library's {len(known)} photos is in {root}, so it is not where they moved; "
            f"nothing was changed (the library still indexes {old}; another photo collection needs another --db)")
    library.set_meta("root", str(root))


def scan(library: Library, photo_dir: str | Path, settings: Settings | None = None,
         progress: ProgressCallback | None = None, *, new_root: bool = False) -> ScanReport:
    """Bring the library up to date with ``photo_dir``; see the module docstring."""
    settings = settings or Settings()
    started = time.monotonic()
    root = resolve_root(library, photo_dir, new_root=new_root)
    opts = DetectOptions.from_settings(settings)
    report = ScanReport(root=str(root))
    known = load_known(library)
    plan = plan_scan(root, known, list_files(root), hash_files)
    tie_root(library, root, known, plan)
    with library.session() as s:
        run = ScanRun(root=str(root), settings={"detector": opts.label, "workers": settings.resolved_workers()})
        s.add(run)
        s.flush()
        run_id = run.id

    report.files_seen = len(plan.unchanged) + len(plan.todo) + len(plan.restamp) + len(plan.moves) + len(
        plan.adoptions) + sum(e.is_file for e in plan.listing_errors)
    report.unchanged = len(plan.unchanged)
    report.unreadable_kept = len(plan.unreadable)
    apply_moves_and_restamps(library, plan, report)
    record_listing_errors(library, plan.listing_errors, known, report)

    total = len(plan.todo)
    done = 0
    batch: list[tuple[FileResult, int | None]] = []
    existing = {e.rel: pid for e, pid, _ in plan.todo}
    last_commit = time.monotonic()
    runner = _Runner(root, opts, min(settings.resolved_workers(), max(1, total)))
    if progress:
        progress(ScanProgress(0, total, 0, report.failed))
    try:
        for res in runner.run(plan.todo):
            if res.error and not os.path.lexists(root / res.rel):
                if root.is_dir() and not _root_empty(root):
                    # deleted while we were scanning: not a bad file; the next scan
                    # sees it gone and forgets it the usual way
                    done += 1
                    continue
                # the disk was unplugged (or the folder moved away) under us: the files are
                # not bad, they are out of reach. Keep what was read, record nothing for
                # the rest, and stop; the next scan carries on from here.
                if batch:
                    commit_results(library, batch, opts.label, report)
                    batch = []
                raise PhotoRootError(
                    f"the photo folder {root} disappeared during the scan (disk unplugged?); "
                    f"{done} of {total} photos were saved and nothing was forgotten - "
                    "run the scan again when it is back")
            batch.append((res, existing.get(res.rel)))
            done += 1
            if len(batch) >= settings.batch_size or time.monotonic() - last_commit > COMMIT_INTERVAL_S:
                commit_results(library, batch, opts.label, report)
                batch, last_commit = [], time.monotonic()
            if progress:
                faces_so_far = report.faces_added + sum(len(r.faces) for r, _ in batch)
                progress(ScanProgress(done, total, faces_so_far, report.failed, res.rel))
        if batch:
            commit_results(library, batch, opts.label, report)
            batch = []
    except KeyboardInterrupt:
        report.interrupted = True
        if batch:
            commit_results(library, batch, opts.label, report)
        raise
    finally:
        report.seconds = time.monotonic() - started
        _finish_run(library, run_id, report)

    # Removing needs a complete listing; if *everything* vanished the folder is more likely
    # an unplugged disk or an empty mount point than a deliberate wipe.
    if plan.vanished and len(plan.vanished) == len(known) and report.files_seen == 0:
        report.removal_skipped = len(plan.vanished)
    else:
        remove_vanished(library, plan.vanished, report)
    report.seconds = time.monotonic() - started
    _finish_run(library, run_id, report)
    return report


def _root_empty(root: Path) -> bool:
    """An empty photo folder mid-scan is an unplugged disk's mount point."""
    try:
        with os.scandir(root) as it:
            return next(it, None) is None
    except OSError:
        return True


def _finish_run(library: Library, run_id: int, report: ScanReport) -> None:
    data = asdict(report)
    data["errors"] = data["errors"][:200]
    with library.session() as s:
        s.execute(update(ScanRun).where(ScanRun.id == run_id).values(finished_at=utcnow(), report=data))


# ---------------------------------------------------------------------------------------
# library statistics (for `organizer stats` and the dashboard's status page)


@dataclass
class LibraryStats:
    root: str | None
    photos: int
    photos_ok: int
    photos_failed: int
    photos_missing: int
    faces: int
    faces_named: int
    faces_confirmed: int
    people: int
    clusters: int
    last_scan: datetime | None


def library_stats(library: Library) -> LibraryStats:
    from .models import Cluster

    root = library.get_meta("root")
    with library.session() as s:
        def count(q: Select[int]) -> int:
            return s.scalar(q) or 0

        by_status = dict(s.execute(select(Photo.status, func.count()).group_by(Photo.status)).all())
        live = Face.is_face.is_(True)
        return LibraryStats(
            root=root,
            photos=sum(by_status.values()),
            photos_ok=by_status.get(PhotoStatus.ok, 0),
            photos_failed=by_status.get(PhotoStatus.error, 0),
            photos_missing=by_status.get(PhotoStatus.missing, 0),
            faces=count(select(func.count()).select_from(Face).where(live)),
            faces_named=count(select(func.count()).select_from(Face).where(live, Face.person_id.is_not(None))),
            faces_confirmed=count(select(func.count()).select_from(Face).where(
                live, Face.assignment == Assignment.confirmed)),
            people=count(select(func.count()).select_from(Person)),
            clusters=count(select(func.count()).select_from(Cluster).where(Cluster.size > 0)),
            last_scan=s.scalar(select(func.max(ScanRun.finished_at))),
        )


def failed_photos(library: Library, limit: int | None = None) -> list[tuple[str, str]]:
    with library.session() as s:
        q = select(Photo.path, Photo.error).where(Photo.status == PhotoStatus.error).order_by(Photo.path)
        if limit:
            q = q.limit(limit)
        return [(p, e or "") for p, e in s.execute(q)]
