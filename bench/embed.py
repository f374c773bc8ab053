#!/usr/bin/env python3
"""Face embedding alone: dlib-bin's descriptor vs the same network on onnxruntime, in one run.

Cuts the aligned 150x150 chips once (dlib's 5-point shape and get_face_chips, as
dlib's own compute_face_descriptor does) from people-small and lfw-dev photos, then
times on the same chips, interleaved over --rounds rounds (median kept):

(a) dlib: face_encoder.compute_face_descriptor(chip), one face at a time (what the
    scanner did per face), and dlib's own batch call on all chips;
(b) onnx: organizer.embedding's engine, one call per photo (what faces.embed does)
    and one call for all chips; --threads onnxruntime threads (1 = the scanner's
    setting: one worker per core);
(c) numpy: the reference forward pass in organizer.dlib_resnet on numpy's BLAS.

Prints ms per face, the ratio to (a) per face, the max absolute difference from dlib
per value, and the memory the engine adds to the process.

    python bench/embed.py                 # people-small + 50 lfw-dev photos, ~1-2 minutes on 2 cores
    python bench/embed.py --lfw 300 --rounds 1 --no-numpy
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

warnings.filterwarnings("ignore")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np

from organizer import dlib_resnet, embedding, faces
from organizer.imaging import open_image


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def photo_chips(photos: Path, lfw: int) -> list[np.ndarray]:
    """The chips of every face HOG finds, grouped per photo."""
    import dlib

    api = faces._api()
    files = sorted((photos / "people-small").rglob("*.jpg"))
    people = sorted(d for d in (photos / "lfw-dev").iterdir() if d.is_dir())
    files += [min(d.glob("*.jpg")) for d in people[: max(0, lfw)]]
    out = []
    for path in files:
        img = open_image(path, max_size=1600, max_pixels=180_000_000).pixels
        boxes = faces.detect(img)
        if boxes:
            shapes = dlib.full_object_detections()
            shapes.extend(api._raw_face_landmarks(img, boxes, model="small"))
            out.append(np.stack(dlib.get_face_chips(img, shapes, size=150, padding=0.25)))
    return out


def timed(fn: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "photos")
    ap.add_argument("--lfw", type=int, default=50, help="lfw-dev photos (one per person) besides people-small")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads")
    ap.add_argument("--no-numpy", action="store_true", help="skip the numpy forward pass")
    args = ap.parse_args()

    encoder = faces._api().face_encoder
    per_photo = photo_chips(args.photos, args.lfw)
    chips = np.concatenate(per_photo)
    n = len(chips)
    print(f"{n} faces from {len(per_photo)} photos; onnxruntime threads {args.threads}")

    with tempfile.TemporaryDirectory() as tmp:
        t_build, path = timed(lambda: embedding.engine_file(engine_dir=Path(tmp)))  # type: ignore[arg-type,return-value]
        before = rss_mb()
        t_load, engine = timed(lambda: embedding.onnx_embedder(path, threads=args.threads))  # type: ignore[arg-type,return-value]
        engine(chips[:16])
    print(f"engine: built in {t_build:.1f} s (once per user), loaded in {t_load:.2f} s; "
          f"loading and a 16-face call add {rss_mb() - before:.0f} MB resident (building is a one-off)")
    net = None if args.no_numpy else dlib_resnet.read_face_resnet(dlib_resnet.default_model_path())

    runs: dict[str, Callable[[], np.ndarray]] = {
        "dlib, one face a call": lambda: np.array([encoder.compute_face_descriptor(c, 1) for c in chips]),
        "dlib, one batch call": lambda: np.array(encoder.compute_face_descriptor(list(chips), 1)),
        "onnx, one call a photo": lambda: np.concatenate([engine(p) for p in per_photo]),  # type: ignore[operator]
        "onnx, one batch call": lambda: engine(chips),  # type: ignore[operator]
    }
    if net is not None:
        runs["numpy, one batch call"] = lambda: dlib_resnet.forward_numpy(net, chips)
    times: dict[str, list[float]] = {k: [] for k in runs}
    results: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            t, results[name] = timed(fn)
            times[name].append(t)

    ref = results["dlib, one face a call"]
    base = statistics.median(times["dlib, one face a call"]) / n
    print(f"{'':26} {'ms/face':>8} {'x dlib':>7} {'max |diff|':>11}")
    for name in runs:
        per_face = statistics.median(times[name]) / n
        diff = float(np.abs(np.asarray(results[name], dtype=np.float64) - ref).max())
        print(f"{name:26} {per_face * 1000:8.2f} {base / per_face:7.1f} {diff:11.2e}")
    fast = statistics.median(times["onnx, one call a photo"]) / n
    print(f"embedding alone: onnx {base / fast:.1f}x dlib-bin per face (target >= 5x), "
          f"max abs difference {np.abs(results['onnx, one call a photo'] - ref).max():.2e} over {n} faces")


if __name__ == "__main__":
    main()
