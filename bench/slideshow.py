"""Slideshow export speed and memory: 200 photos to html, mp4 and folder.

Builds a library by scanning lfw-dev photos (the identities with the most photos, copied
to a temp dir, labelled by folder), selects 200 photos of those people (``--any``), then
exports each format in a fresh child process so each one's peak memory is its own
(the child's own peak RSS, and ffmpeg's, reported separately).

Prints, per format: seconds, photos/s, peak memory; for mp4 also the video's length, how
many times faster than real time it was made (target: >= 5x), its size, and how the CPU
time splits between rendering the stills (Python) and zooming + encoding them (ffmpeg);
for html the ratio to a baseline that only decodes and saves each photo at the same size
(the floor for any html export). The mp4 is also made with x264's superfast defaults
(the settings before issue 15, ``X264_PARAMS`` empty) in the same run, and the ratios
of the two are printed: the CPU is shared, so compare within one run.

    python bench/slideshow.py [--photos 200] [--size 1280x720] [--seconds 4] [--keep DIR]
                              [--formats folder,html,mp4] [--no-big] [--no-baseline]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
LFW = REPO.parent / "shared" / "photos" / "lfw-dev"


def build_library(work: Path, photos: int) -> tuple[str, list[str]]:
    from sqlalchemy import select

    from organizer.config import Settings
    from organizer.db import Library
    from organizer.models import Assignment, Person, Photo
    from organizer.scanner import scan

    root = work / "photos"
    people = sorted((d for d in LFW.iterdir() if d.is_dir()), key=lambda d: (-len(list(d.glob("*.jpg"))), d.name))
    chosen, count = [], 0
    for d in people:
        if count >= photos * 1.05:   # a few spare: HOG misses a face now and then
            break
        files = sorted(d.glob("*.jpg"))[: max(0, int(photos * 1.05) - count)]
        (root / d.name).mkdir(parents=True)
        for f in files:
            shutil.copy2(f, root / d.name / f.name)
        chosen.append(d.name)
        count += len(files)
    url = f"sqlite:///{work / 'library.db'}"
    lib = Library.open(url)
    scan(lib, root, Settings(db_url=url, workers=2))
    with lib.session() as s:   # label by folder, as a user confirming every face would
        ids: dict[str, int] = {}
        for photo in s.scalars(select(Photo)):
            if not photo.faces:
                continue
            name = photo.path.split("/")[0]
            if name not in ids:
                person = Person(name=name)
                s.add(person)
                s.flush()
                ids[name] = person.id
            main = max(photo.faces, key=lambda f: (f.bottom - f.top) * (f.right - f.left))
            main.person_id, main.assignment = ids[name], Assignment.confirmed
    lib.close()
    return url, chosen


def export_child(args: argparse.Namespace) -> None:
    """Runs in a fresh process: select + export one format, print JSON."""
    from organizer import slideshow
    from organizer.db import Library

    if args.names == ["__big__"]:
        selection = big_originals()
    else:
        lib = Library.open(args.db)
        selection = slideshow.select_photos(lib, args.names, match="any")
        selection.slides = selection.slides[: args.photos]
    def cpu() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def own_cpu() -> float:
        me = resource.getrusage(resource.RUSAGE_SELF)
        return me.ru_utime + me.ru_stime

    if args.x264_params is not None:
        slideshow.X264_PARAMS = args.x264_params
    t0, c0, p0 = time.perf_counter(), cpu(), own_cpu()
    report = slideshow.export_slideshow(selection, args.out, args.format, size=args.size, seconds=args.seconds)
    elapsed, cpu_s, python_s = time.perf_counter() - t0, cpu() - c0, own_cpu() - p0
    out = Path(args.out)
    size = out.stat().st_size if out.is_file() else sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(json.dumps({
        "seconds": elapsed, "cpu_seconds": cpu_s, "python_cpu_seconds": python_s, "bytes": size,
        "photos": report.photos, "video_seconds": report.seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }))


BIG = ["exif_samples/jpg/mobile/HMD_Nokia_8.3_5G.jpg", "exif_samples/jpg/mobile/jolla.jpg",
       "exif_samples/jpg/hdr/canon_hdr_YES.jpg", "exif_samples/jpg/hdr/iphone_hdr_YES.jpg",
       "exif_samples/jpg/tests/42_IndexError.jpg", "exif_samples/jpg/corrupted.jpg",
       "exif_samples/heic/mobile/iphone_13_pro_max.HEIC", "exif_samples/heic/mobile/HMD_Nokia_8.3_5G.heif",
       "pillow_heif/heif_special_xiaomi.heic", "face_recognition_tests/obama-1080p.jpg",
       "face_recognition_tests/obama3.jpg", "deepface_misc/img11_reflection.jpg"]


def big_originals():  # type: ignore[no-untyped-def]
    """Phone-size originals (3-16 MP JPEG and HEIC, some EXIF-rotated), without faces
    boxes: a selection built straight from the files, to time decoding big photos."""
    from organizer import slideshow

    root = LFW.parent / "edge-cases" / "more"
    slides = [slideshow.Slide(i, rel, root / rel, None, None, None, None) for i, rel in enumerate(BIG)]
    return slideshow.Selection([slideshow.PersonRef(0, "big originals")], "any", slides)


def html_baseline(db: str, names: list[str], photos: int, size: str) -> float:
    """Decode each photo with Pillow, fit it into the size, save a JPEG: nothing else."""
    from PIL import Image, ImageOps

    from organizer import slideshow
    from organizer.db import Library

    w, h = slideshow.parse_size(size, "html")
    sel = slideshow.select_photos(Library.open(db), names, match="any")
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        for i, slide in enumerate(sel.slides[:photos]):
            with Image.open(slide.file) as src:
                im = ImageOps.exif_transpose(src).convert("RGB")
                im.thumbnail((w, h))
                im.save(Path(out) / f"{i}.jpg", quality=85)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--size", default=None, help="output size (default per format: mp4 1280x720, html 1920x1080)")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--formats", default="folder,html,mp4")
    ap.add_argument("--no-big", action="store_true", help="skip the phone-size originals runs")
    ap.add_argument("--no-baseline", action="store_true", help="skip the mp4 run with x264's superfast defaults")
    ap.add_argument("--x264-params", help=argparse.SUPPRESS)
    ap.add_argument("--keep", type=Path, help="keep the exports in this folder")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--names", nargs="*", help=argparse.SUPPRESS)
    ap.add_argument("--format", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        export_child(args)
        return
    if not LFW.exists():
        sys.exit(f"needs {LFW}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        db, names = build_library(work, args.photos)
        print(f"library: {args.photos} photos wanted from {len(names)} lfw-dev people, scanned in "
              f"{time.perf_counter() - t0:.0f} s ({os.cpu_count()} cores)")
        out_root = args.keep or work / "out"
        out_root.mkdir(parents=True, exist_ok=True)
        # (format, people, photos, x264 params: None = the export's own, "" = superfast's defaults)
        runs: list[tuple[str, list[str], int, str | None]] = []
        for fmt in args.formats.split(","):
            if fmt == "mp4" and not args.no_baseline:
                runs.append((fmt, names, args.photos, ""))
            runs.append((fmt, names, args.photos, None))
        if not args.no_big:
            for fmt in ("html", "mp4"):
                if fmt in args.formats:
                    if fmt == "mp4" and not args.no_baseline:
                        runs.append((fmt, ["__big__"], len(BIG), ""))
                    runs.append((fmt, ["__big__"], len(BIG), None))
        baselines: dict[tuple[str, ...], dict] = {}
        for fmt, who, count, params in runs:
            label = fmt if who == names else f"{fmt} ({count} phone-size originals, 3-16 MP JPEG/HEIC)"
            if params == "":
                label += " [x264 superfast defaults, before #15]"
            tag = "-base" if params == "" else ""
            out = out_root / (f"show-{len(who)}{tag}.{fmt}" if fmt == "mp4" else f"show-{fmt}-{len(who)}")
            if out.exists():
                shutil.rmtree(out) if out.is_dir() else out.unlink()
            cmd = [sys.executable, __file__, "--child", "--db", db, "--format", fmt, "--out", str(out),
                   "--photos", str(count), "--seconds", str(args.seconds), "--names", *who]
            if args.size:
                cmd += ["--size", args.size]
            if params is not None:
                cmd += [f"--x264-params={params}"]
            res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            if res.returncode != 0:
                print(f"{label}: FAILED\n{res.stderr[-2000:]}")
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
            line = (f"{label:6s}: {r['photos']} photos in {r['seconds']:.1f} s "
                    f"({r['photos'] / r['seconds']:.0f} photos/s), peak memory {r['peak_rss_mb']:.0f} MB")
            if fmt == "mp4":
                line += (f" (+ ffmpeg {r['children_peak_rss_mb']:.0f} MB); {r['video_seconds']:.0f} s of video "
                         f"= {r['video_seconds'] / r['seconds']:.1f}x faster than real time (target >= 5x); "
                         f"CPU time {r['cpu_seconds']:.0f} s (python + ffmpeg), i.e. "
                         f"{r['video_seconds'] / (r['cpu_seconds'] / 2):.1f}x real time on 2 idle cores "
                         f"(load average now {os.getloadavg()[0]:.1f}); stills rendered in Python "
                         f"{r['python_cpu_seconds']:.1f} s CPU, ffmpeg (zoom + x264) "
                         f"{r['cpu_seconds'] - r['python_cpu_seconds']:.0f} s; file {r['bytes'] / 1e6:.1f} MB "
                         f"({r['bytes'] * 8 / 1000 / r['video_seconds']:.0f} kbit/s)")
                if params == "":
                    baselines[tuple(who)] = r
                elif tuple(who) in baselines:
                    b = baselines[tuple(who)]
                    line += (f"\n    vs superfast defaults in this run: {b['seconds'] / r['seconds']:.2f}x faster "
                             f"(wall), {b['cpu_seconds'] / r['cpu_seconds']:.2f}x less CPU, "
                             f"file {r['bytes'] / b['bytes']:.3f}x the bytes")
            if fmt == "html" and who == names:
                base = html_baseline(db, names, args.photos, args.size or "")
                line += f"; plain Pillow decode+fit+save baseline {base:.1f} s, ratio {r['seconds'] / base:.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
