"""The Dash app: the shell (navigation, undo bar, toasts), routing to the pages listed in
``dashboard.pages.PAGES``, the image routes, and the optional password.

``create_app(library)`` builds everything from its arguments: no module-level state, so
tests can run several apps on several libraries in one process.
"""
from __future__ import annotations

import hmac
import importlib
import logging
import sys
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qsl, urlparse

from dash import ALL, Dash, Input, Output, dcc, html, no_update
from flask import Flask, Response, abort, request

from organizer import browse, labelling, media
from organizer.db import Library
from organizer.errors import NotFound, OrganizerError, UnreadableImage

from . import components as ui
from .pages import PAGES

ASSETS = Path(__file__).resolve().parent / "assets"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
THUMB_MAX_AGE = 7 * 24 * 3600
PHOTO_MAX_AGE = 3600
log = logging.getLogger(__name__)


def load_pages(names: list[str] | None = None) -> list[ModuleType]:
    """Import every page module listed in ``PAGES`` (checking the page contract)."""
    pages = []
    for name in names if names is not None else PAGES:
        module = importlib.import_module(f"{__package__}.pages.{name}")
        for attr in ("PATH", "TITLE", "layout", "register"):
            if not hasattr(module, attr):
                raise TypeError(f"dashboard page {name!r} has no {attr} (see docs/CONTRACTS.md)")
        pages.append(module)
    return pages


def create_app(library: Library, *, password: str | None = None) -> Dash:
    """The dashboard for ``library``. With ``password``, every request needs HTTP basic
    auth with that password (any user name)."""
    pages = load_pages()
    app = Dash(__name__, title="organizer", update_title=None, assets_folder=str(ASSETS),
               suppress_callback_exceptions=True, serve_locally=True)
    server: Flask = app.server
    _install_guards(server, password)
    _install_media_routes(server, library)
    app.layout = _shell(pages)
    _register_shell(app, library, pages)
    for page in pages:
        page.register(app, library)
    return app


# --- safety ----------------------------------------------------------------------------------

def _install_guards(server: Flask, password: str | None) -> None:
    @server.before_request
    def _same_origin():  # type: ignore[no-untyped-def]
        # Another web site open in the same browser must not be able to drive the
        # dashboard: a state-changing request from a foreign page carries its Origin.
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("Origin")
            if origin and origin != "null" and urlparse(origin).netloc != request.host:
                abort(403)
        return None

    if password:
        secret = password.encode()

        @server.before_request
        def _basic_auth():  # type: ignore[no-untyped-def]
            auth = request.authorization
            given = (auth.password or "").encode() if auth and auth.type == "basic" else b""
            if not hmac.compare_digest(given, secret):
                return Response("This organizer needs a password.\n", 401,
                                {"WWW-Authenticate": 'Basic realm="organizer", charset="UTF-8"'})
            return None


def _install_media_routes(server: Flask, lib: Library) -> None:
    """Images by id only: a face's stored crop, or a library photo rendered small.

    The URL never carries a path, so nothing outside the library can be named; the int
    converters make any other shape (``../``, encoded slashes) a plain 404.
    """

    @server.route("/media/thumb/<int:face_id>.jpg")
    def _thumb(face_id: int):  # type: ignore[no-untyped-def]
        jpeg = browse.face_thumbnail(lib, face_id)
        if jpeg is None:
            abort(404)
        resp = Response(jpeg, mimetype="image/jpeg")
        resp.set_etag(media.thumbnail_etag(jpeg))
        resp.cache_control.private = True
        resp.cache_control.max_age = THUMB_MAX_AGE
        return resp.make_conditional(request)

    @server.route("/media/photo/<int:photo_id>.jpg")
    def _photo(photo_id: int):  # type: ignore[no-untyped-def]
        size = media.clamp_size(request.args.get("size", type=int))
        try:
            path = media.photo_file(lib, photo_id)
            etag = media.photo_etag(path, size)
            if etag in request.if_none_match:
                resp = Response(status=304)
            else:
                resp = Response(media.render_photo(lib, photo_id, size).jpeg, mimetype="image/jpeg")
        except NotFound:
            abort(404)
        except UnreadableImage:
            abort(404)
        resp.set_etag(etag)
        resp.cache_control.private = True
        resp.cache_control.max_age = PHOTO_MAX_AGE
        return resp

    @server.route("/media/", defaults={"rest": ""})
    @server.route("/media/<path:rest>")
    def _no_media(rest: str):  # type: ignore[no-untyped-def]
        # anything else under /media is a 404, not the app's page (Dash answers every
        # other path with its index page)
        abort(404)


# --- the shell ---------------------------------------------------------------------------------

def _nav_link(page: ModuleType) -> dcc.Link:
    name = page.__name__.rsplit(".", 1)[-1]
    return dcc.Link([html.Span(className=f"nav-icon icon-{name}"), html.Span(page.TITLE, className="nav-label")],
                    href=page.PATH, id={"type": "app-nav", "index": name}, className="nav-link")


