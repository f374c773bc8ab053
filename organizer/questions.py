"""Questions the user answers in one action: "Are these 37 faces Ana Palacio?" (a batch),
"It's Ana Palacio" for a whole group, and "Same person?" for two named people.

The front ends (dashboard Suggestions and Review pages, ``organizer review`` in the CLI,
``bench/labelling.py``) all drive these the same way:

* :func:`batch_questions` / :func:`next_batch_question`: one :class:`BatchQuestion` per
  named person, gathering every open face the suggestions give to that person (all their
  groups and stray faces together, never face by face), most certain first, at most
  :data:`BATCH_CAP` faces (the rest come in the next question), with the person's cover and
  a few of their confirmed faces as evidence. Never two faces of one photo, never a person
  who already has a face in that photo or was born after it was taken (the rules of
  :mod:`organizer.suggestions`).
* :func:`accept_batch` answers one: the ticked faces are confirmed, the unticked ones
  (``left_out``) remembered as "not this person", in ONE operation that one undo takes back
  wholly. :func:`reject_batch` says none of them is that person.
* :func:`group_offer` / :func:`group_offers`: "It's <name>" for a group (Review page), a
  group most of whose faces sit near one named person; :func:`accept_group_offer` names it.
* :func:`merge_questions`: pairs of named people whose confirmed faces are very close and
  who never appear in one photo; answered with :func:`organizer.labelling.merge_people`
  ("merge") or :func:`organizer.labelling.keep_apart` ("different", remembered).

Measured with ``bench/labelling.py --max-cap`` (questions uncapped; the share of offered
faces that were right, by rank in the question and by confidence), clustering of commit
07180e8 (compact groups, eps 0.42, anchored pass): no question on lfw-dev (whole, 5,052
faces) or its family profile (1,015 faces) held more than 10 faces, because every group is
named first and the groups' recall is 0.96, so :data:`BATCH_CAP` (60) only bounds what one
screen shows; it never changed an answer there. What does change the answers is the
distance limit: on lfw-dev whole 63% of the offered faces were right at 0.50 (1,801
actions) and 74% at 0.45 (1,715), on the family profile 100% at both but 55 actions at 0.50
and 67 at 0.45 (faces left out of questions are labelled one by one). The two sets pull in
opposite directions, so :data:`BATCH_MAX_DISTANCE` stays the suggestion distance (0.50).
The wrong offered faces are mostly bystanders and strangers near a named person, unticked
in the same action.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from .db import Library
from .errors import ClusterNotFound, InvalidRequest
from .ids import is_id
from .labelling import accept_faces, kept_apart, load_faces, name_cluster
from .models import Cluster, Person
from .neighbours import K_PER_PERSON, TOP_K, confidence_for, nearest
from .queries import faces_text, require_person
from .suggestions import SuggestionIndex, index_for, one_per_photo, reject_suggestion

#: faces offered in one batch question at most (see the module doc for the measurement)
BATCH_CAP = 60
#: faces further than this from the person are not put in a batch question (they stay
#: available face by face through suggest_for_faces, up to the suggestion distance)
BATCH_MAX_DISTANCE = 0.50
#: confirmed faces of the person shown beside a question as evidence
EVIDENCE_SHOWN = 4
#: "It's <name>" is offered for a group when at least this share of its faces is near them
GROUP_OFFER_SHARE = 0.5
#: "Same person?" for two named people whose faces are at most this far apart (median
#: over one person's evidence faces of the distance to the other, as a face is scored
#: against a person); same-person pairs in lfw-dev sit at 0.30-0.42, different people
#: rarely under 0.45
MERGE_DISTANCE = 0.42
_FAR = 9.9


@dataclass(frozen=True)
class BatchQuestion:
    """Are these faces ``person_name``? ``face_ids`` most certain first, ``confidences``
    aligned with them."""

    person_id: int
    person_name: str
    face_ids: list[int]
    confidences: list[float]
    #: the groups the faces come from (empty for stray faces only)
    cluster_ids: list[int]
    cover_face_id: int | None
    #: a few of the person's confirmed faces nearest the offered ones
    evidence_face_ids: list[int]
    #: more faces of this person beyond the cap (offered after this answer)
    more: int = 0


@dataclass(frozen=True)
class BatchAnswer:
    """What :func:`accept_batch` / :func:`reject_batch` did (one operation)."""

    person_id: int
    person_name: str
    accepted: list[int]
    left_out: list[int]
    description: str


@dataclass(frozen=True)
class GroupOffer:
    """"It's <name>" for one group."""

    cluster_id: int
    person_id: int
    person_name: str
    confidence: float
    #: the group's faces near the person, and how many open faces the group has
    matching: list[int]
    size: int


@dataclass(frozen=True)
class MergeQuestion:
    """Same person? Two named people whose faces are very close."""

    person_a: int
    name_a: str
    person_b: int
    name_b: str
    distance: float
    #: a few faces of each, the closest pair first
    faces_a: list[int]
    faces_b: list[int]


# --- batch questions --------------------------------------------------------------------------

def _check_cap(cap: int) -> int:
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise InvalidRequest("the number of faces per question must be 1 or more")
    return cap


def _cover(s: Session, index: SuggestionIndex, pid: int) -> int | None:
    person = s.get(Person, pid)
    if person is not None and person.cover_face_id is not None:
        return int(person.cover_face_id)
    faces = sorted(index.confirmed.get(pid, ()))
    if not faces:
        return None
    return max(faces, key=lambda f: (index.quality[index.at[f]], -f))


def _evidence(index: SuggestionIndex, pid: int, faces: list[int]) -> list[int]:
    """The person's evidence faces nearest the first offered faces."""
    out: list[int] = []
    for f in faces[:EVIDENCE_SHOWN * 2]:
        row = index.rows.get(f)
        if row is None:
            continue
        for ref in index.nn_ref[row].tolist():
            if ref >= 0 and index.owner_of[ref] == pid and ref not in out:
                out.append(ref)
                break
        if len(out) >= EVIDENCE_SHOWN:
            break
    return out


