"""Library status: what the scans found (photos, faces, people), every file that could
not be read with the reason, the recent changes, and re-grouping the unnamed faces."""
from __future__ import annotations

from dash import Input, html, no_update

from organizer import clustering, labelling
from organizer.db import Library
from organizer.scanner import failed_photos, library_stats

from .. import components as ui

PATH = "/status"
TITLE = "Library status"
NAV = "bottom"
FAILURES_SHOWN = 500


def regroup(lib: Library) -> ui.Feedback:
    """Cluster the unnamed faces again (after a scan added photos)."""
    def run() -> ui.Feedback:
        report = clustering.cluster_faces(lib)
        return ui.Feedback(f"Grouped {report.faces} unnamed faces into {report.clusters} groups "
                           f"({report.noise} fit no group; {report.suggested} with a suggestion).",
                           link=("Review groups", "/review"))
    return ui.attempt(run)


def layout(lib: Library, **_query: str) -> html.Div:
    st = library_stats(lib)
    failures = failed_photos(lib, limit=FAILURES_SHOWN)
    tiles = html.Div([
        ui.stat_tile("photos", st.photos, f"{st.photos_ok} read · {st.photos_missing} missing"),
        ui.stat_tile("faces", st.faces, f"{st.faces_named} named · {st.faces_confirmed} by you"),
        ui.stat_tile("people", st.people),
        ui.stat_tile("groups to review", st.clusters),
        ui.stat_tile("could not be read", st.photos_failed),
    ], className="stats")
    last = st.last_scan.strftime("%d %B %Y, %H:%M") if st.last_scan else "never"
    if failures:
        rows = [html.Tr([html.Td(path, className="mono"), html.Td(reason)]) for path, reason in failures]
        more = (html.P(f"Showing {len(failures)} of {st.photos_failed}; `organizer stats --failed` lists all.",
                       className="muted") if st.photos_failed > len(failures) else None)
        failed: object = html.Div([
            html.Table([html.Thead(html.Tr([html.Th("file"), html.Th("why it could not be read")])),
                        html.Tbody(rows)], className="table", id="status-failures"), more])
    else:
        failed = html.P("Every photo could be read.", className="muted")
    ops = labelling.history(lib, limit=15)
    history = html.Ul([html.Li([html.Span(op.description, className="undone" if op.undone else ""),
                                html.Span(op.created_at.strftime("%d %b %H:%M") + (" · undone" if op.undone else ""),
                                          className="muted")]) for op in ops], className="history") \
        if ops else html.P("No changes yet.", className="muted")
    return html.Div([
        ui.page_header("Library status", f"{st.root or 'No photo folder scanned yet'} · last scan {last}",
                       html.Button("Group unnamed faces again", id="status-regroup", n_clicks=0,
                                   className="btn btn-light",
                                   title="Run the clustering again, e.g. after scanning new photos")),
        tiles,
        html.Section([html.H2("Files that could not be read"), failed], className="card"),
        html.Section([html.H2("Recent changes"), history], className="card"),
    ], className="stack")


def register(app, lib: Library) -> None:  # type: ignore[no-untyped-def]
    @app.callback(*ui.action_outputs(), Input("status-regroup", "n_clicks"), prevent_initial_call=True)
    def _regroup(n):  # type: ignore[no-untyped-def]
        if not n:
            return no_update, no_update
        return ui.respond(regroup(lib))
