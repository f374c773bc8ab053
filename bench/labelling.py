"""Labelling effort: how many user actions it takes to name every face of a photo set.

A simulated user who knows the truth (identities = folder names of a `<set>/<person>/*.jpg`
tree; in a photo with several faces the biggest one carries the label) labels the library
with the organizer's own API, the way the CLI/dashboard offer it:

1. scan, cluster (the machine's work, no user action);
2. repeatedly take the biggest open work item — the largest unnamed cluster or the top
   suggestion — and answer it like a person would: name a cluster by its majority identity
   (1 action) and remove the wrong faces from it (1 multi-select action); accept a correct
   suggestion (1), reject a wrong one (1), or for a mixed one accept the right faces and
   reject the rest (2);
3. when neither is left: run `cluster` again (1 action: it auto-assigns very close faces,
   fixing a wrong auto-assignment costs 1 move per group), then label a remaining face by
   hand (1 action) and go back to 2 (that person may now be suggested for other faces);

until every face of a known identity carries the right person. Baseline: labelling every
face one by one (1 action per face).

    python bench/labelling.py                                             # people-small/train
    python bench/labelling.py --set ../shared/photos/lfw-dev --limit-identities 150
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import select  # noqa: E402

from organizer import labelling  # noqa: E402
from organizer.browse import list_clusters  # noqa: E402
from organizer.clustering import cluster_faces, pairwise_precision_recall  # noqa: E402
from organizer.config import Settings  # noqa: E402
from organizer.db import Library  # noqa: E402
from organizer.models import Assignment, Face, Person  # noqa: E402
from organizer.scanner import scan  # noqa: E402
from organizer.suggestions import accept_suggestion, next_suggestion, reject_suggestion  # noqa: E402
from organizer.testing import truth_by_folder  # noqa: E402


def pick_identities(src: Path, limit: int | None) -> list[Path]:
    """Every identity folder, or ``limit`` of them spread evenly over the sorted names (so the
    long tail of one-photo people is represented as in the whole set)."""
    folders = sorted(d for d in src.iterdir() if d.is_dir())
    if limit and limit < len(folders):
        step = len(folders) / limit
        folders = [folders[int(i * step)] for i in range(limit)]
    return folders


def state(lib: Library) -> dict[int, tuple[str | None, Assignment | None, int | None]]:
    """face -> (person name if the face is theirs, assignment, cluster)."""
    with lib.session() as s:
        rows = s.execute(select(Face.id, Person.name, Face.assignment, Face.cluster_id)
                         .outerjoin(Person, Person.id == Face.person_id).where(Face.is_face.is_(True))).all()
    return {fid: (name if a in (Assignment.confirmed, Assignment.auto) else None, a, cid) for fid, name, a, cid in rows}


class User:
    def __init__(self, lib: Library, truth: dict[int, str]) -> None:
        self.lib, self.truth = lib, truth
        self.actions = Counter()

    def act(self, kind: str, n: int = 1) -> None:
        self.actions[kind] += n

    def done(self) -> bool:
        st = state(self.lib)
        return all(st.get(f, (None,))[0] == name for f, name in self.truth.items())

    def answer_cluster(self, cid: int, faces: list[int]) -> None:
        known = [self.truth[f] for f in faces if f in self.truth]
        name = Counter(known).most_common(1)[0][0]
        labelling.name_cluster(self.lib, cid, name)
        self.act("name cluster")
        wrong = [f for f in faces if self.truth.get(f) != name]
        if wrong:
            labelling.remove_faces(self.lib, wrong)
            self.act("remove wrong faces")

    def answer_suggestion(self, item) -> None:  # type: ignore[no-untyped-def]
        right = [f for f in item.face_ids if self.truth.get(f) == item.person_name]
        wrong = [f for f in item.face_ids if f not in right]
        if right:
            accept_suggestion(self.lib, right, item.person_id)
            self.act("accept")
        if wrong:
            reject_suggestion(self.lib, wrong, item.person_id)
            self.act("reject")

    def fix_person_pages(self) -> None:
        """Look through each person's faces and move wrong ones (auto-assigned) where they belong."""
        st = state(self.lib)
        groups: dict[tuple[str, str | None], list[int]] = {}
        for f, (name, a, _c) in st.items():
            if name is not None and self.truth.get(f) != name:
                groups.setdefault((name, self.truth.get(f)), []).append(f)
        for (_name, true_name), faces in groups.items():
            if true_name is None:
                labelling.remove_faces(self.lib, faces)
                self.act("remove wrong faces")
            else:
                labelling.move_faces(self.lib, faces, true_name)
                self.act("move wrong faces")

    def label_next_face(self) -> bool:
        st = state(self.lib)
        for f, name in self.truth.items():
            if st.get(f, (None,))[0] != name:
                labelling.assign_faces(self.lib, [f], name)
                self.act("label one face")
                return True
        return False

    def label_rest_one_by_one(self) -> None:
        st = state(self.lib)
        for f, name in self.truth.items():
            if st.get(f, (None,))[0] != name:
                labelling.assign_faces(self.lib, [f], name)
                self.act("label one face")