def _questions(s: Session, index: SuggestionIndex, skip: set[int], cap: int,
               limit: int | None = None, person_id: int | None = None,
               max_distance: float = BATCH_MAX_DISTANCE) -> list[BatchQuestion]:
    per_person: dict[int, dict[int, float]] = {}
    clusters: dict[int, dict[int, int]] = {}
    for it in index.items(skip):
        if person_id is not None and it.person_id != person_id:
            continue
        got = per_person.setdefault(it.person_id, {})
        for f in it.face_ids:
            d = index.person_distances(f).get(it.person_id)
            if d is not None and d <= max_distance and f not in got:
                got[f] = d
                if it.cluster_id is not None:
                    clusters.setdefault(it.person_id, {})[f] = it.cluster_id
    ranked = []
    for pid, dist in per_person.items():
        if not dist:
            continue
        faces = one_per_photo(dist, dist.__getitem__, index.photo_of)
        ranked.append((-min(len(faces), cap), -round(confidence_for(dist[faces[0]]), 3), faces[0], pid, faces))
    # the biggest answer first; then the most certain; then the lowest face id
    ranked.sort()
    out = []
    for *_key, pid, faces in ranked[:limit]:
        dist = per_person[pid]
        shown = faces[:cap]
        cids = sorted({clusters.get(pid, {})[f] for f in shown if f in clusters.get(pid, {})})
        out.append(BatchQuestion(
            person_id=pid, person_name=index.names.get(pid, str(pid)), face_ids=shown,
            confidences=[confidence_for(dist[f]) for f in shown], cluster_ids=cids,
            cover_face_id=_cover(s, index, pid), evidence_face_ids=_evidence(index, pid, shown),
            more=len(faces) - len(shown)))
    return out


def batch_questions(lib: Library, skip_face_ids: Iterable[int] = (), *, cap: int = BATCH_CAP,
                    max_distance: float = BATCH_MAX_DISTANCE) -> list[BatchQuestion]:
    """Every open batch question (one per named person with faces suggested to them within
    ``max_distance``), biggest first; faces in ``skip_face_ids`` are left out."""
    return _open_questions(lib, skip_face_ids, cap, max_distance=max_distance)


