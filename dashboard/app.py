"""The Dash app: the shell (navigation, undo bar, toasts), routing to the pages listed in
``dashboard.pages.PAGES``, the image routes, and the optional password.

``create_app(library)`` builds everything from its arguments: no module-level state, so
tests can run several apps on several libraries in one process.
"""
from __future__ import annotations

import hmac
import importlib
import logging
import socket
import sys
import threading
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlsplit

from dash import ALL, Dash, Input, Output, dcc, html, no_update
from dash.development.base_component import Component
from flask import Flask, Response, abort, request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from organizer import browse, labelling, media
from organizer.db import Library
from organizer.errors import InvalidRequest, NotFound, OrganizerError, UnreadableImage
from organizer.resemblance import MAX_UPLOAD_BYTES

from . import components as ui
from .pages import PAGES

ASSETS = Path(__file__).resolve().parent / "assets"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: --host values that listen on every address of the machine
ANY_ADDRESS = frozenset({"0.0.0.0", "::", ""})
#: the largest request body: a 20 MB upload arrives as base64 (4/3 larger) inside the
#: callback's JSON, so the limit sits above that; anything bigger is a 413 before it is read
MAX_REQUEST_BYTES = MAX_UPLOAD_BYTES * 4 // 3 + 4 * 2**20
#: on every response: no framing by other pages (clickjacking of Undo/Remove), no MIME sniffing
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
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


def create_app(library: Library, *, password: str | None = None, hosts: HostPolicy | None = None) -> Dash:
    """The dashboard for ``library``. With ``password``, every request needs HTTP basic
    auth with that password (any user name); an empty password is refused, not taken as
    "none". ``hosts`` says which Host headers are answered (default: the loopback names on
    any port, see :class:`HostPolicy`)."""
    if password is not None and not password.strip():
        raise InvalidRequest("the dashboard password is empty; give a real one, or none at all")
    pages = load_pages()
    # update_title "" (Dash: "None or ''"): the tab title does not flash "Updating..." during callbacks
    app = Dash(__name__, title="organizer", update_title="", assets_folder=str(ASSETS),
               suppress_callback_exceptions=True, serve_locally=True)
    server: Flask = app.server
    server.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    _install_guards(server, password, hosts or HostPolicy.local(),
                    callback_path=app.config.routes_pathname_prefix + "_dash-update-component")
    _install_media_routes(server, library)
    app.layout = _shell(pages)
    _register_shell(app, library, pages)
    for page in pages:
        page.register(app, library)
    return app


# --- safety ----------------------------------------------------------------------------------