def _shell(pages: list[ModuleType]) -> html.Div:
    main = [p for p in pages if getattr(p, "NAV", True) is True]
    bottom = [p for p in pages if getattr(p, "NAV", True) == "bottom"]
    return html.Div([
        dcc.Location(id=ui.URL, refresh="callback-nav"),
        dcc.Store(id=ui.REFRESH, data=""),
        dcc.Store(id=ui.TICK, data=""),
        html.Nav([
            dcc.Link([html.Span(className="brand-mark"), html.Span("organizer")], href="/", className="brand"),
            html.Div([_nav_link(p) for p in main], className="nav-list"),
            html.Div(className="nav-spacer"),
            html.Div([_nav_link(p) for p in bottom], className="nav-list"),
            html.Div([
                html.Button([html.Span(className="nav-icon icon-undo"), html.Span("Undo")], id="app-undo",
                            className="undo-btn", n_clicks=0, title="Undo the last change (U)"),
                html.Div(id="app-undo-label", className="undo-label"),
            ], className="undo-box"),
        ], className="sidebar"),
        html.Main([
            html.Div(id=ui.ALERT, className="toasts", **{"aria-live": "polite"}),
            html.Div(id="app-page", className="page"),
        ], className="main"),
    ], className="app")


def _route(pages: list[ModuleType], pathname: str | None) -> ModuleType | None:
    path = (pathname or "/").rstrip("/") or "/"
    if path == "/":
        return next((p for p in pages if getattr(p, "NAV", True) is True), pages[0] if pages else None)
    return next((p for p in pages if p.PATH.rstrip("/") == path), None)


def render_page(lib: Library, pages: list[ModuleType], pathname: str | None, search: str | None):  # type: ignore[no-untyped-def]
    """The page component for a URL (what the router callback returns)."""
    page = _route(pages, pathname)
    if page is None:
        return ui.empty_state("Page not found", f"There is no page at {pathname}.", ("Go to People", "/")), None
    query = dict(parse_qsl((search or "").lstrip("?"), keep_blank_values=True))
    try:
        return page.layout(lib, **query), page
    except OrganizerError as exc:
        return ui.error_panel(str(exc)), page


def undo_last(lib: Library) -> ui.Feedback:
    def run() -> ui.Feedback:
        done = labelling.undo(lib)
        if not done:
            return ui.Feedback("Nothing to undo.", ok=False)
        return ui.Feedback("Undone: " + "; ".join(done))
    return ui.attempt(run)


def undo_label(lib: Library) -> tuple[str, bool]:
    """(what Undo would revert, disabled?)"""
    for op in labelling.history(lib, limit=20):
        if not op.undone:
            return op.description, False
    return "Nothing to undo", True


def _register_shell(app: Dash, lib: Library, pages: list[ModuleType]) -> None:
    names = [p.__name__.rsplit(".", 1)[-1] for p in pages]

    @app.callback(
        Output("app-page", "children"),
        Output({"type": "app-nav", "index": ALL}, "className"),
        Input(ui.URL, "pathname"), Input(ui.URL, "search"), Input(ui.REFRESH, "data"),
    )
    def _router(pathname, search, _refresh):  # type: ignore[no-untyped-def]
        content, page = render_page(lib, pages, pathname, search)
        active = page.__name__.rsplit(".", 1)[-1] if page else None
        shown = ([n for n, p in zip(names, pages) if getattr(p, "NAV", True) is True]
                 + [n for n, p in zip(names, pages) if getattr(p, "NAV", True) == "bottom"])
        return content, ["nav-link active" if n == active else "nav-link" for n in shown]

    @app.callback(*ui.action_outputs(), Input("app-undo", "n_clicks"), prevent_initial_call=True)
    def _undo(n):  # type: ignore[no-untyped-def]
        if not n:
            return no_update, no_update
        return ui.respond(undo_last(lib))

    @app.callback(
        Output("app-undo-label", "children"), Output("app-undo", "disabled"),
        Input(ui.REFRESH, "data"), Input(ui.TICK, "data"), Input(ui.URL, "pathname"),
    )
    def _undo_label(*_):  # type: ignore[no-untyped-def]
        text, disabled = undo_label(lib)
        return text, disabled


# --- running -----------------------------------------------------------------------------------

def serve(lib: Library, *, host: str = "127.0.0.1", port: int = 8050, password: str | None = None) -> None:
    """Run the dashboard until Ctrl-C (what ``organizer dashboard`` does)."""
    if host not in LOCAL_HOSTS:
        print(f"warning: the dashboard listens on {host}, so other machines can reach it"
              + ("" if password else "; anyone who can reach it can change your library (use --password)"),
              file=sys.stderr)
    app = create_app(lib, password=password)
    shown = f"[{host}]" if ":" in host else host
    print(f"organizer dashboard: http://{shown}:{port}/  (Ctrl-C stops it)", flush=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app.run(host=host, port=port, debug=False)
