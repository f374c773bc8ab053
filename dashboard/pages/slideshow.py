"""Slideshow: pick people and options, see the first photos in the order they will play,
export (html, mp4 or folder) with a progress bar, and download the result.

The export runs as a job of the app's :class:`~organizer.jobs.JobRunner` (one export at a
time, cancellable) and writes into a private temporary folder; the download route serves
only a file that an export of this app produced, found by a random job id — never by a
path from the request.

That folder holds video of people, so it does not outlive the dashboard: it is removed
when the dashboard exits (normally, Ctrl-C or SIGTERM), and a folder left by a dashboard
that was killed outright is removed by the next one. Each download is recorded in the
library, so ``organizer forget`` deletes the downloads of the person it forgets.
"""
from __future__ import annotations

import base64
import re
import shutil
import signal
import sys
import threading
import uuid
from pathlib import Path
from typing import Any, TypeAlias

from dash import Dash, Input, NoUpdate, Output, State, dcc, html, no_update
from dash.development.base_component import Component
from flask import Response, abort, send_file

from organizer import browse, jobs, slideshow
from organizer.db import Library
from organizer.errors import InvalidRequest, OrganizerError

from .. import components as ui

PATH = "/slideshow"
TITLE = "Slideshow"
PREVIEW_COUNT = 8
KEEP_EXPORTS = 3          # older finished exports are deleted from the temp folder
JOBS_PREFIX = "organizer-slideshow-"
EXTENSION_KEY = "organizer_slideshow"
SIZES = {"html": ["1920x1080", "1280x720", "3840x2160"], "mp4": ["1280x720", "1920x1080", "1080x1920", "854x480"]}
EXPORT = jobs.JobKind("slideshow-export", "export", "an export is already running: wait for it to finish",
                      keep=KEEP_EXPORTS)


# --- export jobs (the runner lives in the app, not the module) ----------------------------------

class ExportJob:
    """What the page shows of one export: a live view of its job in the runner."""

    def __init__(self, job: jobs.Job[slideshow.Download]) -> None:
        self.job = job

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def state(self) -> str:       # running | done | failed | cancelled
        return self.job.state

    @property
    def message(self) -> str:
        return self.job.message

    @property
    def done(self) -> int:
        return self.job.done

    @property
    def total(self) -> int:
        return self.job.total

    @property
    def label(self) -> str:
        return self.job.label

    @property
    def download(self) -> slideshow.Download | None:
        return self.job.result if self.job.state == "done" else None

    @property
    def file(self) -> Path | None:
        """What the download route serves (None until the export is done)."""
        return self.download.file if self.download else None

    @property
    def download_name(self) -> str:
        return self.download.name if self.download else ""

    @property
    def fmt(self) -> str:
        return self.download.fmt if self.download else ""


class ExportJobs:
    """This app's exports, run by ``runner``: one at a time, with progress, cancellable,
    their files kept for download in a private folder (the last :data:`KEEP_EXPORTS`)."""

    def __init__(self, lib: Library, folder: Path | None = None, runner: jobs.JobRunner | None = None) -> None:
        self.lib = lib
        self._folder = folder
        self.runner = runner or jobs.JobRunner()

    @property
    def folder(self) -> Path:
        if self._folder is None:
            # made on first use; removes the folders of dashboards that were killed
            self._folder = jobs.private_folder(JOBS_PREFIX)
        return self._folder

    def get(self, job_id: str | None) -> ExportJob | None:
        job = self.runner.get(job_id)
        return ExportJob(job) if job is not None and job.kind.key == EXPORT.key else None

    def cancel(self, job_id: str | None) -> bool:
        return self.get(job_id) is not None and self.runner.cancel(job_id)

    def start(self, options: dict) -> ExportJob:
        """Validate and select now (errors are raised to the caller at once), then render
        in a background thread."""
        self.runner.check_free(EXPORT)
        selection = _select(self.lib, options)
        fmt = options.get("fmt") or "html"
        seconds = float(options.get("seconds") or slideshow.DEFAULT_SECONDS)
        size = options.get("size") or None
        place = self.folder / uuid.uuid4().hex

        def export(progress: jobs.Progress) -> slideshow.Download:
            return slideshow.export_download(selection, place, fmt, size=size, seconds=seconds, progress=progress)

        place.mkdir(parents=True)
        try:
            job = self.runner.start(EXPORT, export, label=", ".join(p.name for p in selection.people),
                                    total=len(selection), describe=slideshow.Download.summary,
                                    discard=lambda: shutil.rmtree(place, ignore_errors=True))
        except OrganizerError:
            shutil.rmtree(place, ignore_errors=True)
            raise
        return ExportJob(job)


