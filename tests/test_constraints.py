"""What keeps faces apart when the machine groups and assigns them: one person per photo,
a split the user made, birth dates, children compared at their age; and the anchored pass.

Real photos where it matters (skipped without ../shared/photos); the date rules on small
synthetic libraries written through the real schema (no dlib needed)."""
from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, insert, select, update

from organizer import labelling
from organizer.browse import list_clusters
from organizer.clustering import ANCHOR_MAX_DISTANCE, cluster_faces, dbscan_labels
from organizer.constraints import SPLIT_APART, KeptApart, born_after, load_split_records
from organizer.db import Library
from organizer.grouping import pairwise_distances
from organizer.models import Assignment, Cluster, Face, LibraryMeta, Operation, Person, Photo, embedding_matrix

from .conftest import copy_db, db_url, photos_dir, scanned_db
from .test_labelling import faces_of_cluster, truth

DIM = 128


# --- synthetic libraries ----------------------------------------------------------------------

def e(i: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i] = 1.0
    return v


class Synthetic:
    """A library of hand-placed faces: one photo per face, EXIF dates, named people."""

    def __init__(self, path: Path) -> None:
        self.lib = Library.open(f"sqlite:///{path}")
        self.next_id = 1

    def person(self, name: str, birth: date | None = None) -> int:
        with self.lib.session() as s:
            p = Person(name=name, birth_date=birth)
            s.add(p)
            s.flush()
            return p.id

    def face(self, vec: np.ndarray, taken: datetime | None, person: int | None = None) -> int:
        fid = self.next_id
        self.next_id += 1
        with self.lib.session() as s:
            s.execute(insert(Photo), [{"id": fid, "path": f"p/{fid}.jpg", "taken_at": taken,
                                       "taken_at_source": "exif" if taken else None}])
            s.execute(insert(Face), [{"id": fid, "photo_id": fid, "top": 0, "right": 10, "bottom": 10, "left": 0,
                                      "embedding": np.asarray(vec, dtype=np.float32).tobytes(), "quality": 0.5,
                                      "person_id": person, "assignment": Assignment.confirmed if person else None}])
        return fid

    def state(self, fid: int) -> tuple[int | None, Assignment | None]:
        with self.lib.session() as s:
            f = s.get(Face, fid)
            assert f is not None
            return f.person_id, f.assignment


@pytest.fixture()
def synth(tmp_path: Path) -> Synthetic:
    lib = Synthetic(tmp_path / "lib.db")
    yield lib
    lib.lib.close()


def confirmed_around(lib: Synthetic, centre: np.ndarray, person: int, years: list[int], first_dim: int) -> None:
    for i, year in enumerate(years):
        lib.face(centre + 0.05 * e(first_dim + i), datetime(year, 6, 1), person)


def test_a_photo_taken_before_the_birth_date_never_gets_that_person(synth: Synthetic) -> None:
    ana = synth.person("Ana", birth=date(2012, 3, 1))
    confirmed_around(synth, np.zeros(DIM, dtype=np.float32), ana, [2014, 2015, 2016, 2017, 2018], 10)
    before = synth.face(0.2 * e(1), datetime(2010, 5, 1))
    after = synth.face(0.2 * e(2), datetime(2019, 5, 1))
    cluster_faces(synth.lib)
    assert synth.state(after) == (ana, Assignment.auto)
    assert synth.state(before) == (None, None), "a photo from before Ana was born was given to her"
    # the rule, not the distance, kept her out: without the birth date the face is hers
    labelling.set_birth_date(synth.lib, ana, None)
    cluster_faces(synth.lib)
    assert synth.state(before) == (ana, Assignment.auto)


def test_born_after_compares_dates_and_ignores_unknown_ones() -> None:
    assert born_after(date(2012, 3, 1), datetime(2012, 2, 29, 23, 0))
    assert not born_after(date(2012, 3, 1), datetime(2012, 3, 1, 0, 1))
    assert not born_after(None, datetime(2000, 1, 1)) and not born_after(date(2012, 3, 1), None)


