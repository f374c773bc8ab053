"""Labelling effort: how many user actions it takes to name every face of a photo set.

A simulated user who knows the truth (identities = folder names of a `<set>/<person>/*.jpg`
tree; in a photo with several faces the biggest one carries the label) labels the library
with the organizer's own API, the way the CLI/dashboard offer it (the default, ``--ui batch``):

1. scan, cluster (the machine's work, no user action);
2. repeatedly take the biggest open work item (most faces of known people): the largest
   unnamed group, or the biggest batch question ("Are these 37 faces X?",
   organizer.questions), and answer it like a person would: a group offered as "It's
   <name>" with the right name is 1 action, a group named by typing is 1; a batch question is
   accepted in 1 action with the wrong faces unticked (k unticks = 1 + (1 if k > 0) actions,
   like a multi-select removal), or rejected whole (1);
3. when neither is left: run `cluster` again (1 action; fixing a wrong auto-assignment costs
   1 move per group), then name the biggest Unassigned stack (organizer.stacks) the same way
   (1 + 1 if it needs unticks; a stack of one is "label one face by hand"), and go back to 2;

until every face of a known identity carries the right person. Refusals for two faces of
one photo (SamePhotoConflict) are answered with force, 1 more action each.

Printed next to actions per face: the lower bound (one action per identity with a detected
face) and the ratio actions / lower bound. Also printed: the one-face-at-a-time baseline
(1 action per face), and with ``--ui faces`` the previous UI (suggestions answered one
group or face at a time, wrong faces removed separately). ``--profile family``: a dozen
identities with the most photos (at most 300 each) plus a long tail of people seen once or
twice. With ``--max-cap`` the batch questions are uncapped and the share of right faces
per rank in a question is printed (how the question size cap was chosen).

    python bench/labelling.py                                             # people-small/train
    python bench/labelling.py --set ../shared/photos/lfw-dev --keep /tmp/lfw.db
    python bench/labelling.py --set ../shared/photos/lfw-dev --keep /tmp/lfw.db --profile family
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

from sqlalchemy import delete, select, update  # noqa: E402

from organizer import labelling  # noqa: E402
from organizer.browse import list_clusters  # noqa: E402
from organizer.clustering import cluster_faces, pairwise_precision_recall  # noqa: E402
from organizer.config import Settings  # noqa: E402
from organizer.db import Library  # noqa: E402
from organizer.labelling import SamePhotoConflict  # noqa: E402
from organizer.models import Assignment, Cluster, ClusterRun, Face, FaceRejection, LibraryMeta, Operation, Person, Photo  # noqa: E402
from organizer.questions import (  # noqa: E402
    BATCH_CAP,
    BATCH_MAX_DISTANCE,
    accept_batch,
    group_offer,
    next_batch_question,
    reject_batch,
)
from organizer.scanner import scan  # noqa: E402
from organizer.stacks import unassigned_stacks  # noqa: E402
from organizer.suggestions import accept_suggestion, next_suggestion, reject_suggestion  # noqa: E402
from organizer.testing import truth_by_folder  # noqa: E402

#: --profile family: this many identities with the most photos, each capped at FAMILY_MAX photos
FAMILY_CORE = 12
FAMILY_MAX = 300
#: ... plus this many people seen once and this many seen twice (spread over the names)
FAMILY_ONCE = 12
FAMILY_TWICE = 12


def pick_identities(src: Path, limit: int | None) -> list[Path]:
    """Every identity folder, or ``limit`` of them spread evenly over the sorted names (so the
    long tail of one-photo people is represented as in the whole set)."""
    folders = sorted(d for d in src.iterdir() if d.is_dir())
    if limit and limit < len(folders):
        step = len(folders) / limit
        folders = [folders[int(i * step)] for i in range(limit)]
    return folders


def family_profile(src: Path) -> dict[str, int]:
    """{identity folder: photos to use}: the FAMILY_CORE biggest (at most FAMILY_MAX photos
    each, the first by file name) and a tail of people with one or two photos."""
    sizes = {d.name: len(list(d.glob("*.jpg"))) for d in src.iterdir() if d.is_dir()}
    core = sorted(sizes, key=lambda n: (-sizes[n], n))[:FAMILY_CORE]
    out = {n: min(sizes[n], FAMILY_MAX) for n in core}
    for count, want in ((1, FAMILY_ONCE), (2, FAMILY_TWICE)):
        pool = sorted(n for n, c in sizes.items() if c == count)
        step = max(1, len(pool) // max(1, want))
        out.update({n: count for n in pool[::step][:want]})
    return out


def state(lib: Library) -> dict[int, tuple[str | None, Assignment | None, int | None]]:
    """face -> (person name if the face is theirs, assignment, cluster)."""
    with lib.session() as s:
        rows = s.execute(select(Face.id, Person.name, Face.assignment, Face.cluster_id)
                         .outerjoin(Person, Person.id == Face.person_id).where(Face.is_face.is_(True))).all()
    return {fid: (name if a in (Assignment.confirmed, Assignment.auto) else None, a, cid) for fid, name, a, cid in rows}


class User:
    def __init__(self, lib: Library, truth: dict[int, str]) -> None:
        self.lib, self.truth = lib, truth
        self.actions: Counter[str] = Counter()
        #: (rank in the question, right?, confidence) of every face offered in a batch question
        self.offered: list[tuple[int, bool, float]] = []

    def act(self, kind: str, n: int = 1) -> None:
        self.actions[kind] += n

    def done(self) -> bool:
        st = state(self.lib)
        return all(st.get(f, (None,))[0] == name for f, name in self.truth.items())

    def forced(self, call) -> None:  # type: ignore[no-untyped-def]
        """Run ``call(force)``; a same-photo refusal is confirmed (1 more action)."""
        try:
            call(False)
        except SamePhotoConflict:
            self.act("confirm same photo")
            call(True)

    # --- the batch UI ---------------------------------------------------------------------------

    def answer_group(self, cid: int, faces: list[int]) -> None:
        known = [self.truth[f] for f in faces if f in self.truth]
        name = Counter(known).most_common(1)[0][0]
        offer = group_offer(self.lib, cid)
        wrong = [f for f in faces if self.truth.get(f) != name]
        self.forced(lambda force: labelling.name_cluster(self.lib, cid, name, left_out=wrong, force=force))
        self.act("It's <name>" if offer is not None and offer.person_name == name else "name group")
        if wrong:
            self.act("untick")

    def answer_question(self, q) -> None:  # type: ignore[no-untyped-def]
        right = [f for f in q.face_ids if self.truth.get(f) == q.person_name]
        wrong = [f for f in q.face_ids if f not in right]
        self.offered += [(n, f in right, c) for n, (f, c) in enumerate(zip(q.face_ids, q.confidences, strict=True))]
        if right:
            self.forced(lambda force: accept_batch(self.lib, q.person_id, right, left_out=wrong, force=force))
            self.act("accept batch")
            if wrong:
                self.act("untick")
        else:
            reject_batch(self.lib, q.person_id, q.face_ids)
            self.act("reject batch")

    def name_stack(self) -> bool:
        """Name the biggest stack holding a face of a known person not yet theirs."""
        st = state(self.lib)
        for stack in unassigned_stacks(self.lib, limit=100_000):
            todo = [f for f in stack.face_ids if f in self.truth and st.get(f, (None,))[0] != self.truth[f]]
            if not todo:
                continue
            name = Counter(self.truth[f] for f in todo).most_common(1)[0][0]
            right = [f for f in stack.face_ids if self.truth.get(f) == name]
            wrong = [f for f in stack.face_ids if f not in right]
            self.forced(lambda force, right=right, name=name, wrong=wrong:
                        labelling.assign_faces(self.lib, right, name, left_out=wrong, force=force))
            self.act("name stack" if len(stack.face_ids) > 1 else "label one face")
            if wrong:
                self.act("untick")
            return True
        return False

    # --- the previous UI -----------------------------------------------------------------------

    def answer_cluster_old(self, cid: int, faces: list[int]) -> None:
        known = [self.truth[f] for f in faces if f in self.truth]
        name = Counter(known).most_common(1)[0][0]
        self.forced(lambda force: labelling.name_cluster(self.lib, cid, name, force=force))
        self.act("name cluster")
        wrong = [f for f in faces if self.truth.get(f) != name]
        if wrong:
            labelling.remove_faces(self.lib, wrong)
            self.act("remove wrong faces")

    def answer_suggestion_old(self, item) -> None:  # type: ignore[no-untyped-def]
        right = [f for f in item.face_ids if self.truth.get(f) == item.person_name]
        wrong = [f for f in item.face_ids if f not in right]
        if right:
            self.forced(lambda force: accept_suggestion(self.lib, right, item.person_id, force=force))
            self.act("accept")
        if wrong:
            reject_suggestion(self.lib, wrong, item.person_id)
            self.act("reject")

    # --- both ----------------------------------------------------------------------------------

    def fix_person_pages(self) -> None:
        """Look through each person's faces and move wrong ones (auto-assigned) where they belong."""
        st = state(self.lib)
        groups: dict[tuple[str, str | None], list[int]] = {}
        for f, (name, _a, _c) in st.items():
            if name is not None and self.truth.get(f) != name:
                groups.setdefault((name, self.truth.get(f)), []).append(f)
        for (_name, true_name), faces in groups.items():
            if true_name is None:
                labelling.remove_faces(self.lib, faces)
                self.act("remove wrong faces")
            else:
                self.forced(lambda force, faces=faces, true_name=true_name:
                            labelling.move_faces(self.lib, faces, true_name, force=force))
                self.act("move wrong faces")

    def label_next_face(self) -> bool:
        st = state(self.lib)
        for f, name in self.truth.items():
            if st.get(f, (None,))[0] != name:
                self.forced(lambda force, f=f, name=name: labelling.assign_faces(self.lib, [f], name, force=force))
                self.act("label one face")
                return True
        return False

    def label_rest_one_by_one(self) -> None:
        st = state(self.lib)
        for f, name in self.truth.items():
            if st.get(f, (None,))[0] != name:
                self.forced(lambda force, f=f, name=name: labelling.assign_faces(self.lib, [f], name, force=force))
                self.act("label one face (at the end)")


