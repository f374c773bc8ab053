"""10 simulated users click label actions on the dashboard (HTTP to the Dash callbacks on
127.0.0.1) while `organizer scan` writes new photos into the same SQLite library.
Prints requests/s, latency percentiles, "database is locked" failures and lost actions.

    python -m tests.stress.load --users 10 --actions 30 --base-identities 60 --extra 150
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests import hardening_tools as ht
from tests.conftest import lfw_subset


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--actions", type=int, default=30, help="label actions per user")
    ap.add_argument("--base-identities", type=int, default=60, help="LFW identities (x5 photos) in the library first")
    ap.add_argument("--extra", type=int, default=150, help="new photos the concurrent scan adds")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="organizer-load-") as tmp:
        work = Path(tmp)
        base = lfw_subset(work / "base", identities=args.base_identities, per_identity=5, min_photos=5)
        done = ht.finish_scan(base, work / "base.db")
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return 1
        (work / "run").mkdir()
        report = ht.run_load_test(base, work / "base.db", work / "run", users=args.users,
                                  actions_per_user=args.actions, extra_photos=args.extra)
    print(report.summary())
    for line in (report.failed_actions + report.lost_actions)[:10]:
        print("  " + line)
    ok = report.locked_errors == 0 and report.http_errors == 0 and not report.lost_actions and not report.failed_actions
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