def next_batch_question(lib: Library, skip_face_ids: Iterable[int] = (), *, cap: int = BATCH_CAP,
                        person_id: int | None = None,
                        max_distance: float = BATCH_MAX_DISTANCE) -> BatchQuestion | None:
    """The biggest open batch question (of ``person_id`` only, when given); None when there
    is nothing left to ask."""
    items = _open_questions(lib, skip_face_ids, cap, limit=1, person_id=person_id, max_distance=max_distance)
    return items[0] if items else None


def _open_questions(lib: Library, skip_face_ids: Iterable[int], cap: int, *, limit: int | None = None,
                    person_id: int | None = None, max_distance: float) -> list[BatchQuestion]:
    """The questions from the kept suggestion index, brought up to date first."""
    cap = _check_cap(cap)
    skip = {int(i) for i in skip_face_ids}
    with lib.session() as s:
        index = index_for(lib)
        with index.lock:
            index.refresh(s)
            return _questions(s, index, skip, cap, limit=limit, person_id=person_id, max_distance=max_distance)


def accept_batch(lib: Library, person_id: int, face_ids: Sequence[int], left_out: Sequence[int] = (), *,
                 force: bool = False) -> BatchAnswer:
    """Answer a batch question: ``face_ids`` (the ticked faces) are ``person_id``,
    ``left_out`` (unticked) are not. One operation (kind "accept_batch"): one undo takes all
    of it back. SamePhotoConflict unless ``force`` when it would give the person two faces of
    one photo. With nothing ticked use :func:`reject_batch`."""
    with lib.session() as s:
        person = require_person(s, person_id)
        faces = load_faces(s, face_ids)
        leave = load_faces(s, left_out) if len(left_out) else []
        rec = accept_faces(s, faces, person, left_out=leave, force=force)
        left = f", {faces_text(len(leave))} not" if leave else ""
        text = f"accepted {faces_text(len(faces))} as {person.name}{left}"
        rec.save("accept_batch", text)
        return BatchAnswer(person.id, person.name, [f.id for f in faces], [f.id for f in leave], text)


def reject_batch(lib: Library, person_id: int, face_ids: Sequence[int]) -> BatchAnswer:
    """None of these faces is ``person_id`` (one operation, remembered)."""
    reject_suggestion(lib, face_ids, person_id)
    with lib.session() as s:
        person = require_person(s, person_id)
        return BatchAnswer(person.id, person.name, [], [int(f) for f in face_ids],
                           f"{faces_text(len(face_ids))} not {person.name}")


# --- "It's <name>" for a group -------------------------------------------------------------------

def _offer(index: SuggestionIndex, cid: int) -> GroupOffer | None:
    key = ("c", cid)
    fids = index.members.get(key)
    if not fids:
        return None
    it = index.item_of.get(key)
    if it is None or len(it.face_ids) < GROUP_OFFER_SHARE * len(fids):
        return None
    return GroupOffer(cluster_id=cid, person_id=it.person_id, person_name=it.person_name,
                      confidence=it.confidence, matching=list(it.face_ids), size=len(fids))


def group_offers(lib: Library, cluster_ids: Iterable[int]) -> dict[int, GroupOffer]:
    """"It's <name>" for each of these groups that sits near one named person (most of its
    faces within the suggestion distance of them); groups without one are left out."""
    ids = [int(c) for c in cluster_ids]
    with lib.session() as s:
        index = index_for(lib)
        with index.lock:
            index.refresh(s)
            index.items(set())  # brings every group's item up to date
            got = {cid: _offer(index, cid) for cid in ids}
    return {cid: o for cid, o in got.items() if o is not None}


def group_offer(lib: Library, cluster_id: int) -> GroupOffer | None:
    """:func:`group_offers` for one group; ClusterNotFound for an unknown id."""
    with lib.session() as s:
        if not is_id(cluster_id) or s.get(Cluster, cluster_id) is None:
            raise ClusterNotFound(f"there is no cluster with id {cluster_id}")
    return group_offers(lib, [cluster_id]).get(int(cluster_id))


def accept_group_offer(lib: Library, cluster_id: int, person_id: int, left_out: Sequence[int] = (), *,
                       force: bool = False) -> int:
    """"It's <name>": name the group as person ``person_id`` (by id, so two people whose
    names differ only in case are never mixed up), ``left_out`` unticked; see
    :func:`organizer.labelling.name_cluster`. Returns the person id."""
    with lib.session() as s:
        name = require_person(s, person_id).name
    return name_cluster(lib, cluster_id, name, left_out=left_out, force=force)