def forget_labels(lib: Library) -> None:
    with lib.session() as s:
        s.execute(update(Face).values(person_id=None, assignment=None, confidence=None, cluster_id=None, is_face=True))
        for table in (FaceRejection, Operation, Person, Cluster, ClusterRun):
            s.execute(delete(table))
        s.execute(delete(LibraryMeta).where(LibraryMeta.key.like(f"{labelling.KEPT_APART}%")))


def keep_only(lib: Library, use: dict[str, int]) -> None:
    """Delete the photos not in the profile ({folder: first n photos by name})."""
    with lib.session() as s:
        rows = sorted(s.execute(select(Photo.id, Photo.path)).all(), key=lambda r: r[1])
        seen: Counter[str] = Counter()
        drop = []
        for pid, path in rows:
            folder = path.split("/")[-2] if "/" in path else ""
            seen[folder] += 1
            if seen[folder] > use.get(folder, 0):
                drop.append(pid)
        for a in range(0, len(drop), 500):
            s.execute(delete(Photo).where(Photo.id.in_(drop[a:a + 500])))


def open_cluster_faces(lib: Library, cid: int) -> list[int]:
    with lib.session() as s:
        return list(s.scalars(select(Face.id).where(
            Face.cluster_id == cid, Face.is_face.is_(True),
            (Face.person_id.is_(None)) | (Face.assignment == Assignment.suggested))))


