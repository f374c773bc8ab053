"""One photo with its face boxes and names. Click a box (a link to ``?face=ID``) to fix
who that face is: name it, say it is not that person, or that it is not a face."""
from __future__ import annotations

from dash import Dash, Input, State, dcc, html, no_update
from dash.development.base_component import Component

from organizer import browse
from organizer.db import Library

from .. import components as ui

PATH = "/photo"
TITLE = "Photo"
NAV = False
NAMES = "photo-names"
PAGE = "photo"


def fix_face(lib: Library, action: str, face_id: int, name: str | None = None) -> ui.Feedback:
    """The side panel's buttons: "name" (confirm as ``name``), "remove" (not this person),
    "notface"."""
    if action == "name":
        return ui.selection_action(lib, "assign", [face_id], name)
    if action in ("remove", "notface"):
        return ui.selection_action(lib, action, [face_id])
    return ui.Feedback(f"unknown action {action!r}", ok=False)


def _box(photo: browse.PhotoInfo, face: browse.FaceInfo, selected: bool) -> dcc.Link:
    top, right, bottom, left = face.box
    w, h = photo.width or 1, photo.height or 1
    style = {"left": f"{100 * left / w:.3f}%", "top": f"{100 * top / h:.3f}%",
             "width": f"{100 * (right - left) / w:.3f}%", "height": f"{100 * (bottom - top) / h:.3f}%"}
    named = face.person_name is not None and face.assignment in ("confirmed", "auto")
    label = face.person_name if named else ("Unknown" if face.person_name is None else f"{face.person_name}?")
    cls = "face-box" + (" named" if named else "") + (" selected" if selected else "")
    return dcc.Link(html.Span(label, className="box-label"), href=ui.href(PATH, id=photo.id, face=face.id),
                    className=cls, style=style, id=f"photo-box-{face.id}", title=label)


def _panel(lib: Library, photo: browse.PhotoInfo, faces: list[browse.FaceInfo], face_id: int | None) -> html.Aside:
    chosen = next((f for f in faces if f.id == face_id), None)
    info = [html.Div(photo.path, className="photo-path")]
    if photo.taken_at:
        info.append(html.Div(photo.taken_at.strftime("%d %B %Y, %H:%M"), className="muted"))
    parts: list[Component] = [html.Div(info, className="photo-info")]
    if chosen is None:
        parts.append(html.P("Click a face in the photo to fix who it is." if faces
                            else "No faces were found in this photo.", className="muted"))
    else:
        owned = chosen.person_name is not None and chosen.assignment in ("confirmed", "auto")
        current = chosen.person_name if owned and chosen.person_name is not None else "Nobody yet"
        actions: list[Component] = [html.Button("Not a face", id="photo-notface", n_clicks=0,
                                                className="btn btn-danger btn-sm")]
        if owned:
            actions.insert(0, html.Button(f"Not {chosen.person_name}", id="photo-remove", n_clicks=0,
                                          className="btn btn-light btn-sm"))
        parts.append(html.Div([
            html.Div([ui.avatar(chosen.id, current, size="lg"),
                      html.Div([html.Div("This face is", className="muted"),
                                html.Div(current, className="panel-name")])], className="panel-face"),
            html.Div([
                dcc.Input(id="photo-name-input", type="text", list=NAMES, placeholder="Who is this?",
                          className="input", n_submit=0, autoComplete="off",
                          value=chosen.person_name if chosen.person_name and not owned else ""),
                html.Button("Name", id="photo-name", n_clicks=0, className="btn btn-primary"),
            ], className="name-form"),
            html.Div(actions, className="panel-actions"),
            dcc.Store(id="photo-face", data=chosen.id),
        ], className="panel-card"))
    chips: list[dcc.Link] = []
    for f in faces:
        label = f.person_name if f.person_name and f.assignment in ("confirmed", "auto") else "Unknown"
        chips.append(dcc.Link([html.Img(src=ui.thumb_url(f.id), alt=""), html.Span(label)],
                              href=ui.href(PATH, id=photo.id, face=f.id),
                              className="chip" + (" active" if f.id == face_id else "")))
    if chips:
        parts.append(html.Div([html.H3(f"{len(faces)} face{'s' if len(faces) != 1 else ''} in this photo"),
                               html.Div(chips, className="chips")]))
    return html.Aside(parts, className="photo-panel")


def layout(lib: Library, **query: str) -> html.Div:
    photo_id = ui.int_arg(query, "id")
    if photo_id is None:
        return ui.empty_state("Which photo?", "Open a photo from a face (the ⤢ corner of a face).")
    face_id = ui.int_arg(query, "face")
    photo, faces = browse.photo_faces(lib, photo_id)
    if photo.status == "error":
        stage: Component = ui.empty_state("This photo cannot be shown", photo.error or "it could not be read")
    else:
        # the stage has the photo's aspect ratio, so the boxes (in % of the photo) stay on
        # the faces at any size, and small photos are shown big enough to see the faces
        w, h = photo.width or 4, photo.height or 3
        stage = html.Div([
            html.Img(src=ui.photo_url(photo.id), alt=photo.path, className="photo-img"),
            *[_box(photo, f, f.id == face_id) for f in faces],
        ], className="photo-stage",
            style={"aspectRatio": f"{w} / {h}", "width": f"min(100%, calc(74vh * {w / h:.4f}))"})
    return html.Div([
        ui.names_datalist(NAMES),
        ui.confirm_slot(PAGE),
        html.Div([html.Div(stage, className="photo-main"), _panel(lib, photo, faces, face_id)],
                 className="photo-layout"),
    ])


def register(app: Dash, lib: Library) -> None:
    ui.register_autocomplete(app, lib, NAMES, Input("photo-name-input", "value"))
    ui.register_confirm(app, PAGE, lambda pending: ui.retry_selection(lib, pending))

    @app.callback(*ui.confirm_outputs(PAGE),
                  Input("photo-name", "n_clicks"), Input("photo-name-input", "n_submit"),
                  State("photo-face", "data"), State("photo-name-input", "value"),
                  prevent_initial_call=True)
    def _name(_c: int | None, _s: int | None, face_id: int, name: str | None) -> ui.ConfirmResult:
        # face_id: the photo-face store, which holds the chosen face's id (checked by the library);
        # a second face of a photo for one person asks "Do it anyway?" first
        if not ui.fired():
            return no_update, no_update, no_update, no_update
        return ui.respond_or_ask(PAGE, fix_face(lib, "name", face_id, name),
                                 ui.selection_pending("assign", [face_id], name))

    @app.callback(*ui.action_outputs(), Input("photo-notface", "n_clicks"), State("photo-face", "data"),
                  prevent_initial_call=True)
    def _not_face(_c: int | None, face_id: int) -> ui.ActionResult:
        if not ui.fired():
            return no_update, no_update
        return ui.respond(fix_face(lib, "notface", face_id))

    @app.callback(*ui.action_outputs(), Input("photo-remove", "n_clicks"), State("photo-face", "data"),
                  prevent_initial_call=True)
    def _remove(_c: int | None, face_id: int) -> ui.ActionResult:
        if not ui.fired():
            return no_update, no_update
        return ui.respond(fix_face(lib, "remove", face_id))
