#!/usr/bin/env python3
"""Server time of the dashboard's look-alike upload for 12 MP photos (issue 15, item 7).

Builds a library from people-small/train (every face named after its folder), then runs
the upload callback's body (dashboard.pages.resemblance.lookalike_upload: base64 decode,
organizer.resemblance.lookalike_bytes, rendering) on phone-sized photos:

* a 4000x3000 JPEG made from people-small/test's group photo, and a real 12 MP phone
  HEIC from edge-cases/more when present (it shows no face: the worst case, where both
  detector passes run and the answer is an alert);
* the first upload in a fresh process (the dashboard's first visitor: dlib's models and
  the embedding engine load then) and the median of --rounds later ones;
* the same steps timed one by one: decode to 1600 px, detection, embedding + landmarks.

    python bench/lookalike.py            # about a minute on 2 shared cores
"""
from __future__ import annotations

import argparse
import base64
import io
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402
from sqlalchemy import select  # noqa: E402

from organizer import faces  # noqa: E402
from organizer.config import Settings  # noqa: E402
from organizer.db import Library  # noqa: E402
from organizer.imaging import open_image  # noqa: E402
from organizer.labelling import assign_faces  # noqa: E402
from organizer.models import Face, Photo  # noqa: E402
from organizer.scanner import scan  # noqa: E402


def named_library(photos: Path, db: Path) -> Library:
    """people-small/train scanned by worker processes (so this process stays cold), named by folder."""
    settings = Settings(db_url=f"sqlite:///{db}", workers=2)
    lib = Library.open(settings.db_url)
    scan(lib, photos / "people-small" / "train", settings)
    with lib.session() as s:
        rows = s.execute(select(Face.id, Photo.path).join(Photo, Photo.id == Face.photo_id)).all()
    by_person: dict[str, list[int]] = {}
    for fid, path in rows:
        by_person.setdefault(path.split("/")[0], []).append(fid)
    for name, ids in by_person.items():
        assign_faces(lib, ids, name)
    return lib


def uploads(photos: Path) -> list[tuple[str, bytes]]:
    group = min((photos / "people-small" / "test").glob("*.jpg"), key=lambda p: p.name)
    img = Image.open(group).convert("RGB").resize((4000, 3000), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    out = [(f"{group.stem}-4000x3000.jpg", buf.getvalue())]
    heic = photos / "edge-cases" / "more" / "exif_samples" / "heic" / "mobile" / "iphone_13_pro_max.HEIC"
    if heic.exists():
        out.append((heic.name, heic.read_bytes()))
    return out


def data_url(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "photos")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not (args.photos / "people-small").exists():
        print(f"no photo set at {args.photos}", file=sys.stderr)
        return 2
    from dashboard.pages.resemblance import lookalike_upload

    with tempfile.TemporaryDirectory() as tmp:
        lib = named_library(args.photos, Path(tmp) / "library.db")
        files = uploads(args.photos)
        assert faces._api.cache_info().currsize == 0, "this process should not have loaded the models yet"
        for i, (name, data) in enumerate(files):
            size = Image.open(io.BytesIO(data)).size
            contents = data_url(data)
            times = []
            for _ in range(args.rounds + (1 if i == 0 else 0)):
                start = time.perf_counter()
                shown = lookalike_upload(lib, contents, name)
                times.append(time.perf_counter() - start)
                assert shown is not None
            answer = "matches" if getattr(shown, "id", None) == "resemblance-lookalike-result" else "an alert"
            cold = f"first upload in a fresh process {times.pop(0):.2f} s, " if i == 0 else ""
            print(f"{name} ({size[0]}x{size[1]}, {len(data) / 2**20:.1f} MB, answer: {answer}): {cold}"
                  f"then {statistics.median(times):.2f} s (median of {len(times)})")
            with tempfile.NamedTemporaryFile(suffix=Path(name).suffix) as fh:
                fh.write(data)
                fh.flush()
                t0 = time.perf_counter()
                img = open_image(fh.name, max_size=1600)
                t1 = time.perf_counter()
                boxes = faces.detect(img.pixels)
                t2 = time.perf_counter()
                found = faces.embed(img.pixels, boxes)
                t3 = time.perf_counter()
            print(f"    decode to {img.pixels.shape[1]}x{img.pixels.shape[0]} {t1 - t0:.2f} s, detect {t2 - t1:.2f} s, "
                  f"embed + landmarks {t3 - t2:.2f} s for {len(found)} faces ({faces.embedding_engine()})")
        lib.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
