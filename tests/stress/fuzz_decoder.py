"""The decoder fuzz of tests/test_hardening_fuzz.py with many more inputs.

    python -m tests.stress.fuzz_decoder --examples 10000
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=10000)
    args = ap.parse_args(argv)
    env = {**os.environ, "ORGANIZER_FUZZ_EXAMPLES": str(args.examples)}
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                            "tests/test_hardening_fuzz.py"], cwd=REPO, env=env)


if __name__ == "__main__":
    sys.exit(main())
