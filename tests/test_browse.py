"""Read-only browse queries: counts, filters, ordering, paging, and clear errors."""
from __future__ import annotations

import dataclasses

import pytest

from organizer import browse, labelling
from organizer.clustering import cluster_faces
from organizer.db import Library
from organizer.errors import ClusterNotFound, NotFound, PersonNotFound

from .test_labelling import snapshot


@pytest.fixture()
def lib(lfw_lib: Library) -> Library:
    cluster_faces(lfw_lib)
    clusters = browse.list_clusters(lfw_lib, limit=100)
    labelling.name_cluster(lfw_lib, clusters[0].id, "Alice Smith")
    labelling.name_cluster(lfw_lib, clusters[1].id, "Bob Jones")
    return lfw_lib


def test_people_counts_search_hidden_and_order(lib: Library) -> None:
    people = browse.list_people(lib)
    assert [p.name for p in people] == ["Alice Smith", "Bob Jones"] or people[0].face_count >= people[1].face_count
    alice = browse.find_person(lib, "alice SMITH")
    assert alice.face_count == alice.confirmed_count == len(browse.person_faces(lib, alice.id)) > 0
    assert alice.photo_count == len({f.photo_id for f in browse.person_faces(lib, alice.id)})
    assert alice.cover_face_id in {f.id for f in browse.person_faces(lib, alice.id)} and not alice.cover_chosen
    assert [p.name for p in browse.list_people(lib, search="jON")] == ["Bob Jones"]
    assert browse.list_people(lib, search="%") == []
    labelling.set_hidden(lib, alice.id, True)
    assert [p.name for p in browse.list_people(lib)] == ["Bob Jones"]
    assert {p.name for p in browse.list_people(lib, include_hidden=True)} == {"Alice Smith", "Bob Jones"}
    assert [p.name for p in browse.list_people(lib, include_hidden=True, order="name")] == ["Alice Smith", "Bob Jones"]
    with pytest.raises(PersonNotFound, match="Carol"):
        browse.find_person(lib, "Carol")
    with pytest.raises(PersonNotFound):
        browse.get_person(lib, 99999)


def test_clusters_are_unnamed_groups_largest_first_and_paged(lib: Library) -> None:
    clusters = browse.list_clusters(lib, limit=1000)
    assert browse.count_clusters(lib) == len(clusters) > 2
    sizes = [c.size for c in clusters]
    assert sizes == sorted(sizes, reverse=True)
    assert [c.id for c in browse.list_clusters(lib, limit=2, offset=1)] == [c.id for c in clusters[1:3]]
    first = clusters[0]
    faces = browse.faces_in_cluster(lib, first.id)
    assert len(faces) == first.size and all(f.cluster_id == first.id and f.person_id is None for f in faces)
    assert first.face_ids == [f.id for f in faces][: len(first.face_ids)]
    assert [f.quality for f in faces] == sorted((f.quality for f in faces), reverse=True)
    assert [f.id for f in browse.faces_in_cluster(lib, first.id, limit=1, offset=1)] == [faces[1].id]
    with pytest.raises(ClusterNotFound):
        browse.faces_in_cluster(lib, 99999)


def test_unassigned_person_and_photo_faces(lib: Library) -> None:
    alice = browse.find_person(lib, "Alice Smith")
    unassigned = browse.unassigned_faces(lib, limit=5000)
    assert browse.count_unassigned(lib) == len(unassigned)
    assert all(f.person_id is None or f.assignment == "suggested" for f in unassigned)
    mine = browse.person_faces(lib, alice.id)
    assert not {f.id for f in mine} & {f.id for f in unassigned}
    photo, faces = browse.photo_faces(lib, mine[0].photo_id)
    assert photo.id == mine[0].photo_id and mine[0].id in [f.id for f in faces] and photo.status == "ok"
    assert faces[[f.id for f in faces].index(mine[0].id)].person_name == "Alice Smith"
    labelling.mark_not_face(lib, [mine[0].id])
    assert mine[0].id not in [f.id for f in browse.photo_faces(lib, mine[0].photo_id)[1]]
    assert mine[0].id in [f.id for f in browse.photo_faces(lib, mine[0].photo_id, include_not_faces=True)[1]]
    with pytest.raises(NotFound):
        browse.photo_faces(lib, 99999)


def test_thumbnails_and_no_embeddings_leak(lib: Library) -> None:
    face = browse.unassigned_faces(lib, limit=1)[0]
    jpeg = browse.face_thumbnail(lib, face.id)
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8"
    assert browse.face_thumbnail(lib, 999999) is None
    for obj in [face, browse.list_people(lib)[0], browse.list_clusters(lib)[0], browse.photo_faces(lib, face.photo_id)[0]]:
        for field in dataclasses.fields(obj):
            assert not isinstance(getattr(obj, field.name), (bytes, bytearray)), field.name


def test_browsing_writes_nothing(lib: Library) -> None:
    before = snapshot(lib)
    browse.list_people(lib, include_hidden=True, search="a")
    browse.list_clusters(lib)
    browse.unassigned_faces(lib)
    browse.get_person(lib, browse.list_people(lib)[0].id)
    assert snapshot(lib) == before


def test_cover_is_the_best_quality_face_with_ties_to_the_lowest_id(lib: Library) -> None:
    from sqlalchemy import update

    from organizer.models import Face

    alice = browse.find_person(lib, "Alice Smith")
    faces = browse.person_faces(lib, alice.id)
    assert alice.cover_face_id == min(faces, key=lambda f: (-f.quality, f.id)).id
    # equal qualities: the lowest id wins, whatever order the index holds them in
    with lib.session() as s:
        s.execute(update(Face).where(Face.id.in_([f.id for f in faces])).values(quality=0.5))
    assert browse.get_person(lib, alice.id).cover_face_id == min(f.id for f in faces)
    labelling.set_cover(lib, alice.id, faces[-1].id)
    again = browse.get_person(lib, alice.id)
    assert again.cover_face_id == faces[-1].id and again.cover_chosen


def test_people_and_cluster_queries_read_only_the_covering_indexes(lib: Library) -> None:
    """At 100k faces reading face rows made these pages slow (revision 0002): the planner
    must answer the people counts and the open-cluster sizes from the indexes alone."""
    from organizer.browse import _open_cluster_sizes, _person_counts
    from organizer.models import Face

    people = _person_counts(Face.person_id.in_([p.id for p in browse.list_people(lib)]))
    with lib.session() as s:
        for query, index in ((people, "ix_faces_person_quality"), (_open_cluster_sizes(), "ix_faces_cluster_open")):
            sql = str(query.compile(compile_kwargs={"literal_binds": True}))
            plan = " ".join(row[-1] for row in s.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
            assert f"COVERING INDEX {index}" in plan, plan
