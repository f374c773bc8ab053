"""Faces embedded by dlib's descriptor and by the onnxruntime engine live in one library.

Both engines are one model (tests/test_embedding_engine.py: the same vectors to ~1e-6),
so a library scanned partly before the fast engine (dlib's descriptor) and partly after
must group faces exactly as one scanned wholly by the engine; each face records which
engine made it.
Real photos from ../shared/photos/people-small (skipped with the reason when absent).
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from organizer import faces
from organizer.clustering import cluster_faces
from organizer.db import Library
from organizer.embedding import ENGINE_ID
from organizer.imaging import is_image_name
from organizer.models import Face, Photo
from organizer.scanner import scan

from .conftest import db_url, photos_dir, settings_for

FaceKey = tuple[str, tuple[int, int, int, int]]


@contextmanager
def dlib_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Embeddings from dlib's own descriptor, as before the fast engine (one-worker scans
    run in this process, so the switch reaches them)."""
    with monkeypatch.context() as m:
        m.setattr(faces, "_engine", lambda: None)
        assert faces.embedding_engine() == "dlib"
        yield


def _photos() -> list[tuple[Path, Path]]:
    """Every people-small photo (train and test: 14 photos, 17 faces), with its place in the set."""
    src = photos_dir("people-small")
    files = sorted(p for p in src.rglob("*") if is_image_name(p.name))
    assert len(files) >= 14
    return [(p, p.relative_to(src)) for p in files]


def _copy(files: list[tuple[Path, Path]], root: Path) -> None:
    for src, rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, root / rel)


def _scan(lib: Library, root: Path, db: Path) -> None:
    report = scan(lib, root, settings_for(db, workers=1))
    assert report.failed == 0, report.errors


def _faces(lib: Library) -> dict[FaceKey, tuple[np.ndarray, str, int | None]]:
    with lib.session() as s:
        rows = s.execute(select(Photo.path, Face).join(Face, Face.photo_id == Photo.id)).all()
        return {(path, f.box): (f.vector.copy(), f.embedding_engine, f.cluster_id) for path, f in rows}


def _groups(lib: Library) -> set[frozenset[FaceKey]]:
    """The clustering as a partition of faces (photo path + box); unclustered faces alone."""
    cluster_faces(lib)
    by_cluster: dict[object, set[FaceKey]] = {}
    for key, (_, _, cluster) in _faces(lib).items():
        by_cluster.setdefault(cluster if cluster is not None else key, set()).add(key)
    return {frozenset(g) for g in by_cluster.values()}


def test_a_library_scanned_half_by_dlib_half_by_the_engine_clusters_like_one_engine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _photos()
    libs: dict[str, Library] = {}
    root, db = tmp_path / "onnx" / "photos", tmp_path / "onnx" / "library.db"
    _copy(files, root)
    libs["onnx"] = Library.open(db_url(db))
    _scan(libs["onnx"], root, db)
    # the mixed library: the first half scanned before the fast engine, the rest after
    root, db = tmp_path / "mixed" / "photos", tmp_path / "mixed" / "library.db"
    libs["mixed"] = Library.open(db_url(db))
    half = len(files) // 2
    _copy(files[:half], root)
    with dlib_engine(monkeypatch):
        _scan(libs["mixed"], root, db)
    _copy(files[half:], root)
    _scan(libs["mixed"], root, db)

    got = {name: _faces(lib) for name, lib in libs.items()}
    assert len(got["onnx"]) >= 17 and got["onnx"].keys() == got["mixed"].keys()  # the same faces, same boxes
    assert {e for _, e, _ in got["onnx"].values()} == {ENGINE_ID}
    early = {rel.as_posix() for _, rel in files[:half]}
    for (path, _), (_, engine, _) in got["mixed"].items():
        assert engine == ("dlib" if path in early else ENGINE_ID), path
    assert {e for _, e, _ in got["mixed"].values()} == {"dlib", ENGINE_ID}
    worst = max(float(np.abs(got["onnx"][k][0] - got["mixed"][k][0]).max()) for k in got["onnx"])
    assert worst <= 1e-4  # dlib's vectors of the first half = the engine's

    groups = {name: _groups(lib) for name, lib in libs.items()}
    assert sum(len(g) > 1 for g in groups["onnx"]) >= 3, "people-small should form groups"
    assert groups["mixed"] == groups["onnx"]
    for lib in libs.values():
        lib.close()


def test_the_pool_scan_records_the_engine_of_every_face(people_small_lib: Library) -> None:
    """people_small_lib is scanned with two workers (forked from the preloading fork server)."""
    with people_small_lib.session() as s:
        engines = s.scalars(select(Face.embedding_engine)).all()
    assert len(engines) == 9 and set(engines) == {ENGINE_ID}
