"""Family resemblance ("who does the kid look like?") and look-alike search.

The method, in the words the README uses:

* **Faces used.** Every face the user confirmed (or the machine auto-assigned) for a
  person, minus bad photos: profile views (``frontal`` from the 68 landmarks below
  :data:`MIN_FRONTAL`) and poor faces (``Face.quality`` below :data:`MIN_QUALITY`). The
  remaining faces are weighted by their quality, so a sharp frontal face counts more
  than a small blurry one.
* **The statistic.** All child-face x candidate-face embedding distances, each side's
  weights normalised to sum to one (a parent with 500 photos has each photo count
  1/500, one with 12 has each count 1/12), summarised by a weighted *trimmed mean*
  that ignores the closest and farthest 20 % of the pair weight. A mean of pairwise
  distances has the same expected value whatever the photo counts are, unlike a
  "best match" (the minimum over more photos is always smaller), and the trimming
  shrugs off the odd mislabelled or badly lit photo on either side.
* **The interval.** A bootstrap over photos: both the child's and the candidate's photos
  are resampled with replacement (:data:`BOOTSTRAP_ROUNDS` times) and the statistic
  recomputed; the 2.5th and 97.5th percentiles give a 95 % interval. The child's
  resample is shared by all candidates in a round, so "ranks first in 87 % of rounds"
  (``p_best``) compares candidates on the same child photos.
* **The scale.** The statistic is mapped to a score where 0 is the typical value for two
  unrelated people *in this library* and 100 the typical value for two separate sets
  of photos of the same person: ``score = 100 * (unrelated - d) / (unrelated - self)``.
  Both anchors are measured on the library's other named people (built-in values
  measured on LFW are used when the library has too few). ``percentile`` says what
  share of unrelated pairs of people are less alike than this pair (50 = typical).
* **Age-matched.** With birth dates and capture dates, only pairs where the candidate
  was about the child's age in the photo count (within :data:`AGE_TOLERANCE_MIN` years
  or :data:`AGE_TOLERANCE_FRAC` of the child's age, whichever is more), so the kid at 5
  is compared with dad's photos at 3-7. Too few such photos: the comparison falls back
  to all ages and says so.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import faces as face_api
from .db import Library
from .errors import InvalidRequest, UnreadableImage
from .imaging import open_image
from .models import Assignment, Face, Person, Photo, embedding_from_bytes
from .queries import resolve_person

#: faces whose nose sits this far off the eye midline (0 = profile, 1 = frontal) are dropped
MIN_FRONTAL = 0.35
#: faces below this Face.quality are dropped (blurred, tiny)
MIN_QUALITY = 0.2
#: fewer usable faces than this: the best remaining faces are used, with a note
MIN_FACES = 2
#: share of the pair weight trimmed at each end of the distance distribution
TRIM = 0.2
#: at most this many faces per person enter a comparison (a seeded random sample, never
#: "the best ones": picking the best of many would favour the person with many photos)
MAX_FACES = 60
#: bootstrap rounds for the intervals
BOOTSTRAP_ROUNDS = 1000
CONFIDENCE = 0.95
#: calibration: people and faces per person used for the reference distributions
CAL_MAX_PEOPLE = 80
CAL_MAX_FACES = 16
CAL_MIN_PEOPLE = 5          # unrelated reference needs at least this many other people
CAL_MIN_SELF_PEOPLE = 3     # self reference needs this many people with >= 4 good faces
#: age matching: a candidate photo matches a child photo when the ages differ by at most
#: max(AGE_TOLERANCE_MIN, AGE_TOLERANCE_FRAC * child's age) years
AGE_TOLERANCE_MIN = 2.0
AGE_TOLERANCE_FRAC = 0.2
MIN_AGE_MATCHED_FACES = 2
#: built-in calibration, measured by bench/resemblance.py on lfw-dev (unrelated people),
#: used when the library has too few other named people to calibrate itself
BUILTIN_UNRELATED = 0.82   # median statistic between unrelated people (IQR 0.75-0.87)
BUILTIN_UNRELATED_SD = 0.08
BUILTIN_SELF = 0.45        # median statistic between two photo sets of one person
#: look-alike: dlib's same-person distance; beyond it nobody in the library is close
LOOKALIKE_THRESHOLD = face_api.SAME_PERSON_DISTANCE
#: largest upload accepted by :func:`lookalike_bytes`
MAX_UPLOAD_BYTES = 20 * 1024 * 1024

_USED = (Assignment.confirmed, Assignment.auto)


# --- results ---------------------------------------------------------------------------


@dataclass
class EvidencePair:
    """One of the most similar face pairs: the child's face beside the candidate's."""

    child_face_id: int
    candidate_face_id: int
    child_photo_id: int
    candidate_photo_id: int
    distance: float
    child_age: float | None = None       # years, when birth and capture dates are known
    candidate_age: float | None = None


@dataclass
class CandidateScore:
    person_id: int
    name: str
    rank: int
    score: float            # 0 = like unrelated people, 100 = like the same person
    low: float              # 95 % bootstrap interval of the score
    high: float
    percentile: float       # share of unrelated pairs less alike than this one (50 = typical)
    distance: float         # the raw statistic (trimmed mean pair distance)
    p_best: float           # share of bootstrap rounds in which this candidate ranked first
    child_faces: int        # faces that entered the comparison
    candidate_faces: int
    age_matched: bool = False
    note: str | None = None
    evidence: list[EvidencePair] = field(default_factory=list)


@dataclass
class CalibrationInfo:
    unrelated: float        # statistic that reads as score 0
    self: float             # statistic that reads as score 100
    source: str             # "library" or "built-in (lfw-dev)"
    people: int             # reference people used
    pairs: int              # unrelated reference pairs used
    unrelated_stats: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))

    def score(self, d: np.ndarray | float) -> np.ndarray | float:
        return 100.0 * (self.unrelated - np.asarray(d)) / (self.unrelated - self.self)

    def percentile(self, d: float) -> float:
        """Share (0-100) of unrelated reference pairs whose statistic is larger (less alike)."""
        if len(self.unrelated_stats) >= 10:
            ref = self.unrelated_stats
            return float(100.0 * ((ref > d).sum() + 0.5 * (ref == d).sum()) / len(ref))
        from math import erf, sqrt

        z = (self.unrelated - d) / BUILTIN_UNRELATED_SD
        return float(50.0 * (1.0 + erf(z / sqrt(2.0))))


@dataclass
class ResemblanceResult:
    child_id: int
    child_name: str
    candidates: list[CandidateScore]   # ranked, most alike first
    calibration: CalibrationInfo
    verdict: str
    notes: list[str] = field(default_factory=list)
    age_matched: bool = False
    rounds: int = BOOTSTRAP_ROUNDS


# --- loading faces ---------------------------------------------------------------------


@dataclass
class _FaceSet:
    """A person's usable faces, as arrays (internal)."""

    person_id: int
    name: str
    birth: date | None
    face_ids: np.ndarray
    photo_ids: np.ndarray
    vectors: np.ndarray          # (n, 128) float32
    weights: np.ndarray          # quality, > 0
    taken: list[datetime | None]
    file_dates: np.ndarray       # True where the capture time is the file's mtime
    note: str | None = None

    def __len__(self) -> int:
        return len(self.face_ids)

    def ages(self) -> np.ndarray:
        """Age in years at each photo (NaN when unknown or before the birth date)."""
        out = np.full(len(self), np.nan)
        if self.birth is None:
            return out
        for i, t in enumerate(self.taken):
            if t is not None:
                years = (t.date() - self.birth).days / 365.25
                if years >= 0:
                    out[i] = years
        return out

    def subset(self, idx: np.ndarray) -> _FaceSet:
        return _FaceSet(self.person_id, self.name, self.birth, self.face_ids[idx], self.photo_ids[idx],
                        self.vectors[idx], self.weights[idx], [self.taken[i] for i in idx],
                        self.file_dates[idx], self.note)


