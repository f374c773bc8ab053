"""How clustering and suggestions scale: 10k / 30k / 100k faces.

Synthetic but realistic embeddings: identities are made by perturbing real dlib
embeddings of real people (from a scanned labelled set), and each identity's faces are
perturbed around it so that same-person distances look like real ones. The faces are
written into a temporary library and the real code path runs on it: load from SQLite ->
neighbourhood graph -> DBSCAN -> merge into the library, then the suggestion index.

Each size runs in a fresh child process so its peak memory (max RSS) is its own.
The baseline is scikit-learn's DBSCAN straight on the dense embeddings (its default
neighbour search), measured on the same data in the same process, at sizes where it
finishes in reasonable time.

Also: ``--eps-sweep``: pairwise precision/recall of the clustering on a real labelled set
for several eps values (how the default eps was chosen).

    python bench/cluster_scale.py                       # 10k, 30k, 100k
    python bench/cluster_scale.py --sizes 10000 --baseline-max 10000
    python bench/cluster_scale.py --eps-sweep --set ../shared/photos/lfw-dev --db /tmp/lfw.db
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import insert, select  # noqa: E402

from organizer.config import Settings  # noqa: E402
from organizer.db import Library  # noqa: E402
from organizer.grouping import GroupingRule  # noqa: E402
from organizer.models import Assignment, Face, Person, Photo  # noqa: E402


def labelled_embeddings(lib: Library) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, identity labels) of the main face of each photo of a `<set>/<person>/` tree."""
    vecs, names = [], []
    with lib.session() as s:
        for photo in s.scalars(select(Photo)):
            if not photo.faces or "/" not in photo.path:
                continue
            main = max(photo.faces, key=lambda f: (f.bottom - f.top) * (f.right - f.left))
            vecs.append(main.vector)
            names.append(photo.path.split("/")[-2])
    _, labels = np.unique(np.asarray(names), return_inverse=True)
    return np.stack(vecs).astype(np.float32), labels


def scan_set(folder: Path, db: Path, workers: int) -> Library:
    from organizer.scanner import scan

    settings = Settings(db_url=f"sqlite:///{db}").with_overrides(workers=workers)
    lib = Library.open(settings.db_url)
    scan(lib, folder, settings)
    return lib


