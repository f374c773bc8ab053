"""Generate a big synthetic library (e.g. 100k faces) for benchmarks and scale tests.

What it holds: see :mod:`organizer.testing`.

    python bench/generate_library.py /tmp/big.db --faces 100000
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from organizer.testing import generate_library  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("db", help="new SQLite file to write")
    ap.add_argument("--faces", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--people", type=int, default=None, help="named people (default: a third of the multi-face identities, at most 1500)")
    args = ap.parse_args(argv)
    g = generate_library(args.db, args.faces, seed=args.seed, named_people=args.people)
    print(f"{g.url}: {g.faces} faces, {g.photos} photos, {g.people} people, {g.clusters} clusters, "
          f"{g.unassigned} unassigned faces ({g.seconds:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
