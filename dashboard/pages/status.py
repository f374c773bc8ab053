"""Library status: what the scans found (photos, faces, people), every file that could
not be read with the reason, the recent changes, and re-grouping the unnamed faces.

"Group unnamed faces again" runs the clustering as a job of the app's
:class:`~organizer.jobs.JobRunner`: the page polls its progress, a second start while one
runs is refused, and the end is a toast (then the page shows the new counts)."""
from __future__ import annotations

from typing import TypeAlias

from dash import Dash, Input, NoUpdate, Output, State, dcc, html, no_update
from flask import current_app, has_app_context

from organizer import jobs, labelling
from organizer.clustering import ClusterReport
from organizer.db import Library
from organizer.errors import OrganizerError
from organizer.scanner import failed_photos, library_stats

from .. import components as ui

PATH = "/status"
TITLE = "Library status"
NAV = "bottom"
FAILURES_SHOWN = 500
POLL_MS = 500
REGROUP = jobs.JobKind("regroup", "regrouping", "the faces are being grouped already: wait for it to finish", keep=1)
#: the start callback's outputs: the job id, the tick's disabled, the progress, the
#: button's disabled and the toast
Started: TypeAlias = tuple[str | NoUpdate, bool | NoUpdate, html.Div | NoUpdate | None, bool | NoUpdate,
                           html.Div | NoUpdate | None]
#: the poll's outputs: the progress, the tick's disabled, then :data:`ui.ActionResult`
Polled: TypeAlias = tuple[html.Div | None, bool, html.Div | NoUpdate | None, str | NoUpdate]


def start_regroup(lib: Library, runner: jobs.JobRunner) -> jobs.Job[ClusterReport]:
    """Cluster the unnamed faces again (after a scan added photos), in the background.
    Raises :class:`~organizer.jobs.JobRunning` while a regrouping runs."""
    return runner.start(REGROUP, jobs.cluster_job(lib), label="group unnamed faces",
                        total=len(jobs.CLUSTER_STAGES))


def regroup_feedback(job: jobs.Job[ClusterReport]) -> ui.Feedback:
    """What the user is told when a regrouping has ended."""
    report = job.result
    if job.state != "done" or report is None:
        return ui.Feedback(job.message or "the regrouping did not finish", ok=False)
    return ui.Feedback(f"Grouped {report.faces} unnamed faces into {report.clusters} groups "
                       f"({report.noise} fit no group; {report.suggested} with a suggestion).",
                       link=("Review groups", "/review"))


def regroup(lib: Library, runner: jobs.JobRunner | None = None) -> ui.Feedback:
    """Cluster the unnamed faces again and wait for the end (the button, in one call)."""
    runner = runner or jobs.JobRunner()
    try:
        job = start_regroup(lib, runner)
    except OrganizerError as exc:
        return ui.Feedback(str(exc), ok=False)
    return regroup_feedback(runner.wait(job.id))


def regroup_progress(job: jobs.Job | None) -> html.Div | None:
    """The progress of a running regrouping (None when there is none)."""
    if job is None or not job.running:
        return None
    stage = job.what if job.what and job.what != "starting" else "starting"
    return html.Div([
        html.Progress(value=str(job.done), max=str(max(job.total, 1)), id="status-regroup-bar",
                      style={"width": "12em"}),
        html.Span(f" Grouping the unnamed faces: step {min(job.done + 1, job.total)} of {job.total}, {stage}",
                  className="muted"),
    ], id="status-regroup-running")


def _app_runner() -> jobs.JobRunner | None:
    """The app's runner, when rendering inside a request of the app (the router does):
    a page opened while a regrouping runs shows it."""
    if not has_app_context():
        return None
    return jobs.shared_runner(current_app.extensions)


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
        failed: html.Div | html.P = html.Div([
            html.Table([html.Thead(html.Tr([html.Th("file"), html.Th("why it could not be read")])),
                        html.Tbody(rows)], className="table", id="status-failures"), more])
    else:
        failed = html.P("Every photo could be read.", className="muted")
    ops = labelling.history(lib, limit=15)
    history = html.Ul([html.Li([html.Span(op.description, className="undone" if op.undone else ""),
                                html.Span(op.created_at.strftime("%d %b %H:%M") + (" · undone" if op.undone else ""),
                                          className="muted")]) for op in ops], className="history") \
        if ops else html.P("No changes yet.", className="muted")
    runner = _app_runner()
    running = runner.running(REGROUP) if runner is not None else None
    regroup_tools = html.Div([
        html.Div(regroup_progress(running), id="status-regroup-status", role="status"),
        html.Button("Group unnamed faces again", id="status-regroup", n_clicks=0, className="btn btn-light",
                    disabled=running is not None, title="Run the clustering again, e.g. after scanning new photos"),
        dcc.Store(id="status-regroup-job", data=running.id if running else None),
        dcc.Interval(id="status-regroup-tick", interval=POLL_MS, disabled=running is None),
    ], className="tools-row")
    return html.Div([
        ui.page_header("Library status", f"{st.root or 'No photo folder scanned yet'} · last scan {last}",
                       regroup_tools),
        tiles,
        html.Section([html.H2("Files that could not be read"), failed], className="card"),
        html.Section([html.H2("Recent changes"), history], className="card"),
    ], className="stack")


def register(app: Dash, lib: Library) -> None:
    runner = jobs.shared_runner(app.server.extensions)

    @app.callback(Output("status-regroup-job", "data"), Output("status-regroup-tick", "disabled"),
                  Output("status-regroup-status", "children"), Output("status-regroup", "disabled"),
                  Output(ui.ALERT, "children", allow_duplicate=True),
                  Input("status-regroup", "n_clicks"), prevent_initial_call=True)
    def _regroup(n: int | None) -> Started:
        if not n:
            return no_update, no_update, no_update, no_update, no_update
        try:
            job = start_regroup(lib, runner)
        except OrganizerError as exc:   # one is running already (another tab, a double click)
            return no_update, no_update, no_update, no_update, ui.toast(ui.Feedback(str(exc), ok=False))
        return job.id, False, regroup_progress(job), True, no_update

    @app.callback(Output("status-regroup-status", "children", allow_duplicate=True),
                  Output("status-regroup-tick", "disabled", allow_duplicate=True),
                  *ui.action_outputs(), Input("status-regroup-tick", "n_intervals"),
                  State("status-regroup-job", "data"), prevent_initial_call=True)
    def _poll(_n: int | None, job_id: str | None) -> Polled:
        job = runner.get(job_id)
        if job is None or job.kind.key != REGROUP.key:
            return None, True, no_update, no_update
        if job.running:
            return regroup_progress(job), False, no_update, no_update
        # the toast, and a refresh: the page is drawn again with the new counts
        return (None, True, *ui.respond(regroup_feedback(job)))