def split_host(value: str, default_port: int | None = None) -> tuple[str, int | None] | None:
    """``(name, port)`` of a Host header or an Origin's host part, lower-case, IPv6
    without brackets, one trailing dot dropped; ``None`` for anything malformed (a port
    that is not a number, an unclosed ``[``, user info, a bare IPv6 address)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        name, rest = value[1:end], value[end + 1:]
        if end < 0 or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else None
    elif value.count(":") > 1 or "@" in value:
        return None
    else:
        name, sep, port_text_ = value.partition(":")
        port_text = port_text_ if sep else None
    name = name.removesuffix(".")
    if not name:
        return None
    if port_text is None:
        return name, default_port
    if not (port_text.isascii() and port_text.isdigit() and 0 < len(port_text) <= 5 and 0 < int(port_text) < 65536):
        return None
    return name, int(port_text)


def _addresses(name: str) -> set[str]:
    """The addresses ``name`` resolves to (nothing when it does not resolve)."""
    try:
        return {str(info[4][0]).lower() for info in socket.getaddrinfo(name, None)}
    except (OSError, UnicodeError):
        return set()


def _machine_names() -> set[str]:
    """The names a browser on the network may use for this machine: its host name (also
    with ``.local``, as mDNS offers it), its canonical name, and their addresses."""
    host = socket.gethostname().lower()
    names = {host, f"{host}.local"}
    with suppress(OSError, UnicodeError):
        names |= {info[3].lower() for info in socket.getaddrinfo(host, None, flags=socket.AI_CANONNAME) if info[3]}
    for name in list(names):
        names |= _addresses(name)
    return names


@dataclass(frozen=True)
class HostPolicy:
    """The Host header values the dashboard answers, against DNS rebinding: a page on
    evil.example whose name is made to resolve to 127.0.0.1 reaches the server as if
    it were the dashboard's own page, but its requests carry ``Host: evil.example``.

    ``names`` are lower-case names and addresses (IPv6 without brackets). ``port``, when
    known, is the only port a Host header may name; a Host without a port is accepted
    (a browser always names a port other than 80, and a loopback name with no port names
    no other site).
    """

    names: frozenset[str]
    port: int | None = None

    @classmethod
    def local(cls, port: int | None = None) -> HostPolicy:
        return cls(LOCAL_HOSTS, port)

    @classmethod
    def for_server(cls, host: str, port: int | None) -> HostPolicy:
        """What ``serve(host=..., port=...)`` answers: the loopback names, the ``--host``
        given and its addresses; for 0.0.0.0 / ``::`` also this machine's names and
        addresses (see :func:`_machine_names`)."""
        given = host.strip().strip("[]").lower()
        extra = _machine_names() if given in ANY_ADDRESS else {given} | _addresses(given)
        return cls(frozenset(LOCAL_HOSTS | extra) - ANY_ADDRESS, port)

    def allows(self, value: str | None) -> bool:
        parsed = split_host(value or "")
        return (parsed is not None and parsed[0] in self.names
                and (parsed[1] is None or self.port is None or parsed[1] == self.port))

    def describe(self) -> str:
        shown = sorted(f"[{n}]" if ":" in n else n for n in self.names)
        return ", ".join(shown) + (f" (port {self.port})" if self.port else "")


def _same_site(origin: str, host: str, scheme: str, hosts: HostPolicy) -> bool:
    """Whether a request's ``Origin`` is the dashboard's own page: an origin with the
    scheme, name and port of the Host the request went to, and an allowed one. Anything
    that does not parse (``http://[::1``) is foreign."""
    try:
        url = urlsplit(origin)
    except ValueError:
        return False
    if url.scheme != scheme or url.scheme not in ("http", "https") or not hosts.allows(url.netloc):
        return False
    ports = {"http": 80, "https": 443}
    mine = split_host(host, ports.get(scheme))
    return mine is not None and split_host(url.netloc, ports[url.scheme]) == mine


def _callback_body_error(body: object) -> str | None:
    """Why a callback request body is not one a browser sends (None when it is)."""
    if not isinstance(body, dict):
        return "the request body is not a JSON object"
    if not isinstance(body.get("output"), str) or not isinstance(body.get("outputs"), (dict, list)):
        return "the request names no outputs"
    for key in ("inputs", "state", "changedPropIds"):
        if not isinstance(body.get(key, []), list):
            return f"the request's {key} is not a list"
    return None


def _install_guards(server: Flask, password: str | None, hosts: HostPolicy, *, callback_path: str) -> None:
    @server.before_request
    def _known_host() -> Response | None:
        # first of all, so a rebinding page gets neither data nor a password prompt (nor,
        # in this message, the names and addresses that are allowed)
        if not hosts.allows(request.host):
            return Response("This organizer dashboard does not answer under this name: open it at the "
                            "address it printed when it started, or start it with --host NAME.\n", 403,
                            mimetype="text/plain")
        return None

    @server.before_request
    def _same_origin() -> None:
        # Another web site open in the same browser must not be able to drive the
        # dashboard: a state-changing request from a foreign page carries its Origin.
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("Origin")
            if origin and origin != "null" and not _same_site(origin, request.host, request.scheme, hosts):
                abort(403)

    if password:
        secret = password.encode()

        @server.before_request
        def _basic_auth() -> Response | None:
            auth = request.authorization
            given = (auth.password or "").encode() if auth and auth.type == "basic" else b""
            if not hmac.compare_digest(given, secret):
                return Response("This organizer needs a password.\n", 401,
                                {"WWW-Authenticate": 'Basic realm="organizer", charset="UTF-8"'})
            return None

    @server.before_request
    def _streamed_body_limit() -> None:
        # A body with a Content-Length over the limit is refused by Werkzeug before it is
        # read; a chunked one is cut off silently at the limit (and would then be run as
        # far as it parses), so a body that reaches the limit is refused here.
        if request.content_length is None and "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            max_bytes = server.config["MAX_CONTENT_LENGTH"]
            if len(request.get_data(cache=True)) >= max_bytes:
                raise RequestEntityTooLarge()

    @server.before_request
    def _well_formed_callback() -> None:
        # parsed here (Flask keeps the result for Dash) so that a body no browser sends
        # is a 400 with a reason, not a 500 from deep inside Dash
        if request.method == "POST" and request.path == callback_path:
            try:
                body = request.get_json()
            except RecursionError:
                raise BadRequest("the request body is nested too deeply") from None
            problem = _callback_body_error(body)
            if problem:
                raise BadRequest(problem)

    @server.errorhandler(RecursionError)
    def _too_deep(_exc: RecursionError) -> Response:
        return Response("The request is nested too deeply.\n", 400, mimetype="text/plain")

    @server.after_request
    def _security_headers(resp: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            resp.headers.setdefault(name, value)
        return resp


def _revalidate(resp: Response) -> None:
    """Images may be kept by the browser but are asked for again each time (answered
    with a bodiless 304 while the ETag matches): a face id or photo that now means
    something else, or a forgotten person's crop, is never shown from the cache."""
    resp.cache_control.private = True
    resp.cache_control.no_cache = True


def _install_media_routes(server: Flask, lib: Library) -> None:
    """Images by id only: a face's stored crop, or a library photo rendered small.

    The URL never carries a path, so nothing outside the library can be named; the int
    converters make any other shape (``../``, encoded slashes) a plain 404.
    """

    @server.route("/media/thumb/<int:face_id>.jpg")
    def _thumb(face_id: int) -> Response:
        jpeg = browse.face_thumbnail(lib, face_id)
        if jpeg is None:
            abort(404)
        resp = Response(jpeg, mimetype="image/jpeg")
        resp.set_etag(media.thumbnail_etag(face_id, jpeg))
        _revalidate(resp)
        resp.make_conditional(request)  # a 304 without the body when the ETag matches
        return resp

    @server.route("/media/photo/<int:photo_id>.jpg")
    def _photo(photo_id: int) -> Response:
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
        _revalidate(resp)
        return resp

    @server.route("/media/", defaults={"rest": ""})
    @server.route("/media/<path:rest>")
    def _no_media(rest: str) -> NoReturn:
        # anything else under /media is a 404, not the app's page (Dash answers every
        # other path with its index page)
        abort(404)


# --- the shell ---------------------------------------------------------------------------------

def _nav_link(page: ModuleType) -> dcc.Link:
    name = page.__name__.rsplit(".", 1)[-1]
    return dcc.Link([html.Span(className=f"nav-icon icon-{name}"), html.Span(page.TITLE, className="nav-label")],
                    href=page.PATH, id={"type": "app-nav", "index": name}, className="nav-link")


#: a wildcard property (not a keyword of html.Div), so passed as a dict
_ARIA_LIVE: dict[str, Any] = {"aria-live": "polite"}


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
            html.Div(id=ui.ALERT, className="toasts", **_ARIA_LIVE),
            html.Div(id="app-page", className="page"),
        ], className="main"),
    ], className="app")


