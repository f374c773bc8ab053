"""Shared widgets (face grid, selection bar, person picker, pager, toast) and the small
plumbing every page's actions go through.

How an action reaches the user: a page callback calls one ``organizer.*`` function
inside :func:`attempt`, which turns the result into a :class:`Feedback` (a library error
becomes a red message and nothing changes). :func:`respond` turns that into the two app
outputs: the toast and a new value of the ``app-refresh`` store, which re-renders the
current page from the database, so what the user sees is always what is stored.

Names are always passed to components as plain strings (children), which React renders
as text: nothing here builds HTML from user data.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar
from urllib.parse import urlencode

from dash import ALL, ClientsideFunction, Dash, Input, NoUpdate, Output, State, ctx, dcc, html, no_update
from dash.development.base_component import Component

from organizer import browse, labelling
from organizer.db import Library
from organizer.errors import InvalidRequest, OrganizerError
from organizer.ids import MAX_ID, as_id
from organizer.labelling import SamePhotoConflict
from organizer.queries import faces_text as faces_text  # pages count faces as the library does
from organizer.queries import normalise_name

# ids of the app shell that page callbacks write to (see dashboard/app.py)
ALERT = "app-alert"
REFRESH = "app-refresh"   # a new value re-renders the current page and the undo bar
TICK = "app-tick"         # a new value refreshes only the undo bar
URL = "app-url"

#: one child of a component, as Dash's constructors take it; ``Children`` is one or a list
Child: TypeAlias = Component | str | int | float | None
Children: TypeAlias = Child | Sequence[Child]
#: what an action callback returns for :func:`action_outputs`: the toast, the refresh token
ActionResult: TypeAlias = tuple[html.Div | NoUpdate | None, str | NoUpdate]
#: an action that may ask "Do it anyway?" (:func:`confirm_outputs`): the toast, the refresh
#: token, the page's confirmation box and the request it would retry
ConfirmResult: TypeAlias = tuple[html.Div | NoUpdate | None, str | NoUpdate, html.Div | NoUpdate | None,
                                 dict[str, Any] | NoUpdate | None]
T = TypeVar("T")


# --- feedback -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Feedback:
    """What an action tells the user. ``ok`` False means nothing was changed."""

    message: str
    ok: bool = True
    #: optional (label, href) shown as a link in the toast, e.g. to the person just named
    link: tuple[str, str] | None = None
    #: refused only because it would give a person two faces of one photo: the page asks
    #: "Do it anyway?" and retries with ``force=True`` (:func:`respond_or_ask`)
    needs_force: bool = False


def attempt(action: Callable[[], Feedback | str]) -> Feedback:
    """Run one library call; its error (always a one-line message) becomes the feedback."""
    try:
        result = action()
    except SamePhotoConflict as exc:
        return Feedback(str(exc), ok=False, needs_force=True)
    except OrganizerError as exc:
        return Feedback(str(exc) or exc.__class__.__name__, ok=False)
    return result if isinstance(result, Feedback) else Feedback(result)


def token() -> str:
    return uuid.uuid4().hex


def toast(fb: Feedback | None) -> html.Div | None:
    if fb is None:
        return None
    kind = "ok" if fb.ok else "error"
    children: list[Component] = [html.Span("✓" if fb.ok else "!", className="toast-icon"),
                      html.Span(fb.message, className="toast-text")]
    if fb.link:
        children.append(dcc.Link(fb.link[0], href=fb.link[1], className="toast-link"))
    children.append(html.Button("×", className="toast-close", title="Dismiss", n_clicks=0))
    # a fresh key per message: React mounts a new element, so a dismissed toast never
    # hides the next one
    data: dict[str, Any] = {"data-kind": kind}
    return html.Div(children, className=f"toast toast-{kind}", role="alert" if not fb.ok else "status",
                    key=token(), **data)


def respond(fb: Feedback) -> ActionResult:
    """(toast, refresh token) for an action callback; an error leaves the page as it is."""
    return toast(fb), (token() if fb.ok else no_update)


def action_outputs() -> list[Output]:
    return [Output(ALERT, "children", allow_duplicate=True), Output(REFRESH, "data", allow_duplicate=True)]


# --- "Do it anyway?" ---------------------------------------------------------------------------

def confirm_slot(page: str) -> html.Div:
    """Where a page shows its "Do it anyway?" box, and the store of the request it retries."""
    return html.Div([dcc.Store(id=f"{page}-pending", data=None), html.Div(id=f"{page}-confirm")],
                    className="confirm-slot")


def confirm_box(page: str, message: str) -> html.Div:
    """The one-line refusal (two faces of one photo) with "Do it anyway" and "Cancel"."""
    role: dict[str, Any] = {"role": "alertdialog", "aria-live": "assertive"}
    return html.Div([
        html.Span("!", className="toast-icon"),
        html.Span(message, className="confirm-text"),
        html.Div([
            html.Button("Do it anyway", id=f"{page}-force", n_clicks=0, className="btn btn-danger btn-sm"),
            html.Button("Cancel", id=f"{page}-force-cancel", n_clicks=0, className="btn btn-ghost btn-sm"),
        ], className="confirm-actions"),
    ], className="confirm-box", key=token(), **role)


def confirm_outputs(page: str) -> list[Output]:
    """:func:`action_outputs` plus the page's confirmation box and pending request."""
    return [*action_outputs(), Output(f"{page}-confirm", "children", allow_duplicate=True),
            Output(f"{page}-pending", "data", allow_duplicate=True)]


