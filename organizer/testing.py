"""Test and benchmark support: synthetic libraries and ground truth from folder names.

Importable by tests, benchmarks and stress scripts alike (like beets' ``beets/test/helper.py``),
so none of them loads another's file by path. Nothing here runs in the product.

:func:`generate_library` writes a library shaped like a real family library after some
labelling, through the real schema (the file is created by ``Library.open``, i.e. by the
migrations), so every page and API call runs unchanged on it:

* identities with a long-tailed number of faces, each a random centre in 128-d space with
  faces around it, scaled like dlib's distances (one person ~0.35 apart, different people
  ~0.95);
* the biggest identities named (most faces confirmed, some auto, the rest unassigned), a
  few hidden; the others grouped into clusters, singletons unclustered;
* photo rows (1-4 faces each, dates over 20 years, ~0.5% unreadable) under an empty root;
* a few shared 64 px JPEG thumbnails, so the file stays small.
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select

from .db import Library
from .models import (
    Assignment,
    Cluster,
    ClusterRun,
    Face,
    FaceThumb,
    Person,
    Photo,
    PhotoStatus,
    ScanRun,
    embedding_to_bytes,
)

DIM = 128
#: per-dimension spread of identity centres and of faces around them; distance between two
#: random centres ~ sqrt(2*128)*0.06 = 0.96, between two faces of one person ~ 0.35
CENTRE_SD = 0.06
FACE_SD = 0.022
ERROR_REASONS = ["truncated or corrupt image (image file is truncated)", "empty file (0 bytes)",
                 "not an image, or a format that cannot be read"]
FIRST_NAMES = ["Ada", "Ben", "Cleo", "Dan", "Eve", "Finn", "Gia", "Hugo", "Iris", "Jon", "Kai", "Lena", "Milo",
               "Nora", "Omar", "Pia", "Quinn", "Rosa", "Sam", "Tess", "Umar", "Vera", "Will", "Xena", "Yuri", "Zoe"]
LAST_NAMES = ["Berg", "Costa", "Diaz", "Evans", "Fischer", "Garcia", "Haas", "Ito", "Jensen", "Kim", "Lopez",
              "Moreau", "Novak", "Okafor", "Patel", "Rossi", "Silva", "Tanaka", "Ueda", "Weber"]


@dataclass
class GeneratedLibrary:
    url: str
    faces: int
    photos: int
    people: int
    clusters: int
    unassigned: int
    seconds: float


def _thumbs(n: int, rng: np.random.Generator) -> list[bytes]:
    from PIL import Image, ImageDraw

    out = []
    for _ in range(n):
        bg = tuple(int(v) for v in rng.integers(60, 200, 3))
        skin = tuple(int(v) for v in rng.integers(150, 235, 3))
        img = Image.new("RGB", (64, 64), bg)
        d = ImageDraw.Draw(img)
        d.ellipse((14, 8, 50, 54), fill=skin)
        d.ellipse((23, 24, 28, 29), fill=(40, 40, 40))
        d.ellipse((36, 24, 41, 29), fill=(40, 40, 40))
        d.arc((24, 32, 40, 44), 20, 160, fill=(120, 40, 40), width=2)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=70)
        out.append(buf.getvalue())
    return out


def identity_sizes(faces: int, rng: np.random.Generator) -> np.ndarray:
    """A long tail: sizes drawn from a Zipf law, trimmed to sum exactly to ``faces``."""
    sizes: list[int] = []
    total = 0
    cap = max(10, faces // 40)
    while total < faces:
        n = int(min(rng.zipf(1.7), cap))
        n = min(n, faces - total)
        sizes.append(n)
        total += n
    return np.asarray(sorted(sizes, reverse=True), dtype=np.int64)


def generate_library(db: str | Path, faces: int = 100_000, *, seed: int = 0, named_people: int | None = None,
                     batch: int = 20_000) -> GeneratedLibrary:
    """Write a new synthetic library of ``faces`` faces to the SQLite file ``db``."""
    started = time.perf_counter()
    db = Path(db)
    if db.exists():
        raise FileExistsError(f"{db} exists; generate into a new file")
    rng = np.random.default_rng(seed)
    url = f"sqlite:///{db}"
    lib = Library.open(url)
    root = db.parent / f"{db.stem}-photos"
    root.mkdir(parents=True, exist_ok=True)
    lib.set_meta("root", str(root.resolve()))

    sizes = identity_sizes(faces, rng)
    n_ids = len(sizes)
    multi = int((sizes >= 3).sum())
    n_named = named_people if named_people is not None else max(1, min(multi // 3, 1500))
    centres = rng.normal(0.0, CENTRE_SD, (n_ids, DIM)).astype(np.float32)
    identity = np.repeat(np.arange(n_ids), sizes)
    rng.shuffle(identity)

    # photos: 1-4 faces each
    per_photo = rng.choice([1, 1, 1, 1, 2, 2, 3, 4], size=faces)
    photo_of_face = np.repeat(np.arange(faces), per_photo)[:faces]
    n_photos = int(photo_of_face.max()) + 1
    n_errors = max(1, n_photos // 200)
    start = datetime(2004, 1, 1)
    thumbs = _thumbs(48, rng)

    with lib.engine.begin() as conn:
        conn.execute(insert(ScanRun), [{"root": str(root), "started_at": datetime.now(), "finished_at": datetime.now(),
                                        "settings": {"generated": True}, "report": {}}])
        run_key = conn.execute(insert(ClusterRun).values(eps=0.4, min_samples=2, faces=faces, clusters=0, noise=0)
                               ).inserted_primary_key
        assert run_key is not None  # one row inserted, so one key
        run_id = run_key[0]
        photo_rows = []
        for pid in range(1, n_photos + 1):
            taken = start + timedelta(minutes=int(rng.integers(0, 20 * 365 * 24 * 60)))
            photo_rows.append({"id": pid, "path": f"{taken.year}/{taken.month:02d}/IMG_{pid:07d}.jpg",
                               "content_hash": f"{pid:064x}", "size": 2_000_000, "mtime": 0.0, "width": 1600,
                               "height": 1200, "taken_at": taken, "taken_at_source": "exif",
                               "status": PhotoStatus.ok, "detector": "hog/1/1600", "error": None})
        for pid in range(n_photos + 1, n_photos + n_errors + 1):
            photo_rows.append({"id": pid, "path": f"broken/file_{pid:07d}.jpg", "content_hash": None, "size": 0,
                               "mtime": 0.0, "width": None, "height": None, "taken_at": None,
                               "taken_at_source": None, "status": PhotoStatus.error, "detector": None,
                               "error": ERROR_REASONS[pid % len(ERROR_REASONS)]})
        for i in range(0, len(photo_rows), batch):
            conn.execute(insert(Photo), photo_rows[i:i + batch])

        # people: the biggest identities are named
        person_of_identity: dict[int, int] = {}
        used: set[str] = set()
        people_rows = []
        for ident in range(n_named):
            first = FIRST_NAMES[ident % len(FIRST_NAMES)]
            name = f"{first} {LAST_NAMES[(ident // len(FIRST_NAMES)) % len(LAST_NAMES)]}"
            if name in used:
                name = f"{name} {ident}"
            used.add(name)
            person_of_identity[ident] = ident + 1
            people_rows.append({"id": ident + 1, "name": name, "hidden": ident % 97 == 96})
        conn.execute(insert(Person), people_rows)

        # clusters: one per unnamed identity with at least two faces
        cluster_of_identity: dict[int, int] = {}
        cluster_rows: list[dict] = []
        for ident in range(n_named, n_ids):
            if sizes[ident] >= 2:
                cid = len(cluster_rows) + 1
                cluster_of_identity[ident] = cid
                cluster_rows.append({"id": cid, "run_id": run_id, "size": int(sizes[ident])})
        if cluster_rows:
            conn.execute(insert(Cluster), cluster_rows)

        face_rows, thumb_rows = [], []
        unassigned = 0
        for fid in range(1, faces + 1):
            ident = int(identity[fid - 1])
            vec = centres[ident] + rng.normal(0.0, FACE_SD * rng.uniform(0.7, 1.3), DIM).astype(np.float32)
            size = int(rng.integers(40, 400))
            row = {"id": fid, "photo_id": int(photo_of_face[fid - 1]) + 1, "top": 100, "right": 100 + size,
                   "bottom": 100 + size, "left": 100, "embedding": embedding_to_bytes(vec), "detector": "hog",
                   "size": size, "quality": float(rng.uniform(0.2, 1.0)), "is_face": True,
                   "person_id": None, "assignment": None, "confidence": None, "cluster_id": None}
            if ident in person_of_identity:
                roll = rng.random()
                if roll < 0.75:
                    row.update(person_id=person_of_identity[ident], assignment=Assignment.confirmed, confidence=1.0)
                elif roll < 0.85:
                    row.update(person_id=person_of_identity[ident], assignment=Assignment.auto, confidence=0.95)
                else:
                    unassigned += 1
            else:
                unassigned += 1
                row["cluster_id"] = cluster_of_identity.get(ident)
            face_rows.append(row)
            thumb_rows.append({"face_id": fid, "jpeg": thumbs[fid % len(thumbs)]})
            if len(face_rows) >= batch:
                conn.execute(insert(Face), face_rows)
                conn.execute(insert(FaceThumb), thumb_rows)
                face_rows, thumb_rows = [], []
        if face_rows:
            conn.execute(insert(Face), face_rows)
            conn.execute(insert(FaceThumb), thumb_rows)
    lib.close()
    return GeneratedLibrary(url=url, faces=faces, photos=n_photos + n_errors, people=n_named,
                            clusters=len(cluster_rows), unassigned=unassigned,
                            seconds=time.perf_counter() - started)



def main_face(photo: Photo) -> Face:
    """The biggest face of a photo: in LFW-style sets the label belongs to it."""
    return max(photo.faces, key=lambda f: (f.bottom - f.top) * (f.right - f.left))


def truth_by_folder(lib: Library) -> dict[int, str]:
    """{face id: identity} from the photo's folder (``<set>/<person>/x.jpg``), for the main
    face of each photo in a folder."""
    out = {}
    with lib.session() as s:
        for photo in s.scalars(select(Photo)):
            if photo.faces and "/" in photo.path:
                out[main_face(photo).id] = photo.path.split("/")[-2]
    return out


def label_by_folder(lib: Library) -> dict[str, int]:
    """Name the main face of every photo after its folder, as if the user had confirmed it.

    Returns {person name: person id}. For tests of features built on labelled people.
    """
    ids: dict[str, int] = {}
    with lib.session() as s:
        for photo in s.scalars(select(Photo)):
            parts = photo.path.split("/")
            if len(parts) < 2 or not photo.faces:
                continue
            name = parts[-2]
            if name not in ids:
                person = s.scalar(select(Person).where(Person.name == name))
                if person is None:
                    person = Person(name=name)
                    s.add(person)
                    s.flush()
                ids[name] = person.id
            face = main_face(photo)
            face.person_id, face.assignment, face.confidence = ids[name], Assignment.confirmed, 1.0
    return ids


__all__ = ["GeneratedLibrary", "generate_library", "identity_sizes", "label_by_folder", "main_face",
           "truth_by_folder"]
