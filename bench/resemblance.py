"""Resemblance benchmark on identity-labelled photos (lfw-dev by default).

    python bench/resemblance.py [--photos ../shared/photos/lfw-dev] [--db /tmp/x.db] [--per-identity 8]

What it measures (all on real scanned faces, through ``organizer.resemblance``):

* calibration out of sample: the identities are split in two halves; the score scale is
  calibrated on one half (``calibrate``), the other half is scored. Unrelated pairs
  should read ~0 (score) / ~50 (percentile);
* self vs unrelated: each evaluated person's photos are split into a "child" half and a
  held-out half; ``resemble(child, [held-out self, 4 unrelated])`` should rank the self
  first, far above the unrelated;
* count bias: the same unrelated candidate scored from all its photos and from 2 of them.
  Our trimmed mean is compared with the naive "best match" (minimum distance) baseline
  in the same run: the printed ratio is how much more the baseline is moved by counts;
* feature regions: how well the shape of each landmark region (eyes, nose, mouth, jaw)
  alone tells people apart (ROC AUC), next to the full embedding;
* kinship: if a kinship set (``<set>/<family>/...``) is present under ../shared/photos,
  parent-vs-unrelated ranking; otherwise says that none is present.

The scanned library is cached in ``--db`` so a second run skips the scan.
"""
from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np
from sqlalchemy import select

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from organizer import resemblance as R  # noqa: E402
from organizer.config import Settings  # noqa: E402
from organizer.db import Library  # noqa: E402
from organizer.models import Assignment, Face, Person, Photo  # noqa: E402
from organizer.scanner import scan  # noqa: E402

SHARED = REPO.parent / "shared" / "photos"


def build(photos: Path, work: Path, per_identity: int, min_photos: int, workers: int) -> Library:
    """Copy identities with >= min_photos photos (first per_identity of each), scan, label by folder."""
    root = work / "photos"
    for d in sorted(photos.iterdir()):
        files = sorted(d.glob("*.jpg")) if d.is_dir() else []
        if len(files) < min_photos:
            continue
        (root / d.name).mkdir(parents=True, exist_ok=True)
        for f in files[:per_identity]:
            if not (root / d.name / f.name).exists():
                shutil.copy2(f, root / d.name / f.name)
    settings = Settings(db_url=f"sqlite:///{work / 'library.db'}", workers=workers)
    lib = Library.open(settings.db_url)
    t = time.perf_counter()
    report = scan(lib, root, settings)
    print(f"scan: {report.summary()} ({time.perf_counter() - t:.0f} s)")
    with lib.session() as s:
        names: dict[str, Person] = {p.name: p for p in s.scalars(select(Person))}
        for photo in s.scalars(select(Photo)):
            if not photo.faces or any(f.person_id is not None for f in photo.faces):
                continue  # labelled by an earlier run (and maybe moved to a "(child)")
            name = photo.path.split("/")[-2]
            if name not in names:
                names[name] = Person(name=name)
                s.add(names[name])
                s.flush()
            main = max(photo.faces, key=lambda f: (f.bottom - f.top) * (f.right - f.left))
            main.person_id, main.assignment = names[name].id, Assignment.confirmed
    return lib