def next_cluster(lib: Library, truth: dict[int, str], skip: set[int]) -> tuple[int, list[int]] | None:
    for c in list_clusters(lib, limit=50):
        if c.id in skip:
            continue
        faces = open_cluster_faces(lib, c.id)
        if any(f in truth for f in faces):
            return c.id, faces
        skip.add(c.id)  # only faces of unknown people (bystanders): leave them
    return None


def run(lib: Library, settings: Settings, verbose: bool, ui: str = "batch", cap: int = BATCH_CAP,
        batch_distance: float = BATCH_MAX_DISTANCE) -> dict:
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
        cluster = next_cluster(lib, truth, skip_clusters)
        if ui == "batch" and cluster is not None:
            user.answer_group(*cluster)          # the Review page: every group first
            continue
        if ui == "batch" and not reclustered:
            # every group named: "group again" lets the anchored pass take what is close
            # to the people just named, before any question is asked
            cluster_faces(lib, settings=settings)
            user.act("re-cluster")
            user.fix_person_pages()
            reclustered = True
            continue
        item = (next_batch_question(lib, cap=cap, max_distance=batch_distance) if ui == "batch"
                else next_suggestion(lib))
        known = sum(1 for f in item.face_ids if f in truth) if item is not None else 0
        if item is not None and known == 0 and ui == "batch":
            reject_batch(lib, item.person_id, item.face_ids)   # only bystanders: "none of them"
            user.act("reject batch")
            continue
        if cluster is None and item is None:
            if not reclustered:
                cluster_faces(lib, settings=settings)
                user.act("re-cluster")
                user.fix_person_pages()
                reclustered = True
                continue
            if ui == "batch" and user.name_stack():
                continue
            if not user.label_next_face():
                break
            continue
        if cluster is not None and (item is None or sum(1 for f in cluster[1] if f in truth) >= known):
            user.answer_cluster_old(*cluster)
        elif ui == "batch":
            user.answer_question(item)
        else:
            user.answer_suggestion_old(item)
        if verbose:
            print(dict(user.actions))
    user.fix_person_pages()
    user.label_rest_one_by_one()
    st = state(lib)
    right = sum(1 for f, name in truth.items() if st.get(f, (None,))[0] == name)
    return {"faces": len(truth), "identities": len(set(truth.values())), "actions": sum(user.actions.values()),
            "by_kind": dict(user.actions), "accuracy": right / len(truth), "precision": p, "recall": r,
            "initial": report, "seconds": time.perf_counter() - t0, "offered": user.offered}


