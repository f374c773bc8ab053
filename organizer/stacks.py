"""Unassigned faces as stacks of look-alikes (the Unassigned page), so that a stray face is
found next to its twins, not on page 3.

A stack is a loose group of the unassigned faces that the strict clustering left out (open
faces in no group): :func:`organizer.grouping.compact_groups` with a looser eps
(:data:`STACK_EPS`, 0.50 instead of the clustering's 0.42) but the same compactness rule (no
face further than ``max_radius`` from the stack's medoid, so no chaining) and the same
cannot-link rule (never two faces of one photo in one stack). Faces that match nobody are
stacks of one. Biggest stack first (ties: lowest first face id); in a stack, the face
nearest its medoid first.

A stack is no claim that its faces are one person: it is named in one action with the
faces the user unticked left out, ``organizer.labelling.assign_faces(lib, ticked, name,
left_out=unticked)``. Stacks are computed when asked (nothing is stored) and kept per open
library until the library changes.
"""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .db import Library
from .errors import InvalidRequest
from .grouping import GroupingRule, compact_groups, groups_of, medoid_distances
from .models import ClusterRun, Face, Operation, embedding_matrix
from .queries import live, unowned

#: neighbours closer than this may share a stack (looser than the clustering's eps)
STACK_EPS = 0.50
STACK_RULE = GroupingRule(eps=STACK_EPS, min_samples=2, min_eps=0.40, split_min_piece=0)
MAX_PAGE = 1000


@dataclass(frozen=True)
class Stack:
    """Look-alike unassigned faces; ``key`` is its first face id (stable while it lasts)."""

    key: int
    face_ids: list[int]
    #: the clustering's group the faces wait in (:func:`every_stack`); None for a look-alike stack
    cluster_id: int | None = None

    @property
    def size(self) -> int:
        return len(self.face_ids)


#: what changes when the stacks can change: the newest face, the face count, the newest
#: operation, the undone count, the newest clustering run (None in an empty table)
_Stamp = tuple[int | None, int | None, int | None, int | None, int | None]
_CACHE: weakref.WeakKeyDictionary[Library, tuple[_Stamp, list[Stack]]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _stamp(s: Session) -> _Stamp:
    return (s.scalar(select(func.max(Face.id))), s.scalar(select(func.count(Face.id))),
            s.scalar(select(func.max(Operation.id))),
            s.scalar(select(func.count(Operation.id)).where(Operation.undone.is_(True))),
            s.scalar(select(func.max(ClusterRun.id))))


def build_stacks(ids: np.ndarray, mat: np.ndarray, photo_ids: np.ndarray, rule: GroupingRule = STACK_RULE
                 ) -> list[Stack]:
    """The stacks of these faces (pure: ids, embeddings, photo id of each), biggest first."""
    if len(ids) == 0:
        return []
    labels = compact_groups(mat, photo_ids, rule)
    out = []
    for members in groups_of(labels):
        _m, dist = medoid_distances(mat[members])
        order = members[np.lexsort((ids[members], dist))]
        out.append(Stack(key=int(ids[order].min()), face_ids=[int(f) for f in ids[order]]))
    out += [Stack(key=int(f), face_ids=[int(f)]) for f in ids[labels < 0].tolist()]
    out.sort(key=lambda st: (-st.size, st.key))
    return out


def _all_stacks(lib: Library) -> list[Stack]:
    with lib.session() as s:
        stamp = _stamp(s)
        with _LOCK:
            hit = _CACHE.get(lib)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        rows = list(s.execute(select(Face.id, Face.embedding, Face.photo_id)
                              .where(live(), unowned(), Face.cluster_id.is_(None)).order_by(Face.id)))
    ids = np.asarray([r[0] for r in rows], dtype=np.int64)
    photos = np.asarray([r[2] for r in rows], dtype=np.int64)
    stacks = build_stacks(ids, embedding_matrix([r[1] for r in rows]), photos)
    with _LOCK:
        _CACHE[lib] = (stamp, stacks)
    return stacks


def unassigned_stacks(lib: Library, limit: int = 50, offset: int = 0) -> list[Stack]:
    """A page of stacks of the unassigned faces in no group, biggest first (module doc)."""
    if isinstance(limit, bool) or isinstance(offset, bool) or limit < 0 or offset < 0:
        raise InvalidRequest("limit and offset must be 0 or more")
    return _all_stacks(lib)[int(offset):int(offset) + min(int(limit), MAX_PAGE)]


def count_stacks(lib: Library) -> int:
    """How many stacks :func:`unassigned_stacks` pages over."""
    return len(_all_stacks(lib))


def group_stacks(lib: Library) -> list[Stack]:
    """The clustering's groups as stacks: each group's unassigned faces, best quality first
    (as Review shows them); ``key`` is that first face."""
    with lib.session() as s:
        rows = s.execute(select(Face.cluster_id, Face.id).where(live(), unowned(), Face.cluster_id.is_not(None))
                         .order_by(Face.cluster_id, Face.quality.desc(), Face.id))
        by_group: dict[int, list[int]] = {}
        for cid, fid in rows:
            if cid is not None:  # never, by the query; the column is nullable
                by_group.setdefault(int(cid), []).append(int(fid))
    return [Stack(key=faces[0], face_ids=faces, cluster_id=cid) for cid, faces in by_group.items()]


def every_stack(lib: Library) -> list[Stack]:
    """Every unassigned face once, in stacks: the groups (:func:`group_stacks`) and the
    look-alike stacks of the faces in no group, biggest first (ties: groups first, then the
    lowest key); their sizes add up to ``browse.count_unassigned``."""
    out = group_stacks(lib) + _all_stacks(lib)
    out.sort(key=lambda st: (-st.size, st.cluster_id is None, st.key))
    return out


__all__ = ["STACK_EPS", "STACK_RULE", "Stack", "build_stacks", "unassigned_stacks", "count_stacks", "group_stacks",
           "every_stack"]
