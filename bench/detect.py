#!/usr/bin/env python3
"""Face detection cost, and two ideas to cut it (issue 15, item 4), measured in one run.

With the embedding on onnxruntime, dlib's HOG detector is most of a scan's time. On the
images the scanner analyses (decoded to at most 1600 px) it compares:

(a) the scanner's detection: HOG with one upsampling (finds faces down to ~40 px);
(b) coarse first (what organizer.faces.detect now does): on images of --min-pixels and
    more, HOG without upsampling (~80 px and up, a quarter of the pixels), then the full
    pass (a) only where the coarse pass suggests small faces: it found no face, or its
    smallest face is under --small-face px (near its limit, as in a group photo where more
    people stand further back);
(c) the 68-point landmarks (needed for frontal-ness and resemblance) against the 5-point
    shape the embedding's chip alignment uses, and what the embedding becomes if its chip
    were aligned from the 68 points instead (so one landmark pass would serve both).

Sets: 12 MP copies of the group photos (like phone photos), the group photos at their
own size, edge-cases (real phone photos, old cameras, small portraits) and people-small.
Prints faces found and seconds per set, and every photo where (b) finds fewer than (a).

    python bench/detect.py                   # about 5 minutes on 2 shared cores
    python bench/detect.py --sets large,group
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from organizer import faces  # noqa: E402
from organizer.errors import UnreadableImage  # noqa: E402
from organizer.imaging import is_image_name, open_image  # noqa: E402


def photo_sets(photos: Path, tmp: Path, large: int) -> dict[str, list[Path]]:
    group = sorted(p for p in (photos / "group-photos").rglob("*") if is_image_name(p.name) and "dogs" not in p.name)
    big = tmp / "large"
    big.mkdir()
    for i, src in enumerate(group[:large]):
        img = Image.open(src).convert("RGB")
        scale = 4000 / max(img.size)
        img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS).save(
            big / f"large_{i:02d}.jpg", quality=90)
    return {
        "large": sorted(big.iterdir()),
        "group": group,
        "edge": sorted(p for p in (photos / "edge-cases").rglob("*") if is_image_name(p.name)),
        "small": sorted(p for p in (photos / "people-small").rglob("*") if is_image_name(p.name)),
    }


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "photos")
    ap.add_argument("--sets", default="large,group,edge,small")
    ap.add_argument("--large", type=int, default=16, help="12 MP copies of group photos (default 16)")
    ap.add_argument("--small-face", type=int, default=faces.SMALL_FACE_PX,
                    help="(b) runs the full pass when the coarse pass's smallest face is under this (px)")
    ap.add_argument("--min-pixels", type=int, default=faces.COARSE_FIRST_MIN_PIXELS,
                    help="(b) tries the coarse pass first on images of at least this many pixels")
    args = ap.parse_args()
    if not args.photos.exists():
        print(f"no photo set at {args.photos}", file=sys.stderr)
        return 2
    import dlib

    faces.SMALL_FACE_PX, faces.COARSE_FIRST_MIN_PIXELS = args.small_face, args.min_pixels
    faces.warm_up()
    api = faces._api()
    engine = faces._engine()
    with tempfile.TemporaryDirectory() as tmp:
        sets = photo_sets(args.photos, Path(tmp), args.large)
        lm = {"68": 0.0, "5": 0.0, "n": 0}
        shifts: list[float] = []
        total_fine = total_both = 0.0
        print(f"{'set':6} {'photos':>6} | {'(a) u1 faces':>12} {'s':>6} | {'(b) coarse first':>16} {'s':>6} "
              f"{'full pass on':>12} | ratio a/b")
        for name in args.sets.split(","):
            fine_t = both_t = 0.0
            n_fine = n_both = photos = refined = 0
            lost = []
            for path in sets[name]:
                try:
                    img = open_image(path, max_size=1600, max_pixels=180_000_000).pixels
                except UnreadableImage:
                    continue
                photos += 1
                t1, fine = timed(lambda img=img: faces.detect_once(img, upsample=1))
                fine_t, n_fine = fine_t + t1, n_fine + len(fine)
                if faces.coarse_first(img, "hog", 1):
                    t0, coarse = timed(lambda img=img: faces.detect_once(img, upsample=0))
                    small = faces.small_faces_likely(coarse, 0)
                else:
                    t0, coarse, small = 0.0, fine, True
                both = fine if small else coarse
                both_t += t0 + (t1 if small else 0.0)
                refined += small
                n_both += len(both)
                if len(both) < len(fine):
                    lost.append(f"{path.name}: {len(both)} of {len(fine)} "
                                f"(sizes {sorted(b[2] - b[0] for b in coarse)} vs {sorted(b[2] - b[0] for b in fine)})")
                if fine and engine is not None:
                    t68, s68 = timed(lambda img=img, fine=fine: api._raw_face_landmarks(img, fine, model="large"))
                    t5, s5 = timed(lambda img=img, fine=fine: api._raw_face_landmarks(img, fine, model="small"))
                    lm["68"], lm["5"], lm["n"] = lm["68"] + t68, lm["5"] + t5, lm["n"] + len(fine)
                    five, sixty_eight = dlib.full_object_detections(), dlib.full_object_detections()
                    five.extend(s5)
                    sixty_eight.extend(s68)
                    a = engine(np.stack(dlib.get_face_chips(img, five, size=150, padding=0.25)))
                    b = engine(np.stack(dlib.get_face_chips(img, sixty_eight, size=150, padding=0.25)))
                    shifts += list(np.linalg.norm(a - b, axis=1))
            print(f"{name:6} {photos:6} | {n_fine:12} {fine_t:6.1f} | {n_both:16} {both_t:6.1f} "
                  f"{refined:5}/{photos:<6} | {fine_t / both_t:.2f}x")
            total_fine, total_both = total_fine + fine_t, total_both + both_t
            for line in lost:
                print(f"    (b) loses faces: {line}")
        print(f"all sets: {total_fine:.1f} s vs {total_both:.1f} s: {total_fine / total_both:.2f}x")
        if lm["n"]:
            s = np.array(shifts)
            print(f"landmarks over {lm['n']} faces: 68-point {lm['68'] / lm['n'] * 1000:.1f} ms a face, "
                  f"5-point {lm['5'] / lm['n'] * 1000:.1f} ms a face")
            print(f"chips aligned from the 68 points instead of the 5: the embedding moves by "
                  f"{np.median(s):.3f} (median), {s.max():.3f} (max) - dlib's same-person threshold is 0.6, "
                  f"re-embedding the same chip moves it by < 1e-5")
    return 0


if __name__ == "__main__":
    sys.exit(main())