def two_people_at_margin(lib: Synthetic, margin_years: list[int], birth: date | None) -> tuple[int, int, int]:
    """Person B and person C (0.5 apart) and one unnamed face 0.30 from B and ~0.42 from C:
    clear enough for the adult margin (0.10), not for a child's (0.15)."""
    b_centre = e(50)
    c_centre = b_centre + 0.5 * e(51)
    b = lib.person("B", birth=birth)
    c = lib.person("C")
    confirmed_around(lib, b_centre, b, margin_years, 70)
    confirmed_around(lib, c_centre, c, margin_years, 80)
    x = 0.1636
    face = lib.face(b_centre + x * e(51) + np.sqrt(0.09 - x * x) * e(52), datetime(margin_years[1], 1, 1))
    return b, c, face


def test_a_child_needs_the_wider_margin(synth: Synthetic, tmp_path: Path) -> None:
    adult = Synthetic(tmp_path / "adult.db")
    b, _c, face = two_people_at_margin(adult, [2014, 2015, 2016], birth=date(1970, 1, 1))
    cluster_faces(adult.lib)
    assert adult.state(face) == (b, Assignment.auto), "the test needs a face clear enough for an adult"
    adult.lib.close()
    b, _c, face = two_people_at_margin(synth, [2014, 2015, 2016], birth=date(2010, 1, 1))
    cluster_faces(synth.lib)
    assert synth.state(face) == (b, Assignment.suggested), "a 5-year-old was auto-assigned on an adult's margin"


def test_a_child_is_compared_with_their_faces_from_around_the_photo(synth: Synthetic) -> None:
    kid = synth.person("Kid", birth=date(2010, 1, 1))
    young = 2.0 * e(60)
    older = young + 0.6 * e(61)          # the same child ten years on looks different
    confirmed_around(synth, young, kid, [2011, 2012, 2013], 90)
    confirmed_around(synth, older, kid, [2022, 2023, 2024], 100)
    now = synth.face(older + 0.2 * e(62), datetime(2023, 3, 1))
    then = synth.face(older + 0.2 * e(63), datetime(2012, 3, 1))  # looks like the 13-year-old, dated age 2
    cluster_faces(synth.lib)
    assert synth.state(now) == (kid, Assignment.auto)
    assert synth.state(then) == (None, None), "a face dated age 2 was matched with the child at 13"
    # compared with the child's whole life (no birth date), the same face is theirs
    labelling.set_birth_date(synth.lib, kid, None)
    cluster_faces(synth.lib)
    assert synth.state(then) == (kid, Assignment.auto)


# --- kept apart -------------------------------------------------------------------------------

def test_kept_apart_keeps_sides_out_of_one_group_and_away_from_each_others_people() -> None:
    kept = KeptApart.build([(frozenset({1, 2}), frozenset({3, 4, 5}))], owner_of={1: 7})
    assert not kept.allows(3, 7) and kept.allows(3, 8) and kept.allows(2, 7)
    kept.take(4, 8)
    assert not kept.allows(2, 8)
    assert kept.separate([1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 1, 0]) == [-1, -1, 0, 0, 1, 0]


