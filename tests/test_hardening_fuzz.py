"""Fuzzing the decoder path: mutated real JPEG/PNG/WebP/TIFF/BMP/HEIC bytes, absurd
dimensions in headers, broken EXIF blocks. Each input goes through exactly what a scan
worker runs (``analyse_file``: hash, decode, orient, detect, embed) in a worker process
with a time limit; it must return, never raise, crash or hang, and a file it cannot use
must come back with a reason. Then a real scan of a folder of such files records every
one of them. The longer run is ``python -m tests.stress.fuzz_decoder``."""
from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from organizer.db import Library
from organizer.models import Photo, PhotoStatus
from organizer.scanner import scan

from . import hardening_tools as ht
from .conftest import settings_for

EXAMPLES = int(os.environ.get("ORGANIZER_FUZZ_EXAMPLES", "1000"))
DIMS = [0, 1, 2, 3, 255, 65500, 65535, 2**16, 2**24, 2**31 - 1, 2**32 - 1]
TAGS = [0x0112, 0x8769, 0x9003, 0x9004, 0x0132, 0x0100, 0x0101, 0x8825, 0xA005, 0x0000, 0xFFFF]


def operations(seed_names: list[str]) -> st.SearchStrategy:
    entry = st.tuples(st.one_of(st.sampled_from(TAGS), st.integers(0, 0xFFFF)), st.integers(0, 20),
                      st.one_of(st.sampled_from([0, 1, 2, 8, 2**16, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1)),
                      st.binary(min_size=4, max_size=4))
    return st.one_of(
        st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 255)),
        st.tuples(st.just("truncate"), st.floats(0, 1)),
        st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 512)),
        st.tuples(st.just("dims"), st.sampled_from(DIMS), st.sampled_from(DIMS), st.booleans()),
        st.tuples(st.just("exif"), st.lists(entry, max_size=8), st.booleans()),
        st.tuples(st.just("splice"), st.sampled_from(seed_names), st.floats(0, 1)),
    )


def mutate(seeds: dict[str, bytes], name: str, ops: list[tuple]) -> bytes:
    data = seeds[name]
    for op in ops:
        n = len(data)
        at = lambda f: min(n, int(f * n))  # noqa: E731
        kind = op[0]
        if kind == "flip" and n:
            i = min(n - 1, at(op[1]))
            data = data[:i] + bytes([op[2]]) + data[i + 1:]
        elif kind == "truncate":
            data = data[:at(op[1])]
        elif kind == "insert":
            data = data[:at(op[1])] + op[2] + data[at(op[1]):]
        elif kind == "delete":
            data = data[:at(op[1])] + data[at(op[1]) + op[2]:]
        elif kind == "dims":
            data = ht.set_dimensions(data, op[1], op[2], fix_crc=op[3])
        elif kind == "exif":
            data = ht.insert_exif(data, ht.exif_segment(op[1], little=op[2]))
        elif kind == "splice":
            other = seeds[op[1]]
            data = data[:at(op[2])] + other[int(op[2] * len(other)):]
    return data


def _check(outcome: tuple, what: str) -> None:
    kind, error, width, height, _faces = outcome
    assert kind == "returned", f"{what}: {kind}: {error}"
    if error is not None:
        assert isinstance(error, str) and len(error.strip()) >= 5, f"{what}: no reason given ({error!r})"
    else:
        assert width and height and width > 0 and height > 0, f"{what}: accepted without a size"


@pytest.fixture(scope="module")
def worker() -> ht.FuzzWorker:
    w = ht.FuzzWorker(timeout=30)
    yield w
    w.close()


def test_absurd_headers_and_broken_exif(worker: ht.FuzzWorker, tmp_path: Path) -> None:
    """The named cases first: every absurd size in every header kind, and EXIF blocks that
    lie about counts, offsets, orientation and dates."""
    seeds = ht.fuzz_seeds()
    assert len(seeds) >= 8
    tried = 0
    for name, data in seeds.items():
        cases = [ht.set_dimensions(data, w, h, fix_crc=crc) for w in DIMS[::2] for h in DIMS[1::3] for crc in (True, False)]
        if data[:2] == b"\xff\xd8":
            for orientation in (0, 9, 255, 65535):
                cases.append(ht.insert_exif(data, ht.exif_segment([(0x0112, 3, 1, orientation.to_bytes(2, "little"))])))
            cases.append(ht.insert_exif(data, ht.exif_segment([(0x8769, 4, 1, (2**31).to_bytes(4, "little"))])))
            cases.append(ht.insert_exif(data, ht.exif_segment([(0x9003, 2, 2**31, b"\xff\xff\xff\x7f")])))
            cases.append(ht.insert_exif(data, ht.exif_segment([(0x0112, 3, 2**32 - 1, b"\0\0\0\0")] * 300)))
        for i, blob in enumerate(cases):
            path = tmp_path / f"{name}.{i}{Path(name).suffix}"
            path.write_bytes(blob)
            _check(worker.analyse(tmp_path, path.name), f"{name} case {i}")
            path.unlink()
            tried += 1
    print(f"\n{tried} hand-made absurd headers / broken EXIF blocks: all returned with a reason or a valid image")


def test_fuzz_the_decoder_path(worker: ht.FuzzWorker, tmp_path: Path) -> None:
    seeds = ht.fuzz_seeds()
    names = sorted(seeds)
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    kept: list[bytes] = []
    started = time.monotonic()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(names), st.lists(operations(names), min_size=1, max_size=4))
    def one(name: str, ops: list[tuple]) -> None:
        blob = mutate(seeds, name, ops)
        path = tmp_path / f"input{Path(name).suffix}"
        path.write_bytes(blob)
        outcome = worker.analyse(tmp_path, path.name)
        _check(outcome, f"{name} {ops!r}"[:500])
        outcomes["unreadable (with a reason)" if outcome[1] else "decoded"] += 1
        if outcome[1]:
            reasons[outcome[1].split("(")[0].split(":")[0].strip()[:40]] += 1
        if len(kept) < 60 and (outcome[1] or len(kept) % 3 == 0):
            kept.append(blob)

    one()
    took = time.monotonic() - started
    total = sum(outcomes.values())
    print(f"\nfuzz: {total} mutated inputs in {took:.0f}s ({dict(outcomes)}); 0 raised, 0 crashed, 0 hung; "
          f"reasons: {dict(reasons.most_common(8))}")
    assert total >= min(EXAMPLES, 100) and outcomes["unreadable (with a reason)"] > 0 and outcomes["decoded"] > 0

    # the scanner itself on a folder of such files: every file gets a row, every bad one a reason
    root = tmp_path / "photos"
    root.mkdir()
    for i, blob in enumerate(kept):
        (root / f"f{i:03d}.jpg").write_bytes(blob)
    (tmp_path / "input.jpg").unlink(missing_ok=True)
    db = tmp_path / "fuzz.db"
    lib = Library.open(f"sqlite:///{db}")
    report = scan(lib, root, settings_for(db, workers=2))
    with lib.session() as s:
        rows = s.execute(select(Photo.path, Photo.status, Photo.error)).all()
    assert len(rows) == len(kept)
    bad = [r for r in rows if r.status == PhotoStatus.error]
    assert all(r.error and len(r.error) >= 5 for r in bad)
    assert report.failed == len(bad) and len(bad) > 0
    lib.close()