def _select(lib: Library, options: dict) -> slideshow.Selection:
    names = [n for n in (options.get("people") or []) if n]
    if not names:
        raise InvalidRequest("pick at least one person")
    min_face = options.get("min_face") or 0
    try:
        min_face = int(min_face)
    except (TypeError, ValueError):
        raise InvalidRequest("the minimum face size must be a whole number of pixels") from None
    return slideshow.select_photos(lib, names, match=options.get("match") or "all",
                                   date_from=(options.get("date_from") or "").strip() or None,
                                   date_to=(options.get("date_to") or "").strip() or None,
                                   min_face=min_face, include_auto=bool(options.get("include_auto")))


def preview(lib: Library, options: dict) -> html.Div:
    """The first photos in slideshow order, framed as the video frames them."""
    try:
        selection = _select(lib, options)
        fmt = options.get("fmt") or "html"
        size = slideshow.parse_size(options.get("size") or None, "mp4" if fmt == "folder" else fmt)
        w, h = size
        thumb = (240, max(16, round(240 * h / w)))
        shots = slideshow.preview_images(selection, PREVIEW_COUNT, thumb)
    except OrganizerError as exc:
        return html.Div(str(exc), className="muted", id="slideshow-message")
    undated = len(selection.undated)
    summary = [f"{len(selection)} photo{'s' if len(selection) != 1 else ''}: {selection.description}."]
    if undated:
        summary.append(f" {undated} without a date play at the end.")
    if selection.undated_excluded:
        summary.append(f" {selection.undated_excluded} undated photo(s) left out by the date range.")
    if selection.unavailable:
        summary.append(f" {len(selection.unavailable)} missing or unreadable photo(s) left out.")
    tiles = [html.Figure([
        html.Img(src="data:image/jpeg;base64," + base64.b64encode(jpeg).decode(), alt=slide.caption(),
                 className="slideshow-thumb", style={"width": "100%", "borderRadius": "6px", "display": "block"}),
        html.Figcaption(slide.caption(), className="muted", style={"fontSize": "0.85em"}),
    ], style={"margin": 0}) for slide, jpeg in shots]
    return html.Div([
        html.P("".join(summary), id="slideshow-summary"),
        html.Div(tiles, id="slideshow-thumbs", style={
            "display": "grid", "gridTemplateColumns": "repeat(auto-fill, minmax(200px, 1fr))", "gap": "12px"}),
    ])


# --- page -------------------------------------------------------------------------------------

def _field(label: str, control: Component) -> html.Label:
    return html.Label([html.Span(label, className="field-label"), control], className="field")


