"""Suggestions on real embeddings: right person first, rejections respected, answers
recorded, and the incremental index always equal to a fresh one."""
from __future__ import annotations

import numpy as np
import pytest

from organizer import suggestions as sg
from organizer.browse import find_person
from organizer.db import Library
from organizer.errors import FaceNotFound, InvalidRequest, PersonNotFound
from organizer.labelling import assign_faces, remove_faces, undo
from organizer.models import Assignment, Face, FaceRejection

from .test_labelling import snapshot, truth


def confirm_some(lib: Library, per_person: int = 3) -> dict[int, str]:
    """Confirm the first ``per_person`` main faces of each identity; return the truth of the rest."""
    t = truth(lib)
    seen: dict[str, list[int]] = {}
    for fid in sorted(t):
        seen.setdefault(t[fid], []).append(fid)
    rest = {}
    for name, fids in seen.items():
        assign_faces(lib, fids[:per_person], name)
        rest.update({f: name for f in fids[per_person:]})
    return rest


def test_the_right_person_comes_first(lfw_lib: Library) -> None:
    rest = confirm_some(lfw_lib)
    got = sg.suggest_for_faces(lfw_lib, list(rest), limit=3)
    firsts = [got[f][0].person_name if got[f] else None for f in rest]
    hits = sum(1 for f, name in zip(rest, firsts) if name == rest[f])
    wrong = sum(1 for f, name in zip(rest, firsts) if name is not None and name != rest[f])
    assert hits >= 0.85 * len(rest), (hits, len(rest))
    assert wrong <= 0.05 * len(rest), (wrong, len(rest))
    for f in rest:
        confs = [s.confidence for s in got[f]]
        assert confs == sorted(confs, reverse=True) and all(0 <= c <= 1 for c in confs)
        assert [s.distance for s in got[f]] == sorted(s.distance for s in got[f])


def test_a_rejected_person_is_never_suggested_again(lfw_lib: Library) -> None:
    rest = confirm_some(lfw_lib)
    face = next(f for f in rest if sg.suggest_for_faces(lfw_lib, [f])[f])
    top = sg.suggest_for_faces(lfw_lib, [face])[face][0]
    sg.reject_suggestion(lfw_lib, [face], top.person_id)
    assert top.person_id not in [s.person_id for s in sg.suggest_for_faces(lfw_lib, [face], limit=50)[face]]
    for it in sg.all_suggestions(lfw_lib):
        if face in it.face_ids:
            assert it.person_id != top.person_id
    with lfw_lib.session() as s:
        assert s.get(FaceRejection, (face, top.person_id)) is not None


def test_accept_confirms_and_is_undoable(lfw_lib: Library) -> None:
    confirm_some(lfw_lib)
    item = sg.next_suggestion(lfw_lib)
    assert item is not None and item.face_ids and 0 <= item.confidence <= 1
    before = snapshot(lfw_lib)
    sg.accept_suggestion(lfw_lib, item.face_ids, item.person_id)
    with lfw_lib.session() as s:
        for f in item.face_ids:
            face = s.get(Face, f)
            assert (face.person_id, face.assignment) == (item.person_id, Assignment.confirmed)
    nxt = sg.next_suggestion(lfw_lib)
    assert nxt is None or not set(nxt.face_ids) & set(item.face_ids)
    undo(lfw_lib)
    assert snapshot(lfw_lib) == before


def test_skipped_faces_are_not_offered(lfw_lib: Library) -> None:
    confirm_some(lfw_lib)
    first = sg.next_suggestion(lfw_lib)
    assert first is not None
    second = sg.next_suggestion(lfw_lib, skip_face_ids=first.face_ids)
    assert second is None or not set(second.face_ids) & set(first.face_ids)


def test_bad_answers_change_nothing(lfw_lib: Library) -> None:
    rest = confirm_some(lfw_lib)
    face = next(iter(rest))
    pid = find_person(lfw_lib, rest[face]).id
    before = snapshot(lfw_lib)
    with pytest.raises(PersonNotFound):
        sg.accept_suggestion(lfw_lib, [face], 99999)
    with pytest.raises(FaceNotFound):
        sg.reject_suggestion(lfw_lib, [face, 999999], pid)
    confirmed = next(f for f in truth(lfw_lib) if f not in rest and truth(lfw_lib)[f] == rest[face])
    with pytest.raises(InvalidRequest):
        sg.reject_suggestion(lfw_lib, [confirmed], pid)
    with pytest.raises(InvalidRequest):
        sg.suggest_for_faces(lfw_lib, [face], limit=0)
    assert snapshot(lfw_lib) == before


def _as_table(index: sg.SuggestionIndex) -> dict[int, dict[int, float]]:
    return {f: {p: round(d, 4) for p, d in index.person_distances(f).items()} for f in sorted(index.rows)}


def test_incremental_index_equals_a_fresh_build(lfw_lib: Library) -> None:
    rest = confirm_some(lfw_lib, per_person=2)
    index = sg.index_for(lfw_lib)
    with lfw_lib.session() as s:
        index.refresh(s)
    rng = np.random.default_rng(0)
    for step in range(6):
        item = sg.next_suggestion(lfw_lib)
        assert item is not None
        if step % 3 == 2:
            sg.reject_suggestion(lfw_lib, item.face_ids[:1], item.person_id)
        else:
            sg.accept_suggestion(lfw_lib, item.face_ids, item.person_id)
        with lfw_lib.session() as s:
            index.refresh(s)
            fresh = sg.SuggestionIndex()
            fresh.refresh(s)
        assert _as_table(index) == _as_table(fresh)
    # taking a confirmed face away forces a rebuild of the neighbour lists: still equal
    victim = int(rng.choice(sorted(index.refs)))
    remove_faces(lfw_lib, [victim])
    with lfw_lib.session() as s:
        index.refresh(s)
        fresh = sg.SuggestionIndex()
        fresh.refresh(s)
    assert _as_table(index) == _as_table(fresh)
    assert victim in index.rows


def test_nearest_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    q = rng.normal(0, 0.05, (50, 128)).astype(np.float32)
    r = rng.normal(0, 0.05, (300, 128)).astype(np.float32)
    dist, idx = sg.nearest(q, r, 5, max_distance=0.75)
    full = np.linalg.norm(q[:, None] - r[None], axis=2)
    for n in range(len(q)):
        expect = np.sort(full[n][full[n] <= 0.75])[:5]
        got = dist[n][idx[n] >= 0]
        assert np.allclose(got, expect, atol=1e-4)
        assert np.allclose(full[n][idx[n][idx[n] >= 0]], got, atol=1e-4)
