"""Resemblance: who does the kid look like (scores with intervals and side-by-side
evidence), and a look-alike search for an uploaded photo.

All the work is in ``organizer.resemblance``; this page only picks people, calls it and
draws the result.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html
from dash.development.base_component import Component

from organizer import browse, resemblance
from organizer.db import Library
from organizer.errors import InvalidRequest, OrganizerError

from .. import components as ui

PATH = "/resemblance"
TITLE = "Resemblance"
#: largest upload accepted, checked on the server so an oversized file gets a clear message
MAX_UPLOAD_BYTES = resemblance.MAX_UPLOAD_BYTES


def _alert(message: str) -> html.Div:
    return html.Div([html.Span("!", className="toast-icon"), html.Span(message, className="toast-text")],
                    className="toast toast-error resemblance-alert", role="alert")


def _people_options(lib: Library) -> list[dict[str, str | int]]:
    return [{"label": f"{p.name} ({ui.faces_text(p.face_count)})", "value": p.id}
            for p in browse.list_people(lib, include_hidden=True)]


def score_figure(result: resemblance.ResemblanceResult) -> go.Figure:
    """Bar chart of the scores with their 95 % intervals as error bars."""
    cands = result.candidates
    fig = go.Figure(go.Bar(
        x=[c.name for c in cands], y=[c.score for c in cands],
        error_y=dict(type="data", symmetric=False, array=[c.high - c.score for c in cands],
                     arrayminus=[c.score - c.low for c in cands]),
        text=[f"{c.score:.0f}" for c in cands], textposition="outside",
        hovertext=[f"score {c.score:.0f} (95% {c.low:.0f} to {c.high:.0f}); more alike than "
                   f"{c.percentile:.0f}% of unrelated pairs; first in {c.p_best * 100:.0f}% of resamples"
                   for c in cands], hoverinfo="text",
    ))
    fig.add_hline(y=0, line_dash="dot", annotation_text="unrelated people", annotation_position="bottom right")
    fig.add_hline(y=100, line_dash="dot", annotation_text="same person", annotation_position="top right")
    fig.update_layout(margin=dict(l=40, r=20, t=30, b=40), height=360, yaxis_title="resemblance score",
                      showlegend=False, template="plotly_white")
    return fig


def _evidence_row(result: resemblance.ResemblanceResult, c: resemblance.CandidateScore) -> html.Section:
    pairs: list[html.Figure] = []
    for e in c.evidence:
        data: dict[str, Any] = {"data-child-face": e.child_face_id, "data-candidate-face": e.candidate_face_id}
        ages = (f" · ages {e.child_age:g} / {e.candidate_age:g}"
                if e.child_age is not None and e.candidate_age is not None else "")
        pairs.append(html.Figure([
            html.Div([
                dcc.Link(html.Img(src=ui.thumb_url(e.child_face_id), alt=result.child_name),
                         href=ui.href("/photo", id=e.child_photo_id, face=e.child_face_id)),
                dcc.Link(html.Img(src=ui.thumb_url(e.candidate_face_id), alt=c.name),
                         href=ui.href("/photo", id=e.candidate_photo_id, face=e.candidate_face_id)),
            ], className="pair-images"),
            html.Figcaption(f"distance {e.distance:.3f}{ages}"),
        ], className="evidence-pair", **data))
    facts = (f"#{c.rank} {c.name}: score {c.score:.0f} (95% {c.low:.0f} to {c.high:.0f}), more alike than "
             f"{c.percentile:.0f}% of unrelated pairs, first in {c.p_best * 100:.0f}% of resamples; "
             f"{c.child_faces} × {c.candidate_faces} faces{' at matching ages' if c.age_matched else ''}")
    children: list[Component] = [html.H3(facts)]
    if c.note:
        children.append(html.P(c.note, className="muted"))
    children.append(html.Div(pairs, className="evidence-pairs") if pairs
                    else html.P("no pairs to show", className="muted"))
    return html.Section(children, className="evidence-candidate", id=f"resemblance-evidence-{c.person_id}")


def render_result(result: resemblance.ResemblanceResult) -> html.Div:
    cal = result.calibration
    return html.Div([
        html.P(result.verdict, className="resemblance-verdict", id="resemblance-verdict"),
        dcc.Graph(id="resemblance-chart", figure=score_figure(result), config={"displayModeBar": False}),
        html.P(f"0 = as alike as two unrelated people in this library, 100 = as alike as two sets of photos of "
               f"the same person; bars show 95% intervals ({result.rounds} resamples of the photos). "
               f"Calibration: {cal.source}.", className="muted"),
        *[html.P(n, className="muted") for n in result.notes],
        html.H2(f"Evidence: {result.child_name}'s faces beside the most similar faces of each candidate"),
        *[_evidence_row(result, c) for c in result.candidates],
    ], id="resemblance-result")


def compare(lib: Library, child: int | str | None, candidates: list[int | str] | int | str | None,
            age_matched: bool) -> html.Div:
    """What the Compare button shows: the result, or a clear message (nothing is changed)."""
    try:
        if child in (None, ""):
            raise InvalidRequest("pick the child first")
        if not candidates:
            raise InvalidRequest("pick at least one candidate to compare with")
        chosen = candidates if isinstance(candidates, list) else [candidates]
        res = resemblance.resemble(lib, child, chosen, age_matched=age_matched)
    except OrganizerError as exc:
        return _alert(str(exc))
    return render_result(res)


def _picked(lib: Library, text: str) -> int | str:
    """A person named in the page's address (``?child=``, ``?to=``, an id or a name) as the
    pickers hold them: their id. Text nobody answers to stays as it is, so Compare says who
    was not found."""
    try:
        return browse.find_person(lib, text).id
    except OrganizerError:
        return text.strip()


def render_lookalike(result: resemblance.LookalikeResult) -> html.Div:
    rows: list[html.Div] = []
    for f in result.faces:
        if f.nobody_close:
            near = (f" Nearest: {f.matches[0].name} at distance {f.matches[0].distance:.2f} "
                    f"(same person is below {result.threshold:g}).") if f.matches else ""
            rows.append(html.Div([html.H3(f"Face {f.index}: unknown — nobody close"), html.P(near, className="muted")],
                                 className="lookalike-face"))
            continue
        tiles = [html.Figure([html.Img(src=ui.thumb_url(m.face_id), alt=m.name),
                              html.Figcaption(f"{m.name} · {m.distance:.2f}")], className="lookalike-match")
                 for m in f.matches]
        rows.append(html.Div([html.H3(f"Face {f.index}: looks most like {f.matches[0].name}"),
                              html.Div(tiles, className="evidence-pairs")], className="lookalike-face"))
    return html.Div([html.P(f"{result.source}: {len(result.faces)} face(s), compared with {result.people} people.",
                            className="muted"), *rows], id="resemblance-lookalike-result")


def lookalike_upload(lib: Library, contents: str | None, filename: str | None) -> html.Div | None:
    """Decode a dcc.Upload value and run the look-alike search; any problem becomes an alert."""
    if not contents:
        return None
    name = filename or "upload"
    try:
        _header, _, payload = contents.partition(",")
        if len(payload) * 3 // 4 > MAX_UPLOAD_BYTES + 3:
            raise InvalidRequest(f"{name} is larger than {MAX_UPLOAD_BYTES // 2**20} MB; choose a smaller photo")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest(f"{name} could not be read as an uploaded file") from None
        result = resemblance.lookalike_bytes(lib, data, name=name)
    except OrganizerError as exc:
        return _alert(str(exc))
    return render_lookalike(result)


def layout(lib: Library, child: str = "", to: str = "", age: str = "", **_query: str) -> html.Div:
    options = _people_options(lib)
    chosen = [_picked(lib, t) for t in to.split(",") if t.strip()] if to else []
    child_value = _picked(lib, child) if child else None
    initial = compare(lib, child_value, chosen, age in ("1", "true", "yes")) if child and chosen else None
    controls = html.Div([
        html.Label("Child", htmlFor="resemblance-child"),
        dcc.Dropdown(id="resemblance-child", options=options, value=child_value, placeholder="Who is the child?"),
        html.Label("Compare with", htmlFor="resemblance-candidates"),
        dcc.Dropdown(id="resemblance-candidates", options=options, value=chosen, multi=True,
                     placeholder="Parents, grandparents, siblings…"),
        dcc.Checklist(id="resemblance-age", options=[{"label": " Compare at the same age (needs birth dates)",
                                                      "value": "age"}],
                      value=["age"] if age in ("1", "true", "yes") else [], className="switch"),
        html.Button("Compare", id="resemblance-go", n_clicks=0, className="btn btn-primary"),
    ], className="resemblance-controls")
    if not options:
        body: Component = ui.empty_state("No people yet", "Name some people first, then compare them here.",
                                         ("Review groups", "/review"))
    else:
        body = dcc.Loading(html.Div(initial, id="resemblance-output"))
    upload = html.Section([
        html.H2("Look-alike search"),
        html.P("Upload a photo: for each face in it, the people in your library who look most like it.",
               className="muted"),
        dcc.Upload(id="resemblance-upload", children=html.Div(
            ["Drop a photo here or ", html.A("choose a file"), f" (up to {MAX_UPLOAD_BYTES // 2**20} MB)"]),
            multiple=False, max_size=-1, className="upload-area", accept="image/*"),
        dcc.Loading(html.Div(id="resemblance-lookalike")),
    ], className="resemblance-lookalike")
    return html.Div([
        ui.page_header("Who does the kid look like?",
                       "Scores from your own photos, with 95% intervals and the most similar face pairs."),
        controls, body, upload,
    ])


def register(app: Dash, lib: Library) -> None:
    @app.callback(Output("resemblance-output", "children"), Input("resemblance-go", "n_clicks"),
                  State("resemblance-child", "value"), State("resemblance-candidates", "value"),
                  State("resemblance-age", "value"), prevent_initial_call=True)
    def _compare(_n: int | None, child: int | str | None, candidates: list[int | str] | None,
                 age: list[str] | None) -> html.Div:
        return compare(lib, child, candidates, "age" in (age or []))

    @app.callback(Output("resemblance-lookalike", "children"), Input("resemblance-upload", "contents"),
                  State("resemblance-upload", "filename"), prevent_initial_call=True)
    def _upload(contents: str | None, filename: str | None) -> html.Div | None:
        return lookalike_upload(lib, contents, filename)