def _route(pages: list[ModuleType], pathname: str | None) -> ModuleType | None:
    path = (pathname or "/").rstrip("/") or "/"
    if path == "/":
        return next((p for p in pages if getattr(p, "NAV", True) is True), pages[0] if pages else None)
    return next((p for p in pages if p.PATH.rstrip("/") == path), None)


def render_page(lib: Library, pages: list[ModuleType], pathname: str | None,
                search: str | None) -> tuple[Component, ModuleType | None]:
    """The page component for a URL (what the router callback returns)."""
    page = _route(pages, pathname)
    if page is None:
        return ui.empty_state("Page not found", f"There is no page at {pathname}.", ("Go to People", "/")), None
    # "lib" is the layouts' first argument, not a query parameter anyone can set
    query = {k: v for k, v in parse_qsl((search or "").lstrip("?"), keep_blank_values=True) if k != "lib"}
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
    def _router(pathname: str | None, search: str | None, _refresh: object) -> tuple[Component, list[str]]:
        content, page = render_page(lib, pages, pathname, search)
        active = page.__name__.rsplit(".", 1)[-1] if page else None
        shown = ([n for n, p in zip(names, pages, strict=True) if getattr(p, "NAV", True) is True]
                 + [n for n, p in zip(names, pages, strict=True) if getattr(p, "NAV", True) == "bottom"])
        return content, ["nav-link active" if n == active else "nav-link" for n in shown]

    @app.callback(*ui.action_outputs(), Input("app-undo", "n_clicks"), prevent_initial_call=True)
    def _undo(n: int | None) -> tuple[object, ...]:
        if not n:
            return no_update, no_update
        return ui.respond(undo_last(lib))

    @app.callback(
        Output("app-undo-label", "children"), Output("app-undo", "disabled"),
        Input(ui.REFRESH, "data"), Input(ui.TICK, "data"), Input(ui.URL, "pathname"),
    )
    def _undo_label(*_: object) -> tuple[str, bool]:
        text, disabled = undo_label(lib)
        return text, disabled


# --- running -----------------------------------------------------------------------------------

def serve(lib: Library, *, host: str = "127.0.0.1", port: int = 8050, password: str | None = None) -> None:
    """Run the dashboard until Ctrl-C (what ``organizer dashboard`` does)."""
    if host not in LOCAL_HOSTS:
        print(f"warning: the dashboard listens on {host}, so other machines can reach it"
              + ("" if password else "; anyone who can reach it can change your library (use --password)"),
              file=sys.stderr)
    hosts = HostPolicy.for_server(host, port)
    app = create_app(lib, password=password, hosts=hosts)
    if host.strip("[]") in ANY_ADDRESS:
        print(f"the dashboard answers to {hosts.describe()}", file=sys.stderr)
    shown = f"[{host}]" if ":" in host else host
    print(f"organizer dashboard: http://{shown}:{port}/  (Ctrl-C stops it)", flush=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # dlib's models take seconds to load: load them while the first page is read, so the
    # first look-alike upload does not pay for it (bench/lookalike.py: 12.9 s -> 1.5 s)
    threading.Thread(target=_warm_faces, name="warm-faces", daemon=True).start()
    app.run(host=host, port=port, debug=False)


def _warm_faces() -> None:
    """Load the face models in the background; a failure is left for the upload to report."""
    from organizer import faces

    with suppress(ImportError, OSError, RuntimeError, ValueError):
        faces.warm_up()