def respond_or_ask(page: str, fb: Feedback, pending: dict[str, Any]) -> ConfirmResult:
    """:func:`respond`, or, for a same-photo refusal, the "Do it anyway?" box that retries
    ``pending`` with force (nothing changed yet, so the page stays as it is)."""
    if fb.needs_force:
        return no_update, no_update, confirm_box(page, fb.message), pending
    toast_, refresh = respond(fb)
    return toast_, refresh, None, None


def register_confirm(app: Dash, page: str, retry: Callable[[dict[str, Any]], Feedback]) -> None:
    """The page's "Do it anyway" (runs ``retry(pending)``, which forces the request) and
    "Cancel" (closes the box, changes nothing)."""
    @app.callback(*confirm_outputs(page), Input(f"{page}-force", "n_clicks"), Input(f"{page}-force-cancel", "n_clicks"),
                  State(f"{page}-pending", "data"), prevent_initial_call=True)
    def _force(_go: int | None, _cancel: int | None, pending: dict[str, Any] | None) -> ConfirmResult:
        if not fired():
            return no_update, no_update, no_update, no_update
        if ctx.triggered_id != f"{page}-force":
            return no_update, no_update, None, None
        if not isinstance(pending, dict):
            return (*respond(Feedback("There is nothing to confirm any more.", ok=False)), None, None)
        fb = retry(pending)
        return (*respond(fb), None, None)


def fired() -> bool:
    """True when a real user event triggered the running callback (not a component that
    just appeared with n_clicks 0/None)."""
    return bool(ctx.triggered) and any(t.get("value") for t in ctx.triggered)


# --- query arguments ---------------------------------------------------------------------------

def int_arg(query: Mapping[str, object], key: str, default: int | None = None, *, minimum: int = 1,
            maximum: int | None = MAX_ID) -> int | None:
    """Query parameter ``key`` as a whole number, or a clear :class:`InvalidRequest`.
    ``maximum`` (default: the largest id SQLite can hold) keeps numbers no row can have
    out of the database calls; ``None`` for numbers that are clamped later (pages)."""
    raw = query.get(key)
    if raw in (None, ""):
        return default
    text = str(raw).strip()
    shown = repr(text) if len(text) <= 30 else repr(text[:27] + "...")
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise InvalidRequest(f"{key} must be a whole number, not {shown}")
    try:
        value = int(text)
    except ValueError:  # more digits than Python converts
        raise InvalidRequest(f"{key} {shown} is far too large") from None
    if value < minimum:
        raise InvalidRequest(f"{key} must be {minimum} or more")
    if maximum is not None and value > maximum:
        raise InvalidRequest(f"{key} {shown} is far too large")
    return value