def frontal_from_landmarks(landmarks: dict | None) -> float | None:
    """0 (profile) .. 1 (frontal): how centred the nose tip sits between the eyes."""
    if landmarks is None:
        return None
    try:
        left = np.mean(np.asarray(landmarks["left_eye"], dtype=np.float64), axis=0)
        right = np.mean(np.asarray(landmarks["right_eye"], dtype=np.float64), axis=0)
        nose = np.asarray(landmarks["nose_bridge"][-1], dtype=np.float64)
    except (TypeError, KeyError, IndexError, ValueError):
        return None
    dl, dr = np.linalg.norm(nose - left), np.linalg.norm(nose - right)
    return float(min(dl, dr) / max(dl, dr)) if max(dl, dr) > 0 else 0.0


def _load_faces(s: Session, person_ids: Sequence[int]) -> dict[int, list[tuple]]:
    rows = s.execute(
        select(Face.person_id, Face.id, Face.photo_id, Face.embedding, Face.quality, Face.landmarks,
               Photo.taken_at, Photo.taken_at_source)
        .join(Photo, Photo.id == Face.photo_id)
        .where(Face.person_id.in_(list(person_ids)), Face.is_face.is_(True), Face.assignment.in_(_USED))
        .order_by(Face.id)
    ).all()
    out: dict[int, list[tuple]] = {pid: [] for pid in person_ids}
    for r in rows:
        out[r[0]].append(tuple(r[1:]))
    return out