def cap_table(offered: list[tuple[int, bool, float]]) -> str:
    """Share of right faces among those offered at ranks below each cap, and by confidence."""
    out = []
    for cap in (10, 20, 40, 60, 100, 200, 10 ** 9):
        got = [ok for rank, ok, _c in offered if rank < cap]
        if got:
            label = "all" if cap == 10 ** 9 else str(cap)
            out.append(f"cap {label}: {sum(got) / len(got):.4f} of {len(got)}")
    for lo, hi in ((0.9, 1.01), (0.5, 0.9), (0.1, 0.5), (0.0, 0.1)):
        got = [ok for _r, ok, c in offered if lo <= c < hi]
        if got:
            out.append(f"confidence {lo}-{min(hi, 1.0)}: {sum(got) / len(got):.4f} of {len(got)}")
    return "; ".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--set", default=str(REPO.parent / "shared" / "photos" / "people-small" / "train"),
                    help="identity-labelled photo set: <set>/<person>/*.jpg")
    ap.add_argument("--limit-identities", type=int, help="use this many identities, spread over the set")
    ap.add_argument("--profile", choices=["whole", "family"], default="whole",
                    help="family: a dozen big identities plus a long tail of people seen once or twice")
    ap.add_argument("--ui", choices=["batch", "faces"], default="batch",
                    help="batch: batch questions, It's <name>, stacks (default); faces: the previous UI")
    ap.add_argument("--cap", type=int, default=BATCH_CAP, help="faces per batch question")
    ap.add_argument("--batch-distance", type=float, default=BATCH_MAX_DISTANCE,
                    help="faces further than this from the person stay out of batch questions")
    ap.add_argument("--max-cap", action="store_true", help="uncapped questions; print right share per rank")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--eps", type=float)
    ap.add_argument("--min-samples", type=int)
    ap.add_argument("--keep", help="keep the scanned library at this path (reused when it exists: a scanned "
                                   "copy of the whole set serves every profile)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-labelling-"))
    try:
        src = Path(args.set)
        use = family_profile(src) if args.profile == "family" else None
        folders = [src / n for n in sorted(use)] if use else pick_identities(src, args.limit_identities)
        db = Path(args.keep) if args.keep else tmp / "library.db"
        settings = Settings(db_url=f"sqlite:///{db.resolve()}").with_overrides(
            workers=args.workers, eps=args.eps, min_samples=args.min_samples)
        fresh = not db.exists()
        if use and not fresh:   # a kept scan of the whole set: work on a copy holding the profile
            copy = tmp / "profile.db"
            shutil.copy(db, copy)
            settings = settings.with_overrides(db_url=f"sqlite:///{copy}")
        lib = Library.open(settings.db_url)
        if fresh:
            root = tmp / "photos"
            for d in folders:
                if use:
                    (root / d.name).mkdir(parents=True)
                    for f in sorted(d.glob("*.jpg"))[:use[d.name]]:
                        shutil.copy2(f, root / d.name / f.name)
                else:
                    shutil.copytree(d, root / d.name)
            t = time.perf_counter()
            scan(lib, root, settings)
            print(f"scanned {len(folders)} identities in {time.perf_counter() - t:.0f}s")
        else:
            forget_labels(lib)  # a kept library from an earlier run: start from scratch
            if use:
                keep_only(lib, use)
        cap = 10 ** 6 if args.max_cap else args.cap
        res = run(lib, settings, args.verbose, ui=args.ui, cap=cap, batch_distance=args.batch_distance)
        base = res["faces"]
        bound = res["identities"]
        print(f"set: {src} ({len(folders)} identity folders, profile {args.profile}, ui {args.ui}, "
              f"cap {'none' if args.max_cap else cap}, batch distance {args.batch_distance})")
        print(f"faces (main face of each photo): {res['faces']}, identities with a face: {res['identities']}")
        print(f"initial clustering: eps {res['initial'].eps}, min_samples {res['initial'].min_samples}: "
              f"pairwise precision {res['precision']:.3f}, recall {res['recall']:.3f}; {res['initial'].summary()}")
        print(f"organizer: {res['actions']} actions = {res['actions'] / base:.3f} actions per face; "
              f"final accuracy {res['accuracy']:.1%}")
        print("  " + ", ".join(f"{k}: {v}" for k, v in sorted(res["by_kind"].items())))
        print(f"lower bound (one action per identity): {bound} actions = {bound / base:.3f} per face; "
              f"actions / lower bound = {res['actions'] / max(1, bound):.2f}")
        print(f"baseline (one face at a time): {base} actions = 1.000 actions per face; accuracy 100.0%")
        fewer = base / max(1, res["actions"])
        print(f"ratio: {res['actions'] / base:.3f} of the baseline's actions ({fewer:.1f}x fewer)")
        if res["offered"]:
            print("batch questions, share of offered faces that were right, by cap: " + cap_table(res["offered"]))
        print(f"took {res['seconds']:.0f}s")
        lib.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
