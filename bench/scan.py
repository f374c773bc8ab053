#!/usr/bin/env python3
"""Scan speed: the naive face_recognition pipeline vs `organizer scan`, in one run.

(a) naive: face_recognition.load_image_file -> face_locations -> face_encodings, at full
    resolution, one process (what most scripts built on face_recognition do);
(b) ours: organizer's scanner with its defaults (draft decode to 1600 px, EXIF transpose,
    one worker per core, dlib's embedding network on onnxruntime, batched SQLite commits).

Both run on the same files: real photos from ../shared/photos plus 4000x3000 copies of
the group photos (real libraries are 12 MP phone photos). Prints photos/s and faces for
each, how many of the naive faces ours also found, and the speed ratio b/a; the
embedding step alone (face_recognition.face_encodings against organizer.faces on the same
full-size images and boxes, interleaved in this process); and the peak memory of each of
ours's workers. Then it times a rescan of an unchanged library (photos/s) on
--rescan-photos LFW photos.

    python bench/scan.py                      # defaults: about 3-5 minutes on 2 cores
    python bench/scan.py --large 4 --rescan-photos 300   # quicker
    python bench/scan.py --large 16 --regular 0 --rescan-photos 0   # 12 MP photos only, like a phone library
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

from organizer.config import Settings  # noqa: E402
from organizer.db import Library  # noqa: E402
from organizer.imaging import is_image_name  # noqa: E402
from organizer.scanner import scan  # noqa: E402


def build_set(photos: Path, dst: Path, large: int, regular: int) -> list[Path]:
    dst.mkdir(parents=True)
    group = sorted(p for p in (photos / "group-photos").rglob("*") if is_image_name(p.name) and "dogs" not in p.name)
    for i, src in enumerate(group[:large]):
        img = Image.open(src).convert("RGB")
        w, h = img.size
        scale = 4000 / max(w, h)
        img.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS).save(dst / f"large_{i:02d}.jpg", quality=90)
    small = sorted(p for p in (photos / "people-small").rglob("*") if is_image_name(p.name))
    small += group[large:]
    small += sorted((photos / "lfw-dev").glob("*/*.jpg"))[: max(0, regular - len(small))]
    for i, src in enumerate(small[:regular]):
        shutil.copy(src, dst / f"regular_{i:03d}{src.suffix.lower()}")
    return sorted(p for p in dst.iterdir() if p.is_file())


class Embedding:
    """Seconds spent embedding, naive vs ours, on the same images and boxes."""

    def __init__(self) -> None:
        self.naive = self.ours = 0.0
        self.faces = 0
        #: CPU seconds of the naive pipeline's own steps
        self.naive_cpu = 0.0


def naive(files: list[Path], embedding: Embedding) -> tuple[float, dict[str, list[tuple[int, int, int, int]]]]:
    """The naive pipeline's time (its own steps only) and boxes. After each photo, ours's
    embedding step runs on the same image and boxes, timed apart (not in the total)."""
    import face_recognition

    from organizer import faces

    faces.warm_up()
    found: dict[str, list[tuple[int, int, int, int]]] = {}
    total = 0.0
    for f in files:
        start, cpu = time.perf_counter(), time.process_time()
        img = face_recognition.load_image_file(str(f))
        boxes = face_recognition.face_locations(img)
        t_embed = time.perf_counter()
        face_recognition.face_encodings(img, boxes)
        end = time.perf_counter()
        embedding.naive_cpu += time.process_time() - cpu
        total += end - start
        embedding.naive += end - t_embed
        found[f.name] = boxes
        start = time.perf_counter()
        faces._embeddings(img, boxes, 1)
        embedding.ours += time.perf_counter() - start
        embedding.faces += len(boxes)
    return total, found


class WorkerMemory:
    """Peak resident memory of each worker process of a scan (polled), in MB, and the CPU
    seconds of the workers and of this process (on a shared machine wall time drifts with
    the neighbours' load; CPU seconds much less)."""

    def __init__(self) -> None:
        import psutil

        self.me = psutil.Process()
        self.peak: dict[int, float] = {}
        self.unique: dict[int, float] = {}
        self.cpu: dict[int, float] = {}
        self.own_cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        import psutil

        while not self._stop.wait(0.25):
            for p in self.me.children(recursive=True):
                try:
                    command = " ".join(p.cmdline())
                    if "resource_tracker" in command or (p.ppid() == self.me.pid and "forkserver" in command):
                        continue  # not workers (the fork server holds the preloaded models the workers share)
                    info = p.memory_full_info()
                    times = p.cpu_times()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                self.cpu[p.pid] = times.user + times.system
                self.peak[p.pid] = max(self.peak.get(p.pid, 0.0), info.rss / 2**20)
                self.unique[p.pid] = max(self.unique.get(p.pid, 0.0), info.uss / 2**20)

    def __enter__(self) -> WorkerMemory:
        self._cpu_start = time.process_time()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.own_cpu = time.process_time() - self._cpu_start
        self._stop.set()
        self._thread.join()

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu.values()) + self.own_cpu

    def line(self) -> str:
        if not self.peak:
            return "no worker processes seen"
        rss = ", ".join(f"{v:.0f}" for v in self.peak.values())
        uss = ", ".join(f"{v:.0f}" for v in self.unique.values())
        return f"peak resident MB per worker: {rss} (of which not shared with the fork server: {uss})"