def _face_set(person: Person, rows: list[tuple], *, max_faces: int = MAX_FACES,
              keep_poor: bool = True) -> _FaceSet:
    """Usable faces of one person: profile and poor faces dropped, capped by a seeded sample."""
    good: list[tuple] = []
    poor: list[tuple] = []
    for row in rows:
        _fid, _pid, _emb, quality, landmarks, _t, _src = row
        frontal = frontal_from_landmarks(landmarks)
        ok = (quality or 0.0) >= MIN_QUALITY and (frontal is None or frontal >= MIN_FRONTAL)
        (good if ok else poor).append(row)
    note = None
    if len(good) < MIN_FACES and keep_poor and poor:
        poor.sort(key=lambda r: -(r[3] or 0.0))
        extra = poor[: MIN_FACES - len(good)]
        good = good + extra
        note = f"few good photos of {person.name}: {len(extra)} profile/low-quality face(s) used"
    if len(good) > max_faces:
        rng = np.random.default_rng(person.id)
        pick = np.sort(rng.choice(len(good), max_faces, replace=False))
        good = [good[i] for i in pick]
    return _FaceSet(
        person_id=person.id, name=person.name, birth=person.birth_date,
        face_ids=np.array([r[0] for r in good], dtype=np.int64),
        photo_ids=np.array([r[1] for r in good], dtype=np.int64),
        vectors=np.array([embedding_from_bytes(r[2]) for r in good], dtype=np.float32).reshape(-1, 128),
        weights=np.array([max(0.05, r[3] or 0.0) for r in good], dtype=np.float64),
        taken=[r[5] for r in good],
        file_dates=np.array([r[6] == "file" for r in good], dtype=bool),
        note=note,
    )


# --- the statistic ---------------------------------------------------------------------


