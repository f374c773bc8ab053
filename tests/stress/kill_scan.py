"""kill -9 `organizer scan` at many points of a scan of real photos, then finish it and
compare with a clean scan: same faces, no duplicates, labels made between kills intact.

    python -m tests.stress.kill_scan --kills 60 --identities 40 --per-identity 4
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests import hardening_tools as ht
from tests.conftest import lfw_subset


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=60)
    ap.add_argument("--identities", type=int, default=40)
    ap.add_argument("--per-identity", type=int, default=4)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="organizer-kill-") as tmp:
        work = Path(tmp)
        root = lfw_subset(work / "photos", identities=args.identities, per_identity=args.per_identity,
                          min_photos=args.per_identity)
        n = sum(1 for _ in root.rglob("*.jpg"))
        t0 = time.monotonic()
        clean = ht.finish_scan(root, work / "clean.db")
        if clean.returncode != 0:
            print(clean.stderr, file=sys.stderr)
            return 1
        clean_s = time.monotonic() - t0
        expected = ht.face_keys(work / "clean.db")
        points = ht.plan_kill_points(n, args.kills, seed=args.seed)
        campaign = ht.run_kill_campaign(root, work / "killed.db", points, n)
        done = ht.finish_scan(root, work / "killed.db")
        problems = ht.check_after_kills(work / "killed.db", expected, campaign, n) if done.returncode == 0 else [done.stderr]
    print(f"photos: {n}, faces in a clean scan: {sum(expected.values())} ({clean_s:.0f}s)")
    print(f"kill -9 points tried: {len(points)}, kills landed: {campaign.kills} "
          f"(scans that finished first: {campaign.finished_before_kill}) in {campaign.seconds:.0f}s")
    print(f"where the kills landed: {dict(campaign.stages)}; distinct commit points: {len(set(campaign.committed_at_kill))}")
    print(f"labels made between kills: {len(campaign.labels_made)}")
    print("result: " + ("identical to a clean scan, no duplicates, every label intact" if not problems else
                        "PROBLEMS: " + "; ".join(problems)))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