def layout(lib: Library, person: str = "", **_query: str) -> html.Div:
    people = browse.list_people(lib)
    options = [{"label": p.name, "value": p.name} for p in sorted(people, key=lambda p: p.name.lower())]
    chosen = [person] if person and any(p.name == person for p in people) else []
    controls = html.Div([
        _field("People", dcc.Dropdown(id="slideshow-people", options=options, value=chosen, multi=True,
                                      placeholder="Who is the slideshow about?")),
        dcc.RadioItems(id="slideshow-match", value="all", inline=True, options=[
            {"label": " all of them together ", "value": "all"},
            {"label": " any of them", "value": "any"}]),
        html.Div([
            _field("From", dcc.Input(id="slideshow-from", type="text", placeholder="YYYY[-MM[-DD]]",
                                     className="input input-date", debounce=True)),
            _field("To", dcc.Input(id="slideshow-to", type="text", placeholder="YYYY[-MM[-DD]]",
                                   className="input input-date", debounce=True)),
            _field("Smallest face (px)", dcc.Input(id="slideshow-min-face", type="number", min=0, step=1, value=0,
                                                   className="input input-sm", debounce=True)),
        ], className="field-row"),
        dcc.Checklist(id="slideshow-auto", value=[], options=[
            {"label": " also faces recognised automatically with high confidence (default: only faces you confirmed)",
             "value": "auto"}]),
        html.Div([
            _field("Format", dcc.RadioItems(id="slideshow-format", value="html", inline=True, options=[
                {"label": " web page ", "value": "html"}, {"label": " video (mp4) ", "value": "mp4"},
                {"label": " folder of originals", "value": "folder"}])),
            _field("Size", dcc.Dropdown(id="slideshow-size", options=SIZES["html"], value="1920x1080",
                                        clearable=False, style={"minWidth": "9em"})),
            _field("Seconds per photo", dcc.Input(id="slideshow-seconds", type="number", min=0.5, max=60, step=0.5,
                                                  value=slideshow.DEFAULT_SECONDS, className="input input-sm",
                                                  debounce=True)),
        ], className="field-row"),
        html.Div([
            html.Button("Export", id="slideshow-export", n_clicks=0, className="btn btn-primary"),
            html.Div(id="slideshow-status", role="status"),   # read out as it changes (aria-live polite)
        ], className="tools-row"),
        dcc.Store(id="slideshow-job", data=None),
        dcc.Interval(id="slideshow-tick", interval=700, disabled=True),
    ], className="card stack")
    return html.Div([
        ui.page_header("Slideshow", "The photos of one person, or several, in date order: a web page, a video, "
                                    "or a folder of the originals."),
        controls,
        html.Section([html.H2("First photos, in order"), dcc.Loading(html.Div(id="slideshow-preview"))],
                     className="card"),
    ], className="stack")


#: the form's values as Dash passes them, in the order of ``inputs`` in :func:`register`:
#: people, match, from, to, smallest face, auto, format, size, seconds (a cleared field
#: is None; the number inputs give an int or a float)
FormValues: TypeAlias = tuple[list[str] | None, str | None, str | None, str | None, float | None,
                              list[str] | None, str | None, str | None, float | None]
#: the export callback's outputs: the job id, the tick's disabled and the status area
Started: TypeAlias = tuple[str | NoUpdate | None, bool | NoUpdate, html.Div | str | NoUpdate]


def _options(people: list[str] | None, match: str | None, date_from: str | None, date_to: str | None,
             min_face: float | None, auto: list[str] | None, fmt: str | None, size: str | None,
             seconds: float | None) -> dict[str, Any]:
    return {"people": people or [], "match": match, "date_from": date_from, "date_to": date_to,
            "min_face": min_face, "include_auto": "auto" in (auto or []), "fmt": fmt,
            "size": size if fmt != "folder" else None, "seconds": seconds}


def _status(job: ExportJob | None) -> tuple[html.Div | str, bool]:
    """The status area and whether polling can stop."""
    if job is None:
        return "", True
    if job.state == "running":
        pct = round(100 * job.done / job.total) if job.total else 0
        return html.Div([
            html.Progress(value=str(job.done), max=str(max(job.total, 1)), id="slideshow-progress",
                          style={"width": "16em"}),
            html.Span(f" {job.done} / {job.total} photos ({pct}%) ", className="muted"),
            html.Button("Cancel", id="slideshow-cancel", n_clicks=0, className="btn btn-light"),
        ]), False
    if job.state == "failed":
        return html.Div(job.message, className="toast-error", id="slideshow-error"), True
    if job.state == "cancelled":
        return html.Div(job.message, className="muted", id="slideshow-cancelled"), True
    return html.Div([
        html.Span(job.message + " "),
        html.A("Download", href=f"{PATH}/download/{job.id}", id="slideshow-download", className="btn btn-light",
               download=job.download_name),
    ]), True