def forget_labels(lib: Library) -> None:
    from sqlalchemy import delete, update

    from organizer.models import Cluster, ClusterRun, FaceRejection, Operation

    with lib.session() as s:
        s.execute(update(Face).values(person_id=None, assignment=None, confidence=None, cluster_id=None, is_face=True))
        for table in (FaceRejection, Operation, Person, Cluster, ClusterRun):
            s.execute(delete(table))


def open_cluster_faces(lib: Library, cid: int) -> list[int]:
    with lib.session() as s:
        return list(s.scalars(select(Face.id).where(
            Face.cluster_id == cid, Face.is_face.is_(True),
            (Face.person_id.is_(None)) | (Face.assignment == Assignment.suggested))))


def run(lib: Library, settings: Settings, verbose: bool) -> dict:
    truth = truth_by_folder(lib)
    t0 = time.perf_counter()
    report = cluster_faces(lib, settings=settings)
    with lib.session() as s:
        cid = dict(s.execute(select(Face.id, Face.cluster_id)).all())
    ids = sorted(truth)
    _, names = np.unique([truth[f] for f in ids], return_inverse=True)
    p, r = pairwise_precision_recall(np.asarray([cid[f] if cid[f] is not None else -1 for f in ids]), names)
    user = User(lib, truth)
    skip_clusters: set[int] = set()
    reclustered = False
    for _ in range(100_000):
        clusters = [c for c in list_clusters(lib, limit=50) if c.id not in skip_clusters]
        cluster = None
        for c in clusters:
            faces = open_cluster_faces(lib, c.id)
            if any(f in truth for f in faces):
                cluster = (c.id, faces)
                break
            skip_clusters.add(c.id)  # only faces of unknown people (bystanders): leave them
        item = next_suggestion(lib)
        if item is not None and all(f not in truth for f in item.face_ids):
            item = None if len(item.face_ids) == 0 else item
        if cluster is None and item is None:
            if not reclustered:
                cluster_faces(lib, settings=settings)
                user.act("re-cluster")
                user.fix_person_pages()
                reclustered = True
                continue
            # nothing offered: label the next face by hand (its person may then be
            # suggested for other faces)
            if not user.label_next_face():
                break
            continue
        if cluster is not None and (item is None or len(cluster[1]) >= len(item.face_ids)):
            user.answer_cluster(*cluster)
        else:
            user.answer_suggestion(item)
        if verbose:
            print(dict(user.actions))
    user.fix_person_pages()
    user.label_rest_one_by_one()
    st = state(lib)
    right = sum(1 for f, name in truth.items() if st.get(f, (None,))[0] == name)
    return {"faces": len(truth), "identities": len(set(truth.values())), "actions": sum(user.actions.values()),
            "by_kind": dict(user.actions), "accuracy": right / len(truth), "precision": p, "recall": r,
            "initial": report, "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", default=str(REPO.parent / "shared" / "photos" / "people-small" / "train"),
                    help="identity-labelled photo set: <set>/<person>/*.jpg")
    ap.add_argument("--limit-identities", type=int, help="use this many identities, spread over the set")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--eps", type=float)
    ap.add_argument("--min-samples", type=int)
    ap.add_argument("--keep", help="keep the scanned library at this path (reused when it exists)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-labelling-"))
    try:
        src = Path(args.set)
        folders = pick_identities(src, args.limit_identities)
        root = tmp / "photos"
        for d in folders:
            shutil.copytree(d, root / d.name)
        db = Path(args.keep) if args.keep else tmp / "library.db"
        settings = Settings(db_url=f"sqlite:///{db.resolve()}").with_overrides(
            workers=args.workers, eps=args.eps, min_samples=args.min_samples)
        fresh = not db.exists()
        lib = Library.open(settings.db_url)
        if fresh:
            t = time.perf_counter()
            scan(lib, root, settings)
            print(f"scanned {len(folders)} identities in {time.perf_counter() - t:.0f}s")
        else:
            forget_labels(lib)  # a kept library from an earlier run: start from scratch
        res = run(lib, settings, args.verbose)
        base = res["faces"]
        print(f"set: {src} ({len(folders)} identity folders)")
        print(f"faces (main face of each photo): {res['faces']}, identities with a face: {res['identities']}")
        print(f"initial clustering: eps {settings.eps}, min_samples {settings.min_samples}: "
              f"pairwise precision {res['precision']:.3f}, recall {res['recall']:.3f}; {res['initial'].summary()}")
        print(f"organizer: {res['actions']} actions = {res['actions'] / base:.3f} actions per face; "
              f"final accuracy {res['accuracy']:.1%}")
        print("  " + ", ".join(f"{k}: {v}" for k, v in sorted(res["by_kind"].items())))
        print(f"baseline (one face at a time): {base} actions = 1.000 actions per face; accuracy 100.0%")
        print(f"ratio: {res['actions'] / base:.3f} of the baseline's actions ({base / max(1, res['actions']):.1f}x fewer)")
        lib.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
