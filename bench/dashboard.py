"""Server time of the dashboard's main callbacks on a big library.

Generates (or reuses, with --db) a synthetic library of --faces faces
(bench/generate_library.py) and a small one of --baseline-faces faces, builds the real
app on each, and times the real request path: an HTTP POST to Dash's
``/_dash-update-component`` through Flask's test client (callback + JSON encoding), for
the router rendering each main page, plus the thumbnail route. Prints the median per
callback at both sizes and the ratio big/small: pages that page properly stay near 1x.

The first call to the suggestions page builds the suggestion index; it is reported on its
own line ("cold"), the table shows warm times.

    python bench/dashboard.py                     # 100k faces vs 1k
    python bench/dashboard.py --faces 30000 --db /tmp/big.db   # reuse a generated file
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from organizer import browse  # noqa: E402
from organizer.db import Library  # noqa: E402
from organizer.testing import generate_library  # noqa: E402

BUDGET_MS = 300.0


class Client:
    """Posts router callbacks the way the browser does."""

    def __init__(self, lib: Library) -> None:
        from dashboard.app import create_app

        self.app = create_app(lib)
        self.http = self.app.server.test_client()
        self.key = next(k for k in self.app.callback_map if k.startswith("..app-page.children"))
        layout = json.dumps(self.app.layout, default=lambda o: o.to_plotly_json())
        self.nav = [n for n in json.loads(json.dumps(self._nav_ids(json.loads(layout))))]

    def _nav_ids(self, node: object) -> list[dict]:
        found: list[dict] = []
        if isinstance(node, dict):
            props = node.get("props", {})
            if isinstance(props.get("id"), dict) and props["id"].get("type") == "app-nav":
                found.append(props["id"])
            for v in props.values():
                found += self._nav_ids(v)
        elif isinstance(node, list):
            for v in node:
                found += self._nav_ids(v)
        return found

    def page(self, path: str) -> int:
        pathname, _, search = path.partition("?")
        payload = {
            "output": self.key,
            "outputs": [{"id": "app-page", "property": "children"},
                        [{"id": n, "property": "className"} for n in self.nav]],
            "inputs": [{"id": "app-url", "property": "pathname", "value": pathname},
                       {"id": "app-url", "property": "search", "value": f"?{search}" if search else ""},
                       {"id": "app-refresh", "property": "data", "value": ""}],
            "changedPropIds": ["app-url.pathname"],
            "state": [],
        }
        r = self.http.post("/_dash-update-component", json=payload)
        if r.status_code != 200 or b"Cannot show this page" in r.data:
            raise RuntimeError(f"{path}: HTTP {r.status_code} {r.data[:300]!r}")
        return len(r.data)

    def thumb(self, face_id: int) -> int:
        r = self.http.get(f"/media/thumb/{face_id}.jpg")
        if r.status_code != 200:
            raise RuntimeError(f"thumb {face_id}: HTTP {r.status_code}")
        return len(r.data)


def timed(fn, repeat: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    fn()  # warm: imports, SQLite page cache
    times, size = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        size = fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), size


def measure(lib: Library, repeat: int) -> tuple[dict[str, tuple[float, int]], float]:
    client = Client(lib)
    cluster = browse.list_clusters(lib, limit=1)[0].id
    person = browse.list_people(lib)[0].id
    face = browse.person_faces(lib, person, limit=1)[0]
    t = time.perf_counter()
    client.page("/suggestions")
    cold = (time.perf_counter() - t) * 1000
    cases = {
        "people page": lambda: client.page("/people"),
        "review groups page": lambda: client.page("/review"),
        "one group (largest)": lambda: client.page(f"/review?cluster={cluster}"),
        "person page (most faces)": lambda: client.page(f"/person?id={person}"),
        "next suggestion": lambda: client.page("/suggestions"),
        "unassigned faces": lambda: client.page("/unassigned"),
        "photo view": lambda: client.page(f"/photo?id={face.photo_id}&face={face.id}"),
        "library status": lambda: client.page("/status"),
        "thumbnail route": lambda: client.thumb(face.id),
    }
    return {name: timed(fn, repeat) for name, fn in cases.items()}, cold


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=int, default=100_000)
    ap.add_argument("--baseline-faces", type=int, default=1_000)
    ap.add_argument("--db", help="generated library to reuse (created there if missing)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        big_path = Path(args.db) if args.db else Path(tmp) / "big.db"
        if not big_path.exists():
            print(f"generating {args.faces} faces into {big_path} ...", flush=True)
            g = generate_library(big_path, args.faces)
            print(f"  {g.faces} faces, {g.photos} photos, {g.people} people, {g.clusters} groups ({g.seconds:.0f}s)")
        small = generate_library(Path(tmp) / "small.db", args.baseline_faces)
        big_lib = Library.open(f"sqlite:///{big_path}")
        small_lib = Library.open(small.url)
        faces = browse.count_unassigned(big_lib)
        print(f"big library: {big_path} ({faces} unassigned faces); baseline: {args.baseline_faces} faces", flush=True)
        small_t, small_cold = measure(small_lib, args.repeat)
        big_t, big_cold = measure(big_lib, args.repeat)

    label = f"{args.faces // 1000}k" if args.faces >= 1000 else str(args.faces)
    print(f"\n{'callback (server time, median)':32s} {args.baseline_faces:>8d} {label:>8s} {'ratio':>7s} {'response':>9s}")
    for name, (ms, size) in big_t.items():
        base = small_t[name][0]
        flag = "" if ms <= BUDGET_MS else f"  over {BUDGET_MS:.0f} ms"
        print(f"{name:32s} {base:7.1f}ms {ms:7.1f}ms {ms / base:6.1f}x {size / 1024:7.1f}kB{flag}")
    print(f"{'suggestions, first call (cold)':32s} {small_cold:7.0f}ms {big_cold:7.0f}ms {big_cold / small_cold:6.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