def synthetic(real: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` faces of ~n/12 identities (long-tailed sizes) around perturbed real embeddings."""
    rng = np.random.default_rng(seed)
    ids = max(1, n // 12)
    centres = real[rng.integers(0, len(real), ids)] + rng.normal(0, 0.25 / np.sqrt(128), (ids, 128))
    weights = 1.0 / np.arange(1, ids + 1) ** 0.8
    owner = rng.choice(ids, size=n, p=weights / weights.sum())
    faces = centres[owner] + rng.normal(0, 0.21 / np.sqrt(128), (n, 128))
    return faces.astype(np.float32), owner


def fill_library(db: Path, faces: np.ndarray, owner: np.ndarray, named_fraction: float = 0.0) -> Library:
    """A fresh library holding these faces (one photo each)."""
    lib = Library.open(f"sqlite:///{db}")
    n = len(faces)
    with lib.session() as s:
        s.execute(insert(Photo), [{"id": i + 1, "path": f"p/{i}.jpg"} for i in range(n)])
        rows = [{"id": i + 1, "photo_id": i + 1, "top": 0, "right": 10, "bottom": 10, "left": 0,
                 "embedding": faces[i].tobytes(), "quality": 0.5} for i in range(n)]
        for a in range(0, n, 5000):
            s.execute(insert(Face), rows[a:a + 5000])
    if named_fraction:
        name_biggest(lib, owner, named_fraction)
    return lib


def run_one(n: int, real_db: str, baseline: bool, eps: float, min_samples: int) -> dict:
    from sklearn.cluster import DBSCAN

    from organizer.clustering import cluster_faces, dbscan_labels, pairwise_precision_recall
    from organizer.suggestions import accept_suggestion, all_suggestions, next_suggestion

    real, _ = labelled_embeddings(Library.open(real_db))
    faces, owner = synthetic(real, n)
    out: dict = {"faces": n}
    with tempfile.TemporaryDirectory() as tmp:
        lib = fill_library(Path(tmp) / "lib.db", faces, owner, named_fraction=0.0)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # 1. first clustering of a fresh library: every face is unnamed
        t = time.perf_counter()
        report = cluster_faces(lib, eps=eps, min_samples=min_samples)
        out["cluster_s"] = time.perf_counter() - t
        out["clusters"] = report.clusters
        # 2. the user names the biggest 20% of the identities (half their faces confirmed)
        name_biggest(lib, owner, 0.2)
        t = time.perf_counter()
        report = cluster_faces(lib, eps=eps, min_samples=min_samples)
        out["recluster_s"] = time.perf_counter() - t
        out["reclustered"] = report.faces
        out["auto"] = report.auto_assigned
        # 3. suggestions: full build, then one answer and the next suggestion (incremental)
        t = time.perf_counter()
        items = all_suggestions(lib)
        out["suggest_build_s"] = time.perf_counter() - t
        out["items"] = len(items)
        t = time.perf_counter()
        item = next_suggestion(lib)
        if item is not None:
            accept_suggestion(lib, item.face_ids, item.person_id)
            next_suggestion(lib)
        out["answer_and_next_s"] = time.perf_counter() - t
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["rss_before_mb"] = rss0 / 1024
        if baseline:
            # the same DBSCAN on the same faces, with scikit-learn's own neighbour search
            t = time.perf_counter()
            ours = dbscan_labels(faces, eps, min_samples)
            out["graph_dbscan_s"] = time.perf_counter() - t
            t = time.perf_counter()
            theirs = DBSCAN(eps=eps, min_samples=min_samples).fit(faces).labels_
            out["baseline_s"] = time.perf_counter() - t
            p, r = pairwise_precision_recall(ours, theirs)
            out["same_as_sklearn"] = f"P {p:.4f} R {r:.4f} noise {(ours < 0).sum()}/{(theirs < 0).sum()}"
    return out


def name_biggest(lib: Library, owner: np.ndarray, fraction: float) -> None:
    from sqlalchemy import update

    rng = np.random.default_rng(1)
    sizes = np.bincount(owner)
    named = np.argsort(-sizes)[: int(len(sizes) * fraction)]
    with lib.session() as s:
        s.execute(insert(Person), [{"id": int(p) + 1, "name": f"person {p}"} for p in named])
        chosen = np.isin(owner, named) & (rng.random(len(owner)) < 0.5)
        rows = [{"id": int(i) + 1, "person_id": int(owner[i]) + 1, "assignment": Assignment.confirmed,
                 "cluster_id": None} for i in np.flatnonzero(chosen)]
        for a in range(0, len(rows), 5000):
            s.execute(update(Face), rows[a:a + 5000])


def eps_sweep(db: str, eps_values: list[float], min_samples_values: list[int]) -> None:
    from organizer.clustering import dbscan_labels, pairwise_precision_recall

    vecs, labels = labelled_embeddings(Library.open(db))
    print(f"eps sweep on {len(vecs)} faces of {labels.max() + 1} identities (main face of each photo)")
    print(f"{'eps':>5} {'min_s':>5}  {'precision':>9} {'recall':>7}  {'clusters':>8} {'noise':>6}")
    for ms in min_samples_values:
        for eps in eps_values:
            lab = dbscan_labels(vecs, eps, ms)
            p, r = pairwise_precision_recall(lab, labels)
            print(f"{eps:>5.2f} {ms:>5}  {p:>9.3f} {r:>7.3f}  {lab.max() + 1:>8} {(lab < 0).sum():>6}")
    # how often faces at a distance belong to one person: the auto-assign / suggestion scale
    rng = np.random.default_rng(0)
    i = rng.integers(0, len(vecs), 400_000)
    j = rng.integers(0, len(vecs), 400_000)
    keep = i != j
    d = np.linalg.norm(vecs[i[keep]] - vecs[j[keep]], axis=1)
    same = labels[i[keep]] == labels[j[keep]]
    # add every same-person pair (random pairs rarely hit one)
    same_d = []
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        if len(idx) > 1:
            v = vecs[idx]
            dd = np.linalg.norm(v[:, None] - v[None], axis=2)[np.triu_indices(len(idx), 1)]
            same_d.extend(dd.tolist())
    same_d = np.asarray(same_d)
    diff_d = d[~same]
    print("\npair distances: same person vs different people")
    print(f"{'distance <=':>11} {'same pairs':>10} {'diff pairs':>10}")
    for t in (0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60):
        print(f"{t:>11.2f} {np.mean(same_d <= t):>10.3f} {np.mean(diff_d <= t):>10.5f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    ap.add_argument("--set", default=str(REPO.parent / "shared" / "photos" / "people-small" / "train"),
                    help="labelled photo set whose real embeddings seed the synthetic ones")
    ap.add_argument("--db", help="an already scanned library of --set (else it is scanned into a temp dir)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--eps", type=float, default=GroupingRule().eps, help="the grouping rule's (organizer.grouping)")
    ap.add_argument("--min-samples", type=int, default=Settings().min_samples)
    ap.add_argument("--baseline-max", type=int, default=30_000,
                    help="run the scikit-learn baseline only up to this many faces")
    ap.add_argument("--eps-sweep", action="store_true", help="precision/recall per eps on --set instead")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    db = args.db
    if db and "://" not in db:
        db = f"sqlite:///{Path(db).resolve()}"
    if args.one:
        print(json.dumps(run_one(args.one, db, args.one <= args.baseline_max, args.eps, args.min_samples)))
        return
    if not db:
        path = Path(tmp.name) / "real.db"
        scan_set(Path(args.set), path, args.workers).close()
        db = f"sqlite:///{path}"
    if args.eps_sweep:
        eps_sweep(db, [0.30, 0.35, 0.38, 0.40, 0.42, 0.45, 0.50, 0.55], [2, 3])
        return
    print(f"eps {args.eps}, min_samples {args.min_samples}; {os.cpu_count()} CPUs. 1st clustering: every face "
          "unnamed; re-clustering and suggestions after the biggest 20% of identities were named (half their "
          "faces confirmed)")
    print(f"{'faces':>7} {'cluster s':>9} {'re-cluster s':>12} {'suggest s':>9} {'answer+next s':>13} "
          f"{'peak RSS MB':>11} | {'graph+DBSCAN s':>14} {'sklearn s':>9} {'speedup':>7}  labels vs sklearn")
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--one", str(n), "--db", db, "--eps", str(args.eps),
               "--min-samples", str(args.min_samples), "--baseline-max", str(args.baseline_max)]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        base = res.get("baseline_s")
        ours = res.get("graph_dbscan_s")
        extra = (f"{ours:>14.2f} {base:>9.2f} {base / ours:>6.1f}x  {res['same_as_sklearn']}" if base
                 else f"{'-':>14} {'-':>9} {'-':>7}")
        print(f"{n:>7} {res['cluster_s']:>9.2f} {res['recluster_s']:>12.2f} {res['suggest_build_s']:>9.2f} "
              f"{res['answer_and_next_s']:>13.2f} {res['peak_rss_mb']:>11.0f} | {extra}", flush=True)


if __name__ == "__main__":
    main()