def _exit_on_sigterm() -> None:
    """SIGTERM (``kill``, a service stop) ends Python without running atexit, which would
    leave the export folder behind: turn it into a normal exit. Only where nobody else
    handles the signal, and only from the main thread (where handlers can be set)."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def register(app: Dash, lib: Library) -> None:
    exports = ExportJobs(lib, runner=jobs.shared_runner(app.server.extensions))
    _exit_on_sigterm()
    app.server.extensions[EXTENSION_KEY] = exports
    inputs = [State("slideshow-people", "value"), State("slideshow-match", "value"), State("slideshow-from", "value"),
              State("slideshow-to", "value"), State("slideshow-min-face", "value"), State("slideshow-auto", "value"),
              State("slideshow-format", "value"), State("slideshow-size", "value"), State("slideshow-seconds", "value")]

    # <path:...> so that anything under the prefix (encoded slashes included) is answered
    # here with a 404, never by the app's catch-all page
    @app.server.route(f"{PATH}/download/<path:job_id>")
    def _download(job_id: str) -> Response:
        job = exports.get(job_id) if re.fullmatch(r"[0-9a-f]{32}", job_id) else None
        if job is None or job.state != "done" or job.file is None or not job.file.is_file():
            abort(404)
        return send_file(job.file, as_attachment=True, download_name=job.download_name,
                         mimetype="video/mp4" if job.fmt == "mp4" else "application/zip")

    @app.callback(Output("slideshow-size", "options"), Output("slideshow-size", "value"),
                  Output("slideshow-size", "disabled"), Input("slideshow-format", "value"),
                  State("slideshow-size", "value"))
    def _sizes(fmt: str | None, current: str | None) -> tuple[list[str], str | None, bool]:
        if fmt == "folder":
            return [], None, True
        choices = SIZES.get(fmt or "html", SIZES["html"])
        return choices, current if current in choices else choices[0], False

    @app.callback(Output("slideshow-preview", "children"),
                  *[Input(s.component_id, s.component_property) for s in inputs])
    def _preview(*values: *FormValues) -> html.P | html.Div:
        if not values[0]:
            return html.P("Pick a person to see their photos in order.", className="muted")
        return preview(lib, _options(*values))

    @app.callback(Output("slideshow-job", "data"), Output("slideshow-tick", "disabled"),
                  Output("slideshow-status", "children", allow_duplicate=True),
                  Input("slideshow-export", "n_clicks"), *inputs, prevent_initial_call=True)
    def _export(n: int | None, *values: *FormValues) -> Started:
        if not n:
            return no_update, no_update, no_update
        try:
            job = exports.start(_options(*values))
        except OrganizerError as exc:
            return None, True, html.Div(str(exc), className="toast-error", id="slideshow-error")
        return job.id, False, _status(job)[0]

    @app.callback(Output("slideshow-status", "children"), Output("slideshow-tick", "disabled", allow_duplicate=True),
                  Input("slideshow-tick", "n_intervals"), State("slideshow-job", "data"), prevent_initial_call=True)
    def _poll(_n: int | None, job_id: str | None) -> tuple[html.Div | str, bool]:
        status, finished = _status(exports.get(job_id))
        return status, finished

    @app.callback(Output("slideshow-status", "children", allow_duplicate=True),
                  Input("slideshow-cancel", "n_clicks"), State("slideshow-job", "data"), prevent_initial_call=True)
    def _cancel(n: int | None, job_id: str | None) -> html.Div | str | NoUpdate:
        if not n or not exports.cancel(job_id):
            return no_update
        return _status(exports.get(job_id))[0]   # the poll shows the end when the export has stopped