def split_heldout(lib: Library, people: list[int]) -> dict[int, int]:
    """Move half of each person's photos to a new person "<name> (child)"; returns {child: self}."""
    out = {}
    with lib.session() as s:
        for pid in people:
            person = s.get(Person, pid)
            faces = list(s.scalars(select(Face).where(Face.person_id == pid).order_by(Face.id)))
            child = s.scalar(select(Person).where(Person.name == f"{person.name} (child)"))
            if child is None:
                child = Person(name=f"{person.name} (child)")
                s.add(child)
                s.flush()
                perm = np.random.default_rng(pid).permutation(len(faces))
                for i in perm[: len(faces) // 2]:
                    faces[i].person_id = child.id
            out[child.id] = pid
    return out


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a random positive scores higher than a random negative)."""
    pos, neg = np.asarray(pos), np.asarray(neg)
    order = np.argsort(np.concatenate([pos, neg]), kind="stable")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def region_shapes(landmarks: dict) -> dict[str, np.ndarray] | None:
    """Each region's landmark shape after removing position, scale and in-plane rotation
    (aligned on the eye centres), so only the region's own geometry is left."""
    try:
        pts = np.concatenate([np.asarray(landmarks[g], dtype=float) for g in
                              ("chin", "left_eyebrow", "right_eyebrow", "nose_bridge", "nose_tip",
                               "left_eye", "right_eye", "top_lip", "bottom_lip")])
    except (KeyError, TypeError, ValueError):
        return None
    le, re_ = pts[36:42].mean(0), pts[42:48].mean(0)
    axis = re_ - le
    scale = np.linalg.norm(axis)
    if scale == 0:
        return None
    c, s = axis / scale
    rot = np.array([[c, s], [-s, c]])
    p = (pts - (le + re_) / 2) @ rot.T / scale
    regions = {"jaw": p[0:17], "eyebrows": p[17:27], "nose": p[27:36], "eyes": p[36:48], "mouth": p[48:68]}
    return {k: (v - v.mean(0)).ravel() for k, v in regions.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, default=SHARED / "lfw-dev")
    ap.add_argument("--work", type=Path, default=Path("/tmp/organizer-bench-resemblance"))
    ap.add_argument("--per-identity", type=int, default=8)
    ap.add_argument("--min-photos", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args()
    if not args.photos.exists():
        sys.exit(f"no photos at {args.photos}")
    args.work.mkdir(parents=True, exist_ok=True)
    build(args.photos, args.work, args.per_identity, args.min_photos, args.workers).close()
    # the evaluation moves faces around: work on a fresh copy of the scanned library
    evaluation = args.work / "evaluation.db"
    evaluation.unlink(missing_ok=True)
    with sqlite3.connect(args.work / "library.db") as a, sqlite3.connect(evaluation) as b:
        a.backup(b)
    lib = Library.open(f"sqlite:///{evaluation}")

    with lib.session() as s:
        rows = R._load_faces(s, [p.id for p in s.scalars(select(Person).where(~Person.name.endswith(" (child)")))])
        people = {p.id: p for p in s.scalars(select(Person))}
    sets = {pid: R._face_set(people[pid], r) for pid, r in rows.items() if r}
    ids = sorted(pid for pid in sets if len(sets[pid]) >= 2)
    rng = np.random.default_rng(7)
    rng.shuffle(ids)
    cal_ids, eval_ids = sorted(ids[: len(ids) // 2]), sorted(ids[len(ids) // 2:])
    n_faces = sum(len(sets[i]) for i in ids)
    print(f"library: {len(ids)} identities, {n_faces} usable faces; calibrate on {len(cal_ids)}, evaluate on {len(eval_ids)}")

    # --- calibration, out of sample ----------------------------------------------------
    heldout = split_heldout(lib, [pid for pid in eval_ids if len(sets[pid]) >= 6])
    child_ids = list(heldout)
    cal = R.calibrate(lib, exclude=eval_ids + child_ids)
    print(f"calibration ({cal.source}, {cal.people} people, {cal.pairs} pairs): "
          f"unrelated median {cal.unrelated:.4f} -> score 0, same-person median {cal.self:.4f} -> score 100")

    # --- self vs unrelated through resemble() ------------------------------------------
    t = time.perf_counter()
    self_scores, unrel_scores, unrel_pct, self_first, widths_self, contains = [], [], [], 0, [], 0
    for k, (child, self_id) in enumerate(heldout.items()):
        pool = [o for o in eval_ids if o != self_id]
        picks = list(np.random.default_rng(child).choice(pool, 4, replace=False))
        res = R.resemble(lib, child, [self_id, *map(int, picks)], rounds=args.rounds, evidence=1, calibration=cal)
        for c in res.candidates:
            if c.person_id == self_id:
                self_scores.append(c.score)
                widths_self.append(c.high - c.low)
                self_first += c.rank == 1
            else:
                unrel_scores.append(c.score)
                unrel_pct.append(c.percentile)
                contains += c.low <= 0 <= c.high
    elapsed = time.perf_counter() - t
    self_scores, unrel_scores, unrel_pct = map(np.asarray, (self_scores, unrel_scores, unrel_pct))
    print(f"self vs unrelated ({len(heldout)} people, each: held-out self + 4 unrelated; {elapsed / len(heldout) * 1000:.0f} ms per resemble call):")
    print(f"  self (held-out photos) score: median {np.median(self_scores):.0f}, "
          f"IQR {np.percentile(self_scores, 25):.0f}..{np.percentile(self_scores, 75):.0f}; ranked first {self_first}/{len(heldout)}")
    print(f"  unrelated score:              median {np.median(unrel_scores):.0f}, "
          f"IQR {np.percentile(unrel_scores, 25):.0f}..{np.percentile(unrel_scores, 75):.0f}, "
          f"percentile median {np.median(unrel_pct):.0f}; 95% interval contains 0 for {contains / len(unrel_scores):.0%}")
    print(f"  separation: AUC self-vs-unrelated {auc(self_scores, unrel_scores):.3f}; "
          f"median self interval width {np.median(widths_self):.0f} points")

    # --- count bias: ours vs the best-match baseline ------------------------------------
    big = [pid for pid in eval_ids if len(sets[pid]) >= 8]
    diffs_ours, diffs_min = [], []
    r2 = np.random.default_rng(3)
    for cand in big:
        cs = sets[cand]
        for child in r2.choice([p for p in eval_ids if p != cand], 5, replace=False):
            ks = sets[int(child)]
            d_full = R.pair_distances(ks.vectors, cs.vectors)
            for _ in range(4):
                sub = r2.choice(len(cs), 2, replace=False)
                ours_full = R.trimmed_pair_mean(d_full, ks.weights, cs.weights)
                ours_sub = R.trimmed_pair_mean(d_full[:, sub], ks.weights, cs.weights[sub])
                diffs_ours.append(float(ours_sub - ours_full))
                diffs_min.append(float(d_full[:, sub].min(1).mean() - d_full.min(1).mean()))
    bias_ours, bias_min = np.mean(diffs_ours), np.mean(diffs_min)
    scale = cal.unrelated - cal.self
    print(f"count bias (unrelated candidate, {len(big)} people with 8 photos vs 2 of them; mean shift in score points):")
    se_ours = 100 * np.std(diffs_ours) / np.sqrt(len(diffs_ours)) / scale
    se_min = 100 * np.std(diffs_min) / np.sqrt(len(diffs_min)) / scale
    print(f"  trimmed mean (ours) {-100 * bias_ours / scale:+.2f} (+-{se_ours:.2f} s.e.), "
          f"best-match baseline {-100 * bias_min / scale:+.2f} (+-{se_min:.2f})"
          f"  -> baseline/ours ratio {abs(bias_min) / max(abs(bias_ours), 1e-9):.0f}x")

    # --- feature regions -----------------------------------------------------------------
    with lib.session() as s:
        lm = {fid: lmk for fid, lmk in s.execute(select(Face.id, Face.landmarks).where(Face.person_id.in_(ids)))}
    shapes, owner, embs = [], [], []
    for pid in ids:
        fs = sets[pid]
        for fid, vec in zip(fs.face_ids[:6], fs.vectors[:6]):
            r = region_shapes(lm.get(int(fid)))
            if r is not None:
                shapes.append(r)
                owner.append(pid)
                embs.append(vec)
    owner = np.asarray(owner)
    same = owner[:, None] == owner[None, :]
    iu = np.triu_indices(len(owner), 1)
    same_pairs = same[iu]
    neg_pick = np.random.default_rng(1).choice(np.flatnonzero(~same_pairs), min(20000, int((~same_pairs).sum())), replace=False)
    pos_pick = np.flatnonzero(same_pairs)
    line = []
    emb_d = R.pair_distances(np.asarray(embs), np.asarray(embs))[iu]
    line.append(f"whole-face embedding {auc(-emb_d[pos_pick], -emb_d[neg_pick]):.3f}")
    for region in ("eyes", "eyebrows", "nose", "mouth", "jaw"):
        X = np.asarray([sh[region] for sh in shapes])
        d = R.pair_distances(X, X)[iu]
        line.append(f"{region} {auc(-d[pos_pick], -d[neg_pick]):.3f}")
    print(f"feature regions, same-person vs different-person ROC AUC from landmark shape alone "
          f"({len(owner)} faces): " + ", ".join(line))

    kin = [p for p in SHARED.iterdir() if p.is_dir() and any(w in p.name.lower() for w in ("kin", "famil", "fiw"))] if SHARED.exists() else []
    print(f"kinship set: {'found ' + ', '.join(str(k) for k in kin) + ' (not evaluated by this version)' if kin else 'none under ' + str(SHARED) + ' (parent-vs-unrelated rate not measurable)'}")


if __name__ == "__main__":
    main()