def pair_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) Euclidean distances between embeddings."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def trimmed_pair_mean(dist: np.ndarray, wa: np.ndarray, wb: np.ndarray, mask: np.ndarray | None = None,
                      trim: float = TRIM) -> np.ndarray:
    """Weighted trimmed mean of a distance matrix, for one or many weightings at once.

    ``dist`` is (n, m); ``wa`` is (n,) or (B, n), ``wb`` is (m,) or (B, m). The weight of
    pair (i, j) is ``wa[i] * wb[j]`` (times ``mask``), normalised to 1; the lowest and
    highest ``trim`` of that weight are cut off and the rest averaged. Returns (B,)
    (NaN where a weighting leaves no weight), or a 0-d array for 1-d weights.
    """
    single = np.ndim(wa) == 1 and np.ndim(wb) == 1
    wa2, wb2 = np.atleast_2d(wa).astype(np.float64), np.atleast_2d(wb).astype(np.float64)
    flat = dist.ravel()
    order = np.argsort(flat, kind="stable")
    values = flat[order]
    m = None if mask is None else mask.ravel()[order].astype(np.float64)
    rounds = max(len(wa2), len(wb2))
    out = np.empty(rounds)
    lo, hi = trim, 1.0 - trim
    for start in range(0, rounds, 200):  # chunks keep memory small for big matrices
        stop = min(rounds, start + 200)
        a = wa2[start:stop] if len(wa2) > 1 else wa2
        b = wb2[start:stop] if len(wb2) > 1 else wb2
        prod = a[:, :, None] * b[:, None, :]
        w = prod.reshape(prod.shape[0], -1)[:, order]
        if m is not None:
            w = w * m
        total = w.sum(1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.cumsum(w / total, axis=1)
        c_prev = np.concatenate([np.zeros((len(c), 1)), c[:, :-1]], axis=1)
        contrib = np.clip(c, lo, hi) - np.clip(c_prev, lo, hi)
        res = contrib @ values / (hi - lo)
        res[total[:, 0] <= 0] = np.nan
        out[start:stop] = res
    return out[0] if single else out


def set_statistic(a: np.ndarray, b: np.ndarray, wa: np.ndarray | None = None, wb: np.ndarray | None = None) -> float:
    """The resemblance statistic between two sets of embeddings (lower = more alike)."""
    wa = np.ones(len(a)) if wa is None else wa
    wb = np.ones(len(b)) if wb is None else wb
    return float(trimmed_pair_mean(pair_distances(a, b), wa, wb))


def _bootstrap_counts(photo_ids: np.ndarray, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """(rounds, n) how often each face is drawn when its *photos* are resampled."""
    units, inverse = np.unique(photo_ids, return_inverse=True)
    draws = rng.integers(0, len(units), size=(rounds, len(units)))
    counts = np.zeros((rounds, len(units)))
    np.add.at(counts, (np.repeat(np.arange(rounds), len(units)), draws.ravel()), 1.0)
    return counts[:, inverse]


# --- calibration -----------------------------------------------------------------------


def calibrate(lib: Library, exclude: Sequence[int] = ()) -> CalibrationInfo:
    """Anchors of the score scale from the library's other named people.

    score 0 = median statistic between two different people; score 100 = median statistic
    between two halves of one person's photos. Uses built-in values (measured on
    lfw-dev) for an anchor the library cannot measure yet.
    """
    with lib.session() as s:
        people = list(s.scalars(select(Person).where(Person.id.not_in(list(exclude))).order_by(Person.id)))
        rows = _load_faces(s, [p.id for p in people])
    sets = [fs for p in people if len(fs := _face_set(p, rows[p.id], max_faces=CAL_MAX_FACES, keep_poor=False)) >= 2]
    if len(sets) > CAL_MAX_PEOPLE:
        rng = np.random.default_rng(0)
        sets = [sets[i] for i in np.sort(rng.choice(len(sets), CAL_MAX_PEOPLE, replace=False))]
    unrelated = np.array(sorted(
        set_statistic(a.vectors, b.vectors, a.weights, b.weights)
        for i, a in enumerate(sets) for b in sets[i + 1:]))
    selfs = []
    for fs in sets:
        if len(fs) >= 4:
            perm = np.random.default_rng(fs.person_id).permutation(len(fs))
            h1, h2 = perm[: len(fs) // 2], perm[len(fs) // 2:]
            selfs.append(set_statistic(fs.vectors[h1], fs.vectors[h2], fs.weights[h1], fs.weights[h2]))
    enough_unrelated = len(sets) >= CAL_MIN_PEOPLE
    enough_self = len(selfs) >= CAL_MIN_SELF_PEOPLE
    d0 = float(np.median(unrelated)) if enough_unrelated else BUILTIN_UNRELATED
    d1 = float(np.median(selfs)) if enough_self else BUILTIN_SELF
    if d0 - d1 < 0.05:  # degenerate library (e.g. one person split in many): do not divide by ~0
        d0, d1, enough_unrelated, enough_self = BUILTIN_UNRELATED, BUILTIN_SELF, False, False
    if enough_unrelated and enough_self:
        source = "library"
    elif enough_unrelated or enough_self:
        source = "library + built-in (lfw-dev)"
    else:
        source = "built-in (lfw-dev)"
    return CalibrationInfo(d0, d1, source, len(sets), len(unrelated) if enough_unrelated else 0,
                           unrelated if enough_unrelated else np.empty(0))


# --- resemblance -----------------------------------------------------------------------


def _age_mask(child: _FaceSet, cand: _FaceSet) -> tuple[np.ndarray | None, str | None]:
    """Pairs where the candidate was about the child's age, or (None, why not)."""
    if child.birth is None:
        return None, f"{child.name} has no birth date: compared at all ages"
    if cand.birth is None:
        return None, f"{cand.name} has no birth date: compared at all ages"
    ca, aa = child.ages(), cand.ages()
    tol = np.maximum(AGE_TOLERANCE_MIN, AGE_TOLERANCE_FRAC * ca)
    with np.errstate(invalid="ignore"):
        mask = np.abs(ca[:, None] - aa[None, :]) <= tol[:, None]
    mask &= np.isfinite(ca)[:, None] & np.isfinite(aa)[None, :]
    nc, na = int(mask.any(1).sum()), int(mask.any(0).sum())
    if nc < MIN_AGE_MATCHED_FACES or na < MIN_AGE_MATCHED_FACES:
        known = ca[np.isfinite(ca)]
        span = f" ({known.min():.0f}-{known.max():.0f})" if len(known) else ""
        return None, (f"only {na} photo(s) of {cand.name} and {nc} of {child.name} at matching ages"
                      f"{span}; need {MIN_AGE_MATCHED_FACES} each: compared at all ages")
    return mask, None


def _evidence(dist: np.ndarray, mask: np.ndarray | None, child: _FaceSet, cand: _FaceSet,
              count: int) -> list[EvidencePair]:
    """The ``count`` closest pairs, each face shown at most once."""
    if count <= 0:
        return []
    d = np.where(mask, dist, np.inf) if mask is not None else dist
    ca, aa = child.ages(), cand.ages()
    used_c: set[int] = set()
    used_a: set[int] = set()
    out: list[EvidencePair] = []
    for flat in np.argsort(d, axis=None, kind="stable"):
        i, j = divmod(int(flat), d.shape[1])
        if not np.isfinite(d[i, j]):
            break
        if i in used_c or j in used_a:
            continue
        used_c.add(i)
        used_a.add(j)
        out.append(EvidencePair(int(child.face_ids[i]), int(cand.face_ids[j]), int(child.photo_ids[i]),
                                int(cand.photo_ids[j]), float(dist[i, j]),
                                None if np.isnan(ca[i]) else round(float(ca[i]), 1),
                                None if np.isnan(aa[j]) else round(float(aa[j]), 1)))
        if len(out) >= count:
            break
    return out


def resemble(lib: Library, child: str | int, candidates: Sequence[str | int], *, age_matched: bool = False,
             evidence: int = 3, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0,
             calibration: CalibrationInfo | None = None) -> ResemblanceResult:
    """How much ``child`` looks like each candidate: ranked scores, 95 % intervals, evidence.

    ``child`` and each candidate: an id or a name (:func:`organizer.queries.resolve_person`).
    Read-only. Raises PersonNotFound for an unknown name and InvalidRequest for a child
    among its own candidates, no candidates, or a person without usable faces.
    """
    if not candidates:
        raise InvalidRequest("name at least one candidate to compare the child with")
    if rounds < 50:
        raise InvalidRequest("use at least 50 bootstrap rounds")
    with lib.session() as s:
        kid = resolve_person(s, child)
        cands: list[Person] = []
        for ref in candidates:
            p = resolve_person(s, ref)
            if p.id == kid.id:
                raise InvalidRequest(f"{kid.name} cannot be compared with themself: "
                                     "leave the child out of the candidates")
            if all(p.id != c.id for c in cands):
                cands.append(p)
        rows = _load_faces(s, [kid.id] + [c.id for c in cands])
        people = {p.id: p for p in [kid, *cands]}
        sets = {pid: _face_set(people[pid], rows[pid]) for pid in people}
    for pid in [kid.id] + [c.id for c in cands]:
        if len(sets[pid]) == 0:
            raise InvalidRequest(f"{people[pid].name} has no faces in the library to compare "
                                 "(confirm some of their faces first)")
    cal = calibration or calibrate(lib, exclude=list(people))
    kid_set = sets[kid.id]
    notes = [fs.note for fs in sets.values() if fs.note]
    rng = np.random.default_rng(seed)
    kid_counts = _bootstrap_counts(kid_set.photo_ids, rounds, rng) * kid_set.weights
    stats: list[np.ndarray] = []
    partial: list[dict] = []
    for cand in cands:
        cs = sets[cand.id]
        dist = pair_distances(kid_set.vectors, cs.vectors)
        mask, note = _age_mask(kid_set, cs) if age_matched else (None, None)
        point = float(trimmed_pair_mean(dist, kid_set.weights, cs.weights, mask))
        boot = trimmed_pair_mean(dist, kid_counts, _bootstrap_counts(cs.photo_ids, rounds, rng) * cs.weights, mask)
        stats.append(boot)
        if mask is not None:
            used_c, used_a = int(mask.any(1).sum()), int(mask.any(0).sum())
            if cs.file_dates[mask.any(0)].any() or kid_set.file_dates[mask.any(1)].any():
                note = "some capture dates are file times, not camera dates: ages may be off"
        else:
            used_c, used_a = len(kid_set), len(cs)
        partial.append(dict(cand=cand, point=point, boot=boot, mask=mask, note=note, used=(used_c, used_a),
                            evidence=_evidence(dist, mask, kid_set, cs, evidence)))
    boot_all = np.vstack(stats)                                   # (candidates, rounds)
    valid = np.isfinite(boot_all).all(0)
    best = np.argmin(np.where(np.isfinite(boot_all), boot_all, np.inf), axis=0)
    alpha = (1.0 - CONFIDENCE) / 2.0
    scored: list[CandidateScore] = []
    for k, part in enumerate(partial):
        b = part["boot"][np.isfinite(part["boot"])]
        lo_d, hi_d = (np.quantile(b, [alpha, 1 - alpha]) if len(b) else (part["point"], part["point"]))
        score = float(cal.score(part["point"]))
        # larger distance = lower score, so the interval's ends swap; the point score is
        # always inside it (a bootstrap percentile interval of a skewed statistic might not be)
        low = min(score, float(cal.score(hi_d)))
        high = max(score, float(cal.score(lo_d)))
        scored.append(CandidateScore(
            person_id=part["cand"].id, name=part["cand"].name, rank=0, score=round(score, 1), low=round(low, 1),
            high=round(high, 1), percentile=round(cal.percentile(part["point"]), 1), distance=round(part["point"], 4),
            p_best=round(float((best[valid] == k).mean()) if valid.any() else 0.0, 3),
            child_faces=part["used"][0], candidate_faces=part["used"][1], age_matched=part["mask"] is not None,
            note=part["note"], evidence=part["evidence"]))
    scored.sort(key=lambda c: (-c.score, c.name))
    for i, c in enumerate(scored, 1):
        c.rank = i
    return ResemblanceResult(kid.id, kid.name, scored, cal, _verdict(kid.name, scored), notes,
                             age_matched, rounds)


def _verdict(child: str, ranked: list[CandidateScore]) -> str:
    top = ranked[0]
    if top.low <= 0:
        return (f"{child} shows no clear resemblance to any of them: even {top.name}'s interval "
                "reaches the level of unrelated people")
    if len(ranked) == 1:
        return f"{child} resembles {top.name} (score {top.score:.0f}, 95% interval {top.low:.0f}-{top.high:.0f})"
    second = ranked[1]
    if top.p_best >= CONFIDENCE:
        return (f"{child} looks most like {top.name} ({top.name} ranks first in "
                f"{top.p_best * 100:.0f}% of resamples; next: {second.name})")
    return (f"too close to call between {top.name} and {second.name}: {top.name} ranks first in only "
            f"{top.p_best * 100:.0f}% of resamples")


# --- look-alike ------------------------------------------------------------------------


@dataclass
class LookalikeMatch:
    person_id: int
    name: str
    distance: float          # to this person's closest face
    face_id: int             # that closest face
    photo_id: int


@dataclass
class LookalikeFace:
    index: int
    box: tuple[int, int, int, int]     # (top, right, bottom, left) in the photo's full-size pixels
    matches: list[LookalikeMatch]      # nearest people first
    nobody_close: bool                 # no one within the threshold: "unknown"


@dataclass
class LookalikeResult:
    source: str
    faces: list[LookalikeFace]
    threshold: float
    people: int                        # named people searched


def lookalike(lib: Library, photo: str | Path, *, top: int = 3, threshold: float = LOOKALIKE_THRESHOLD,
              max_size: int = 1600, name: str | None = None) -> LookalikeResult:
    """For each face in ``photo``: the nearest named people, their closest face, and whether
    anyone is within ``threshold`` (dlib's 0.6 same-person distance). Read-only.

    Raises UnreadableImage for a file that is not a readable photo, InvalidRequest for a
    photo without a face or a library without named people.
    """
    if top < 1:
        raise InvalidRequest("top must be 1 or more")
    label = name or Path(photo).name
    img = open_image(photo, max_size=max_size)
    try:
        boxes = face_api.detect(img.pixels)
        detected = face_api.embed(img.pixels, boxes)
    except RuntimeError as exc:
        raise UnreadableImage(f"face detection failed on {label}: {exc}") from exc
    if not detected:
        raise InvalidRequest(f"no face found in {label}: try a photo where the face is bigger and frontal")
    with lib.session() as s:
        rows = s.execute(
            select(Face.person_id, Person.name, Face.id, Face.photo_id, Face.embedding)
            .join(Person, Person.id == Face.person_id)
            .where(Face.is_face.is_(True), Face.assignment.in_(_USED), Person.hidden.is_(False))
            .order_by(Face.id)
        ).all()
    if not rows:
        raise InvalidRequest("nobody is named in this library yet: name some people first")
    person_ids = np.array([r[0] for r in rows])
    vectors = np.array([embedding_from_bytes(r[4]) for r in rows], dtype=np.float32)
    inv = 1.0 / img.scale if img.scale else 1.0
    out: list[LookalikeFace] = []
    for n, d in enumerate(detected):
        dist = face_api.distances(vectors, d.embedding)
        nearest: dict[int, int] = {}
        for i in np.argsort(dist, kind="stable"):
            pid = int(person_ids[i])
            if pid not in nearest:
                nearest[pid] = int(i)
                if len(nearest) >= top:
                    break
        matches = [LookalikeMatch(pid, rows[i][1], round(float(dist[i]), 4), rows[i][2], rows[i][3])
                   for pid, i in nearest.items()]
        box_top, box_right, box_bottom, box_left = d.box
        box = (round(box_top * inv), round(box_right * inv), round(box_bottom * inv), round(box_left * inv))
        out.append(LookalikeFace(n + 1, box, matches, not matches or matches[0].distance > threshold))
    return LookalikeResult(label, out, threshold, len(set(person_ids.tolist())))


def lookalike_bytes(lib: Library, data: bytes, *, name: str = "upload", top: int = 3,
                    threshold: float = LOOKALIKE_THRESHOLD, max_size: int = 1600) -> LookalikeResult:
    """:func:`lookalike` for an uploaded file's bytes (size-checked, decoded by open_image)."""
    if not data:
        raise UnreadableImage(f"{name} is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidRequest(f"{name} is {len(data) / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB")
    fd, tmp = tempfile.mkstemp(prefix="organizer-upload-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return lookalike(lib, tmp, name=name, top=top, threshold=threshold, max_size=max_size)
    finally:
        os.unlink(tmp)
