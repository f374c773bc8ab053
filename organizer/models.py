"""The library's tables (SQLAlchemy 2.x typed models).

Every change here needs an Alembic revision in ``migrations/versions``; the app upgrades
an older library file to the newest revision when it opens it.

Who set a face's person is recorded in ``Face.assignment`` because re-clustering may only
ever touch machine decisions: anything the user said (``confirmed``, a rejection in
``face_rejections``, ``is_face = False``) is permanent until the user changes it.
"""
from __future__ import annotations

import enum
from datetime import UTC, date, datetime

import numpy as np
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

EMBEDDING_DIM = 128


#: SQLite hands a deleted row's id to the next new row unless the table is AUTOINCREMENT;
#: undo records, thumbnails cached by URL and "not this person" answers name rows by id,
#: so an id must never come back as another face, photo or person (revision 0003).
#: PostgreSQL sequences never go back, so the flag is SQLite's alone.
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class PhotoStatus(str, enum.Enum):
    ok = "ok"          # decoded and searched for faces
    error = "error"    # could not be read; see Photo.error
    missing = "missing"  # file gone from disk, kept because the user confirmed faces in it


class Assignment(str, enum.Enum):
    """How a face got its person. Only ``auto`` and ``suggested`` may be changed by the machine."""

    auto = "auto"            # set by clustering/auto-assignment (very close to a named person)
    suggested = "suggested"  # offered to the user, not yet answered
    confirmed = "confirmed"  # the user said so


class LibraryMeta(Base):
    """Key/value facts about the library (e.g. its photo root)."""

    __tablename__ = "library_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Photo(Base):
    __tablename__ = "photos"
    __table_args__ = NEVER_REUSE_IDS
    id: Mapped[int] = mapped_column(primary_key=True)
    #: POSIX path relative to the library root, so the library survives moving the root
    path: Mapped[str] = mapped_column(Text, unique=True)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    mtime: Mapped[float] = mapped_column(Float, default=0.0)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    #: capture time: EXIF DateTimeOriginal, else the file's modification time
    taken_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    taken_at_source: Mapped[str | None] = mapped_column(String(16))  # "exif" | "file"
    status: Mapped[PhotoStatus] = mapped_column(
        Enum(PhotoStatus, native_enum=False, length=16), default=PhotoStatus.ok, index=True
    )
    error: Mapped[str | None] = mapped_column(Text)
    scanned_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    #: detector settings used, so a rescan with other settings can tell what to redo
    detector: Mapped[str | None] = mapped_column(String(32))

    faces: Mapped[list[Face]] = relationship(
        back_populates="photo", cascade="all, delete-orphan", passive_deletes=True
    )


class Person(Base):
    __tablename__ = "people"
    __table_args__ = NEVER_REUSE_IDS
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    cover_face_id: Mapped[int | None] = mapped_column(ForeignKey("faces.id", ondelete="SET NULL", use_alter=True))
    birth_date: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Cluster(Base):
    """A group of similar unnamed faces found by DBSCAN.

    Ids are kept stable across re-clustering where membership barely changed, so the UI
    does not reshuffle under the user.
    """

    __tablename__ = "clusters"
    __table_args__ = NEVER_REUSE_IDS
    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("cluster_runs.id", ondelete="SET NULL"))
    size: Mapped[int] = mapped_column(Integer, default=0)


class ClusterRun(Base):
    __tablename__ = "cluster_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    eps: Mapped[float] = mapped_column(Float)
    min_samples: Mapped[int] = mapped_column(Integer)
    faces: Mapped[int] = mapped_column(Integer, default=0)
    clusters: Mapped[int] = mapped_column(Integer, default=0)
    noise: Mapped[int] = mapped_column(Integer, default=0)


class Face(Base):
    __tablename__ = "faces"
    __table_args__ = NEVER_REUSE_IDS
    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), index=True)
    # box in pixels of the EXIF-oriented full-size photo, face_recognition's order
    top: Mapped[int] = mapped_column(Integer)
    right: Mapped[int] = mapped_column(Integer)
    bottom: Mapped[int] = mapped_column(Integer)
    left: Mapped[int] = mapped_column(Integer)
    #: 68-point landmarks as {"chin": [[x, y], ...], ...} in the same coordinates as the box
    landmarks: Mapped[dict | None] = mapped_column(JSON)
    #: 128 float32 values (dlib face descriptor)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    detector: Mapped[str] = mapped_column(String(16), default="hog")
    #: what computed the embedding: "dlib" (dlib's descriptor) or "onnx-dlib-resnet-v1" (the
    #: same network on onnxruntime, organizer.embedding). One model, equal to 1e-6, so the two
    #: are compared freely; recorded so that a different model later knows what to redo
    #: (revision 0004; faces from before it are "dlib")
    embedding_engine: Mapped[str] = mapped_column(String(32), default="dlib", server_default="dlib")
    #: shorter side of the box in original pixels
    size: Mapped[int] = mapped_column(Integer, default=0)
    #: 0..1, higher is better (sharp, frontal, big); used to pick covers and evidence
    quality: Mapped[float] = mapped_column(Float, default=0.0)
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("clusters.id", ondelete="SET NULL"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), index=True)
    assignment: Mapped[Assignment | None] = mapped_column(Enum(Assignment, native_enum=False, length=16))
    #: confidence of a machine assignment/suggestion (0..1)
    confidence: Mapped[float | None] = mapped_column(Float)
    #: False when the user said "not a face": excluded everywhere from then on
    is_face: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    photo: Mapped[Photo] = relationship(back_populates="faces")
    person: Mapped[Person | None] = relationship(foreign_keys=[person_id])

    @property
    def vector(self) -> np.ndarray:
        return embedding_from_bytes(self.embedding)

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.top, self.right, self.bottom, self.left)


Index("ix_faces_person_assignment", Face.person_id, Face.assignment)
#: covering indexes for the people list and the open-cluster sizes: both are answered from
#: the index alone instead of reading 100k wide face rows (revision 0002)
Index("ix_faces_person_quality", Face.person_id, Face.quality, Face.assignment, Face.is_face, Face.photo_id)
Index("ix_faces_cluster_open", Face.cluster_id, Face.is_face, Face.person_id, Face.assignment)


class FaceThumb(Base):
    """Small JPEG crop of a face for the UI; a table of its own keeps face scans lean."""

    __tablename__ = "face_thumbs"
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True)
    jpeg: Mapped[bytes] = mapped_column(LargeBinary)


class FaceRejection(Base):
    """The user said: this face is *not* this person. Never suggested again."""

    __tablename__ = "face_rejections"
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Operation(Base):
    """One user action, with what is needed to undo it (the undo history)."""

    __tablename__ = "operations"
    __table_args__ = NEVER_REUSE_IDS
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(Text, default="")
    #: enough state to revert the action exactly (JSON)
    undo: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    undone: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


class ScanRun(Base):
    __tablename__ = "scan_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    root: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    report: Mapped[dict] = mapped_column(JSON, default=dict)



def embedding_to_bytes(vec: np.ndarray) -> bytes:
    return np.asarray(vec, dtype=np.float32).tobytes()


def embedding_from_bytes(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype=np.float32)


def embedding_matrix(rows: list[bytes]) -> np.ndarray:
    """Stored embeddings as one (n, 128) float32 matrix (n may be 0), in one copy."""
    if not rows:
        return np.zeros((0, 128), dtype=np.float32)
    return np.frombuffer(b"".join(rows), dtype=np.float32).reshape(len(rows), -1)
