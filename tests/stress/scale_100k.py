"""A 100k-face library stays interactive: the real `organizer dashboard` server on
127.0.0.1, timed over HTTP (callback + JSON + network stack): the people page, the
review overview, the biggest cluster's page, the suggestions page (the first call builds
the suggestion index: reported as "cold"), answering a suggestion, and a label action;
then 10 users labelling at once. Complements bench/dashboard.py (in-process, vs 1k).

    python -m tests.stress.scale_100k                 # generates a 100k library in a temp dir
    python -m tests.stress.scale_100k --db /tmp/big.db --faces 100000   # reuse/create there
"""
from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests import hardening_tools as ht

REPO = Path(__file__).resolve().parents[2]


def _find_store(tree: object, cid: str) -> object:
    for comp in ht.walk_components(tree):
        if comp["props"].get("id") == cid:
            return comp["props"].get("data")
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=100_000)
    ap.add_argument("--db", help="library file to use (generated there if missing)")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--users", type=int, default=10)
    args = ap.parse_args(argv)
    from organizer.testing import generate_library

    tmp = tempfile.TemporaryDirectory(prefix="organizer-100k-")
    db = Path(args.db) if args.db else Path(tmp.name) / "big.db"
    if not db.exists():
        t0 = time.monotonic()
        generate_library(db, faces=args.faces)
        print(f"generated {args.faces} faces in {time.monotonic() - t0:.0f}s")
    with sqlite3.connect(db) as c:
        faces = c.execute("SELECT count(*) FROM faces").fetchone()[0]
        cluster = c.execute("SELECT id FROM clusters ORDER BY size DESC LIMIT 1").fetchone()[0]
        pool = [r[0] for r in c.execute("SELECT id FROM faces WHERE person_id IS NULL AND is_face = 1 ORDER BY id DESC "
                                        f"LIMIT {args.users * 10 + 50}")]
    print(f"library: {faces} faces; largest cluster {cluster}")
    rows = []
    with ht.DashboardServer(db) as server:
        client = ht.DashClient(server.url)
        router = client.find("app-url", "pathname")
        assign = client.find("unassigned-sel-assign")
        accept = client.find("suggestions-accept")

        def page(path: str, search: str = "") -> dict:
            r = client.call(router, [path, search, ""], [], ["app-url.pathname"], timeout=120)
            assert r.status_code == 200, (path, r.status_code)
            return r.json()

        t0 = time.monotonic()
        page("/suggestions")
        rows.append(("suggestions page (cold: builds the index)", [time.monotonic() - t0]))
        for label, path, search in (("people page", "/people", ""), ("review groups", "/review", ""),
                                    ("biggest cluster page", "/review", f"?cluster={cluster}"),
                                    ("suggestions page (warm)", "/suggestions", ""),
                                    ("unassigned page", "/unassigned", "")):
            times = []
            for _ in range(args.repeat):
                t0 = time.monotonic()
                page(path, search)
                times.append(time.monotonic() - t0)
            rows.append((label, times))
        times = []
        for k in range(args.repeat):
            current = _find_store(page("/suggestions"), "suggestions-current")
            if not current:
                break
            t0 = time.monotonic()
            r = client.call(accept, [k + 1, 0, 0], [current, []], ["suggestions-accept.n_clicks"], timeout=120)
            times.append(time.monotonic() - t0)
            assert r.status_code == 200
        rows.append(("answer a suggestion (accept + next question)", times))
        times = []
        for k in range(args.repeat):
            t0 = time.monotonic()
            r = client.call(assign, [k + 1, 0, 0, 0], [{"selected": [pool.pop()], "anchor": None}, "Scale test"],
                            ["unassigned-sel-assign.n_clicks"], timeout=120)
            times.append(time.monotonic() - t0)
            assert r.status_code == 200 and "toast-ok" in r.text
        rows.append(("label action (name a face)", times))

        # 10 users at once
        lat: list[float] = []
        errors = []
        lock = threading.Lock()

        def user(u: int) -> None:
            c = ht.DashClient(server.url)
            for k in range(5):
                with lock:
                    fid = pool.pop()
                t0 = time.monotonic()
                r = c.call(assign, [k + 1, 0, 0, 0], [{"selected": [fid], "anchor": None}, f"Scale user {u}"],
                           ["unassigned-sel-assign.n_clicks"], timeout=120)
                with lock:
                    lat.append(time.monotonic() - t0)
                    if r.status_code != 200 or "toast-ok" not in r.text:
                        errors.append(r.text[:200])
        t0 = time.monotonic()
        threads = [threading.Thread(target=user, args=(u,)) for u in range(args.users)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        wall = time.monotonic() - t0
    print(f"{'callback over HTTP at ' + str(faces) + ' faces':<48} {'median':>8} {'p95':>8}")
    for label, times in rows:
        print(f"{label:<48} {ht.percentile(times, 50) * 1000:>6.0f}ms {ht.percentile(times, 95) * 1000:>6.0f}ms")
    print(f"{args.users} users x 5 label actions at once: {len(lat) / wall:.1f} actions/s, "
          f"p50 {ht.percentile(lat, 50) * 1000:.0f} ms, p95 {ht.percentile(lat, 95) * 1000:.0f} ms, errors {len(errors)}")
    tmp.cleanup()
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