def page_arg(query: Mapping[str, object]) -> int:
    """The ``page`` query parameter (1 when absent); a page past the end is clamped by
    :func:`clamp_page` once the page knows how many it has."""
    return int_arg(query, "page", 1, maximum=None) or 1


def clamp_page(page: int, total: int, per_page: int) -> int:
    """``page`` within the pages that exist: a link kept from a bigger library, or a made-up
    huge number, shows the last page (and never becomes an offset SQLite cannot hold)."""
    return max(1, min(page, -(-total // per_page)))


def href(path: str, **query: object) -> str:
    q = {k: v for k, v in query.items() if v not in (None, "")}
    return f"{path}?{urlencode(q)}" if q else path


# --- images ----------------------------------------------------------------------------------

def thumb_url(face_id: int) -> str:
    return f"/media/thumb/{int(face_id)}.jpg"


def photo_url(photo_id: int, size: int = 1600) -> str:
    return f"/media/photo/{int(photo_id)}.jpg?size={int(size)}"


def avatar(face_id: int | None, name: str, *, size: str = "md") -> html.Div:
    if face_id is None:
        initials = "".join(part[0] for part in name.split()[:2]).upper() or "?"
        return html.Div(initials, className=f"avatar avatar-{size} avatar-empty")
    return html.Div(html.Img(src=thumb_url(face_id), alt="", draggable="false"),
                    className=f"avatar avatar-{size}")


# --- face grid and selection ----------------------------------------------------------------

def face_tile(page: str, face_id: int, *, caption: str | None = None, photo_id: int | None = None,
              badge: str | None = None, selectable: bool = True) -> html.Div:
    """A square face thumbnail; clicking it (de)selects it, shift-click selects a range."""
    children: list[Component] = [html.Img(src=thumb_url(face_id), alt="", draggable="false",
                               className="face-img")]
    if badge:
        children.append(html.Span(badge, className="face-badge"))
    if photo_id is not None:
        children.append(dcc.Link("⤢", href=href("/photo", id=photo_id, face=face_id), className="face-open",
                                 title="Open the photo"))
    if caption:
        children.append(html.Div(caption, className="face-caption"))
    data: dict[str, Any] = {"data-face": str(face_id)}
    if selectable:
        children.append(html.Span(className="face-check"))
        return html.Div(children, className="face-tile", id={"type": f"{page}-face", "index": int(face_id)},
                        n_clicks=0, title=caption or "", **data)
    return html.Div(children, className="face-tile", title=caption or "", **data)


def face_info_tile(page: str, face: browse.FaceInfo, *, show_person: bool = False) -> html.Div:
    badge = None
    if face.assignment == "auto":
        badge = "auto"
    caption = None
    if show_person and face.person_name:
        caption = face.person_name + ("?" if face.assignment == "suggested" else "")
    return face_tile(page, face.id, caption=caption, photo_id=face.photo_id, badge=badge)


def face_grid(tiles: Sequence[Child], *, grid_id: str | None = None, size: str = "md") -> html.Div:
    props: dict[str, Any] = {"id": grid_id} if grid_id else {}
    return html.Div(list(tiles), className=f"face-grid face-grid-{size}", **props)


#: the fix actions a selection bar can offer, with their button labels
ACTIONS = {
    "remove": "Remove",
    "setaside": "Remove",
    "move": "Move",
    "assign": "Name",
    "split": "Split off",
    "notface": "Not a face",
    "cover": "Use as cover",
}
TIPS = {
    "remove": "Take the selected faces away from this person (they will not be suggested for them again)",
    "setaside": "Take the selected faces out of this group",
    "move": "Confirm the selected faces as the person typed here (a new name creates the person)",
    "assign": "Confirm the selected faces as the person typed here (a new name creates the person)",
    "split": "Put the selected faces into a new group of their own",
    "notface": "The selected detections are not faces: hide them everywhere",
    "cover": "Use the selected face as this person's picture",
}
NAMED_ACTIONS = ("move", "assign")


def selection_bar(page: str, actions: Sequence[str], names_id: str, *, remove_label: str | None = None) -> html.Div:
    """The sticky bar of a selectable grid: count, select all/clear, and the fix actions."""
    buttons: list[Component] = []
    for action in actions:
        label = remove_label if action == "remove" and remove_label else ACTIONS[action]
        if action in NAMED_ACTIONS:
            buttons.append(html.Div([
                dcc.Input(id=f"{page}-sel-name", type="text", list=names_id, debounce=False, autoComplete="off",
                          placeholder="Move to person…" if action == "move" else "Who are they?",
                          className="input input-sm", n_submit=0),
                html.Button(label, id=f"{page}-sel-{action}", className="btn btn-primary btn-sm", n_clicks=0,
                            title=TIPS[action]),
            ], className="selbar-group"))
        else:
            cls = "btn btn-sm " + ("btn-danger" if action in ("notface", "remove", "setaside") else "btn-light")
            buttons.append(html.Button(label, id=f"{page}-sel-{action}", className=cls, n_clicks=0, title=TIPS[action]))
    return html.Div([
        dcc.Store(id=f"{page}-selection", data={"selected": [], "anchor": None}),
        html.Div([
            html.Span("Nothing selected", id=f"{page}-selcount", className="selbar-count"),
            html.Span("Click faces to select, shift-click for a range", className="selbar-hint"),
            html.Button("Select all", id=f"{page}-sel-all", className="btn btn-ghost btn-sm", n_clicks=0),
            html.Button("Clear", id=f"{page}-sel-clear", className="btn btn-ghost btn-sm", n_clicks=0),
        ], className="selbar-left"),
        html.Div(buttons, className="selbar-actions"),
    ], id=f"{page}-selbar", className="selbar")


def selected_ids(selection: object) -> list[object]:
    """The ids of a selection store as the browser sent them; :func:`selection_action`
    checks that each one really is an id."""
    if not isinstance(selection, dict):
        return []
    raw = selection.get("selected") or []
    return list(raw) if isinstance(raw, list) else [raw]


def selection_action(lib: Library, action: str, face_ids: Sequence[object], name: str | None = None, *,
                     person_id: int | None = None, force: bool = False) -> Feedback:
    """One fix on the selected faces, through the labelling API; ``force`` lets move/name
    give a person a second face of one photo (after "Do it anyway")."""
    try:
        ids = [as_id(i, "face id") for i in face_ids]
    except InvalidRequest as exc:
        return Feedback(str(exc), ok=False)
    if not ids:
        return Feedback("Select one or more faces first (click a face; shift-click selects a range).", ok=False)
    n = faces_text(len(ids))

    def run() -> Feedback:
        if action == "remove":
            labelling.remove_faces(lib, ids)
            return Feedback(f"Removed {n}; they will not be suggested for that person again.")
        if action == "setaside":
            done = labelling.set_aside_faces(lib, ids)
            return Feedback(f"Removed {faces_text(done.faces)} from the group; they wait in a group of their own.")
        if action in ("move", "assign"):
            fn = labelling.move_faces if action == "move" else labelling.assign_faces
            pid = fn(lib, ids, name or "", force=force)
            person = browse.get_person(lib, pid)
            verb = "Moved" if action == "move" else "Named"
            return Feedback(f"{verb} {n} as {person.name}.", link=(f"Open {person.name}", href("/person", id=pid)))
        if action == "split":
            labelling.split_faces(lib, ids)
            return Feedback(f"Split {n} into a new group.", link=("Review groups", "/review"))
        if action == "notface":
            labelling.mark_not_face(lib, ids)
            return Feedback(f"Marked {n} as not a face.")
        if action == "cover":
            if len(ids) != 1:
                raise InvalidRequest("select exactly one face to use as the cover")
            if person_id is None:
                raise InvalidRequest("covers are set on a person's page")
            labelling.set_cover(lib, person_id, ids[0])
            return Feedback("Cover picture changed.")
        raise InvalidRequest(f"unknown action {action!r}")

    return attempt(run)


def selection_pending(action: str, face_ids: Sequence[object], name: str | None,
                      person_id: object = None) -> dict[str, Any]:
    """The request a selection action retries after "Do it anyway" (:func:`retry_selection`)."""
    return {"kind": "selection", "action": action, "face_ids": list(face_ids), "name": name, "person_id": person_id}


def retry_selection(lib: Library, pending: dict[str, Any]) -> Feedback:
    """:func:`selection_action` of a :func:`selection_pending` request, forced."""
    raw = pending.get("face_ids")
    name = pending.get("name")
    return selection_action(lib, str(pending.get("action")), raw if isinstance(raw, list) else [raw],
                            name if isinstance(name, str) else None, person_id=pending.get("person_id"), force=True)


def register_selection(app: Dash, lib: Library, page: str, actions: Sequence[str], *,
                       context_id: str | None = None, confirm: bool = False) -> None:
    """Callbacks of a page's selectable grid: selection runs in the browser (instant,
    shift-click ranges), the fix actions on the server through :func:`selection_action`.
    With ``confirm`` (the page has a :func:`confirm_slot`), a same-photo refusal asks "Do it
    anyway?"; the page registers the retry (:func:`register_confirm`, :func:`retry_selection`)."""
    app.clientside_callback(
        ClientsideFunction("organizer", "select"),
        Output({"type": f"{page}-face", "index": ALL}, "className"),
        Output(f"{page}-selection", "data"),
        Output(f"{page}-selcount", "children"),
        Output(f"{page}-selbar", "className"),
        Input({"type": f"{page}-face", "index": ALL}, "n_clicks"),
        Input(f"{page}-sel-all", "n_clicks"),
        Input(f"{page}-sel-clear", "n_clicks"),
        State({"type": f"{page}-face", "index": ALL}, "id"),
        State(f"{page}-selection", "data"),
        prevent_initial_call=True,
    )
    named = [a for a in actions if a in NAMED_ACTIONS]
    inputs = [Input(f"{page}-sel-{a}", "n_clicks") for a in actions]
    if named:
        inputs.append(Input(f"{page}-sel-name", "n_submit"))
    states = [State(f"{page}-selection", "data")]
    if named:
        states.append(State(f"{page}-sel-name", "value"))
    if context_id:
        states.append(State(context_id, "data"))

    outputs = confirm_outputs(page) if confirm else action_outputs()

    @app.callback(*outputs, *inputs, *states, prevent_initial_call=True)
    def _fix(*args: Any) -> ActionResult | ConfirmResult:
        # the inputs' n_clicks/n_submit, then the states: the selection store's data, the
        # name typed (str | None) and the context store's data (a person id), as the browser sent them
        if not fired():
            return (no_update, no_update, no_update, no_update) if confirm else (no_update, no_update)
        rest = list(args[len(inputs):])
        selection = rest.pop(0)
        name = rest.pop(0) if named else None
        context = rest.pop(0) if context_id else None
        trigger = ctx.triggered_id
        action = named[0] if trigger == f"{page}-sel-name" else str(trigger).removeprefix(f"{page}-sel-")
        ids = selected_ids(selection)
        fb = selection_action(lib, action, ids, name, person_id=context)
        if confirm:
            return respond_or_ask(page, fb, selection_pending(action, ids, name, context))
        return respond(fb)


# --- people -----------------------------------------------------------------------------------

def names_datalist(list_id: str) -> html.Datalist:
    """The browser's autocomplete list for name boxes; filled as the user types (see
    :func:`register_autocomplete`), so a page never ships every name up front."""
    return html.Datalist([], id=list_id)


AUTOCOMPLETE_LIMIT = 15


def name_options(lib: Library, typed: str | None, limit: int = AUTOCOMPLETE_LIMIT) -> list[html.Option]:
    """Existing people whose name contains what was typed (hidden people included: naming
    with an existing name adds to that person)."""
    text = normalise_name(typed)
    if not text:
        return []
    people = browse.list_people(lib, include_hidden=True, search=text, order="name")
    return [html.Option(value=p.name) for p in people[:limit]]


def register_autocomplete(app: Dash, lib: Library, list_id: str, *inputs: Input) -> None:
    """Fill datalist ``list_id`` with the names matching whichever of ``inputs`` changed."""
    @app.callback(Output(list_id, "children"), *inputs, prevent_initial_call=True)
    def _names(*_values: str | None) -> list[html.Option] | NoUpdate:
        if not ctx.triggered:
            return no_update
        return name_options(lib, ctx.triggered[0].get("value"))


def person_card(p: browse.PersonSummary) -> dcc.Link:
    photos = f"{p.photo_count} photo" + ("" if p.photo_count == 1 else "s")
    return dcc.Link([
        avatar(p.cover_face_id, p.name, size="lg"),
        html.Div(p.name, className="person-name"),
        html.Div(photos + (" · hidden" if p.hidden else ""), className="person-meta"),
    ], href=href("/person", id=p.id), className="person-card" + (" is-hidden" if p.hidden else ""),
        title=p.name)


# --- page furniture ---------------------------------------------------------------------------

def page_header(title: str, subtitle: Children = None, right: Children = None) -> html.Header:
    left: list[Component] = [html.H1(title)]
    if subtitle:
        left.append(html.P(subtitle, className="subtitle"))
    return html.Header([html.Div(left, className="page-title"), html.Div(right, className="page-tools")],
                       className="page-header")


def empty_state(title: str, text: str, link: tuple[str, str] | None = None) -> html.Div:
    children: list[Component] = [html.Div(className="empty-art"), html.H2(title), html.P(text)]
    if link:
        children.append(dcc.Link(link[0], href=link[1], className="btn btn-primary"))
    return html.Div(children, className="empty-state")


def error_panel(message: str) -> html.Div:
    return html.Div([html.H2("Cannot show this page"), html.P(message)], className="empty-state error-state")


def pager(path: str, query: Mapping[str, object], page: int, total: int, per_page: int) -> html.Nav | None:
    pages = max(1, -(-total // per_page))
    if pages <= 1:
        return None
    base = {k: v for k, v in query.items() if k != "page"}
    prev_link = (dcc.Link("‹ Previous", href=href(path, **base, page=page - 1), className="btn btn-light btn-sm")
                 if page > 1 else html.Span("‹ Previous", className="btn btn-light btn-sm disabled"))
    next_link = (dcc.Link("Next ›", href=href(path, **base, page=page + 1), className="btn btn-light btn-sm")
                 if page < pages else html.Span("Next ›", className="btn btn-light btn-sm disabled"))
    return html.Nav([prev_link, html.Span(f"Page {page} of {pages}", className="pager-text"), next_link],
                    className="pager")


def stat_tile(label: str, value: object, note: str | None = None) -> html.Div:
    children = [html.Div(str(value), className="stat-value"), html.Div(label, className="stat-label")]
    if note:
        children.append(html.Div(note, className="stat-note"))
    return html.Div(children, className="stat")


def chunks(items: Iterable[T], size: int) -> list[list[T]]:
    out: list[list[T]] = []
    for item in items:
        if not out or len(out[-1]) >= size:
            out.append([])
        out[-1].append(item)
    return out