# --- "Same person?" ----------------------------------------------------------------------------

def _merge_pairs(index: SuggestionIndex) -> dict[tuple[int, int], float]:
    """{(a, b): distance} for pairs of named people: for each evidence face of a, the mean
    distance to b's K nearest evidence faces (far when b is not among its neighbours); the
    median over a's faces; the smaller of the two directions."""
    people = sorted(p for p in index.evidence if index.evidence[p])
    if len(people) < 2:
        return {}
    ids = np.asarray([f for p in people for f in sorted(index.evidence[p])], dtype=np.int64)
    owner = np.asarray([p for p in people for _ in index.evidence[p]], dtype=np.int64)
    mat = index.mat[np.asarray([index.at[f] for f in ids.tolist()], dtype=np.int64)]
    dist, idx = nearest(mat, mat, TOP_K + K_PER_PERSON)
    owner_x = np.append(owner, -1)
    per: dict[tuple[int, int], list[float]] = {}
    for n in range(len(ids)):
        a = int(owner[n])
        got: dict[int, list[float]] = {}
        for d, j in zip(dist[n].tolist(), idx[n].tolist(), strict=True):
            b = int(owner_x[j])
            if b < 0 or b == a:
                continue
            if len(got.setdefault(b, [])) < K_PER_PERSON:
                got[b].append(d)
        for b, ds in got.items():
            per.setdefault((a, b), []).append(sum(ds) / len(ds))
    size = {p: len(index.evidence[p]) for p in people}
    out: dict[tuple[int, int], float] = {}
    for (a, b), ds in per.items():
        ds = sorted(ds + [_FAR] * (size[a] - len(ds)))
        med = ds[len(ds) // 2] if len(ds) % 2 else (ds[len(ds) // 2 - 1] + ds[len(ds) // 2]) / 2
        key = (min(a, b), max(a, b))
        out[key] = min(out.get(key, _FAR), med)
    return out


def _seen_together(index: SuggestionIndex) -> set[tuple[int, int]]:
    """Pairs of people who both own a face of one photo."""
    out = set()
    for faces in index.photo_faces.values():
        if len(faces) < 2:
            continue
        owners = sorted({st.person_id for f in faces if (st := index.state.get(f)) is not None
                         and st.person_id is not None and not st.is_open})
        out |= {(a, b) for i, a in enumerate(owners) for b in owners[i + 1:]}
    return out


def merge_questions(lib: Library, *, max_distance: float = MERGE_DISTANCE, limit: int = 20) -> list[MergeQuestion]:
    """"Same person?" for named people whose confirmed faces are at most ``max_distance``
    apart, closest first; never two people seen in one photo, nor a pair the user said is
    different (:func:`organizer.labelling.keep_apart`)."""
    with lib.session() as s:
        index = index_for(lib)
        with index.lock:
            index.refresh(s)
            pairs = _merge_pairs(index)
            apart = kept_apart(s) | _seen_together(index)
            close = sorted((d, a, b) for (a, b), d in pairs.items() if d <= max_distance and (a, b) not in apart)
            out = []
            for d, a, b in close[:limit]:
                out.append(MergeQuestion(person_a=a, name_a=index.names.get(a, str(a)), person_b=b,
                                         name_b=index.names.get(b, str(b)), distance=float(d),
                                         faces_a=sorted(index.evidence.get(a, ()))[:EVIDENCE_SHOWN],
                                         faces_b=sorted(index.evidence.get(b, ()))[:EVIDENCE_SHOWN]))
            return out


__all__ = ["BATCH_CAP", "BATCH_MAX_DISTANCE", "EVIDENCE_SHOWN", "GROUP_OFFER_SHARE", "MERGE_DISTANCE",
           "BatchQuestion", "BatchAnswer", "GroupOffer", "MergeQuestion", "batch_questions", "next_batch_question",
           "accept_batch", "reject_batch", "group_offer", "group_offers", "accept_group_offer", "merge_questions"]