def ours(root: Path, db: Path, **overrides: object) -> tuple[float, object, Library]:
    settings = Settings(db_url=f"sqlite:///{db}").with_overrides(**overrides)
    lib = Library.open(settings.db_url)
    start = time.perf_counter()
    report = scan(lib, root, settings)
    return time.perf_counter() - start, report, lib


def our_boxes(lib: Library) -> dict[str, list[tuple[int, int, int, int]]]:
    from sqlalchemy import select

    from organizer.models import Face, Photo

    out: dict[str, list[tuple[int, int, int, int]]] = {}
    with lib.session() as s:
        for path, t, r, b, l in s.execute(select(Photo.path, Face.top, Face.right, Face.bottom, Face.left).join(Face)):
            out.setdefault(path, []).append((t, r, b, l))
    return out


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    t, r, bt, l = max(a[0], b[0]), min(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])
    inter = max(0, r - l) * max(0, bt - t)
    area = lambda x: (x[1] - x[3]) * (x[2] - x[0])  # noqa: E731
    return inter / float(area(a) + area(b) - inter or 1)


def matched(reference: dict, other: dict) -> int:
    n = 0
    for name, boxes in reference.items():
        cand = list(other.get(name, []))
        for box in boxes:
            best = max(cand, key=lambda c: iou(box, c), default=None)
            if best is not None and iou(box, best) > 0.3:
                cand.remove(best)
                n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", default=str(REPO.parent / "shared" / "photos"), help="the shared photo folder")
    ap.add_argument("--large", type=int, default=8, help="4000x3000 copies of group photos (default 8)")
    ap.add_argument("--regular", type=int, default=24, help="photos at their own size (default 24)")
    ap.add_argument("--rescan-photos", type=int, default=1000, help="LFW photos for the unchanged-rescan timing")
    ap.add_argument("--workers", type=int, default=0, help="workers for ours (default: one per core)")
    args = ap.parse_args()
    photos = Path(args.photos)
    if not photos.exists():
        print(f"no photo set at {photos}", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        files = build_set(photos, tmpd / "set", args.large, args.regular)
        n = len(files)
        print(f"set: {n} photos ({args.large} of 4000 px, {n - args.large} regular)")

        emb = Embedding()
        t_naive, naive_found = naive(files, emb)
        with WorkerMemory() as memory:
            t_ours, report, lib = ours(tmpd / "set", tmpd / "ours.db", workers=args.workers)
        ours_found = our_boxes(lib)
        naive_faces = sum(len(v) for v in naive_found.values())
        print(f"(a) naive face_recognition: {n / t_naive:6.2f} photos/s  {naive_faces / t_naive:6.2f} faces/s  "
              f"{naive_faces} faces  ({t_naive:.1f} s)")
        print(f"(b) organizer scan:         {n / t_ours:6.2f} photos/s  {report.faces_added / t_ours:6.2f} faces/s  "
              f"{report.faces_added} faces  ({t_ours:.1f} s)")
        print(f"    faces of (a) also found by (b): {matched(naive_found, ours_found)}/{naive_faces}; "
              f"faces of (b) also found by (a): {matched(ours_found, naive_found)}/{report.faces_added}")
        print(f"speed ratio b/a: {t_naive / t_ours:.2f}x (wall time); CPU seconds: (a) {emb.naive_cpu:.1f}, "
              f"(b) {memory.cpu_seconds:.1f} (workers and this process): {emb.naive_cpu / memory.cpu_seconds:.2f}x less work")
        if emb.faces:
            print(f"embedding alone, same images and boxes, one process: face_recognition "
                  f"{emb.naive / emb.faces * 1000:.0f} ms a face, ours {emb.ours / emb.faces * 1000:.0f} ms a face: "
                  f"{emb.naive / emb.ours:.1f}x")
        print(f"    {memory.line()}")
        t_re, re_report, _ = ours(tmpd / "set", tmpd / "ours.db", workers=args.workers)
        print(f"unchanged rescan of this set: {n / t_re:.0f} photos/s ({re_report.unchanged} unchanged)")

        if args.rescan_photos:
            lfw = sorted((photos / "lfw-dev").glob("*/*.jpg"))[: args.rescan_photos]
            big = tmpd / "lfw"
            for f in lfw:
                (big / f.parent.name).mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, big / f.parent.name / f.name)
            t_first, first, _ = ours(big, tmpd / "lfw.db", workers=args.workers)
            t_re, re_report, _ = ours(big, tmpd / "lfw.db", workers=args.workers)
            print(f"LFW {len(lfw)} photos: first scan {len(lfw) / t_first:.1f} photos/s ({first.faces_added} faces); "
                  f"unchanged rescan {len(lfw) / t_re:.0f} photos/s ({t_re:.2f} s); ratio rescan/first {t_first / t_re:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