def test_a_split_is_remembered_when_one_half_is_named(lfw_lib: Library) -> None:
    cluster_faces(lfw_lib)
    group = next(c for c in list_clusters(lfw_lib, limit=100) if c.size >= 4)
    faces = faces_of_cluster(lfw_lib, group.id)
    half, rest = faces[: len(faces) // 2], faces[len(faces) // 2:]
    new_group = labelling.split_faces(lfw_lib, half)
    labelling.name_cluster(lfw_lib, new_group, "Split Half")
    with lfw_lib.session() as s:
        raw = dict(s.execute(select(Face.id, Face.embedding).where(Face.id.in_(faces))).all())
    # the test needs the rest to be close enough that the anchored pass would take it
    d = pairwise_distances(embedding_matrix([raw[f] for f in rest]), embedding_matrix([raw[f] for f in half]))
    assert (np.sort(d, axis=1)[:, :3].mean(axis=1) <= ANCHOR_MAX_DISTANCE).any()
    cluster_faces(lfw_lib)
    with lfw_lib.session() as s:
        person = s.scalar(select(Person.id).where(Person.name == "Split Half"))
        given = list(s.scalars(select(Face.id).where(Face.id.in_(rest), Face.person_id == person)))
        assert given == [], "faces the user split away were given to the person the other half was named"
        assert [(set(a), set(b)) for a, b in load_split_records(s)] == [(set(half), set(rest))]
    # forgetting the split (what happened before it was remembered) hands them over
    with lfw_lib.session() as s:
        s.execute(delete(LibraryMeta).where(LibraryMeta.key.startswith(SPLIT_APART)))
        s.execute(update(Operation).where(Operation.kind == "split").values(undone=True))
    cluster_faces(lfw_lib)
    with lfw_lib.session() as s:
        assert s.scalars(select(Face.id).where(Face.id.in_(rest), Face.person_id == person)).first() is not None


def test_undoing_a_split_forgets_it(lfw_lib: Library) -> None:
    cluster_faces(lfw_lib)
    group = next(c for c in list_clusters(lfw_lib, limit=100) if c.size >= 4)
    labelling.split_faces(lfw_lib, faces_of_cluster(lfw_lib, group.id)[:2])
    cluster_faces(lfw_lib)
    with lfw_lib.session() as s:
        assert len(load_split_records(s)) == 1
    assert labelling.undo(lfw_lib, 1)[0].startswith("split")
    with lfw_lib.session() as s:
        assert load_split_records(s) == []


# --- the anchored pass ------------------------------------------------------------------------

def test_the_anchored_pass_gives_the_rest_of_a_named_person_to_them(lfw_lib: Library) -> None:
    t = truth(lfw_lib)
    by_name: dict[str, list[int]] = {}
    for fid, name in sorted(t.items()):
        by_name.setdefault(name, []).append(fid)
    name, faces = max(by_name.items(), key=lambda kv: (len(kv[1]), kv[0]))
    pid = labelling.assign_faces(lfw_lib, faces[:3], name)
    report = cluster_faces(lfw_lib)
    with lfw_lib.session() as s:
        auto = dict(s.execute(select(Face.id, Face.person_id).where(Face.assignment == Assignment.auto)).all())
    theirs = [f for f in faces[3:] if auto.get(f) == pid]
    assert len(theirs) >= 2 and report.anchored >= 2, report.summary()
    assert all(t.get(f) == name for f, p in auto.items() if p == pid), "a stranger was auto-assigned"


# --- group photos -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def group_photos_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scanned_db(tmp_path_factory, photos_dir("group-photos"), "group_photos")


def same_photo_violations(lib: Library) -> tuple[list[int], list[int]]:
    """(photos with two faces in one machine group, photos with two faces of one person)."""
    with lib.session() as s:
        grouped = Counter(s.execute(
            select(Face.photo_id, Face.cluster_id).join(Cluster, Cluster.id == Face.cluster_id)
            .where(Cluster.run_id.is_not(None), Face.is_face.is_(True))).all())
        owned = Counter(s.execute(select(Face.photo_id, Face.person_id).where(
            Face.person_id.is_not(None), Face.assignment.in_([Assignment.confirmed, Assignment.auto]))).all())
    return (sorted({p for (p, _c), n in grouped.items() if n > 1}),
            sorted({p for (p, _q), n in owned.items() if n > 1}))


def test_group_photos_never_get_two_faces_in_one_group_or_on_one_person(group_photos_db: Path,
                                                                         tmp_path: Path) -> None:

    lib = Library.open(db_url(copy_db(group_photos_db, tmp_path / "lib.db")))
    try:
        with lib.session() as s:
            raw, photos = zip(*s.execute(select(Face.embedding, Face.photo_id).order_by(Face.id)), strict=True)
        # the test needs photos whose faces plain DBSCAN puts together
        plain = dbscan_labels(embedding_matrix(list(raw)), 0.42, 2)
        pairs = Counter((p, lab) for p, lab in zip(photos, plain.tolist(), strict=True) if lab >= 0)
        assert any(n > 1 for n in pairs.values())
        cluster_faces(lib)
        assert same_photo_violations(lib) == ([], [])
        # the user names one face of each group; grouping again auto-assigns the rest
        for n, c in enumerate(list_clusters(lib, limit=1000)):
            labelling.assign_faces(lib, faces_of_cluster(lib, c.id)[:1], f"G{n}")
        report = cluster_faces(lib)
        print(report.summary())
        assert same_photo_violations(lib) == ([], []), report.summary()
    finally:
        lib.close()
