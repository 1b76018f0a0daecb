"""The console's Starlette app: the page, its JSON API, /metrics and /healthz.

Endpoints are plain functions: Starlette runs them in its thread pool, so a slow database read
never stalls the event loop, and nothing runs unless a client asks (no server-side timers)."""

from __future__ import annotations

import functools
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import daemon
from daemon import logs
from daemon.jobs.directory import Invalid
from daemon.web.backend import Backend, FromConfig
from daemon.web.devices import COOKIE as DEVICE
from daemon.web.devices import MAX_AGE as DEVICE_MAX_AGE
from daemon.web.limits import BodyLimit
from daemon.web.metrics import CONTENT_TYPE
from daemon.web.security import HEADERS, SESSION_COOKIE, Guard
from daemon.web.throttle import client_key

if TYPE_CHECKING:
    import jinja2

OPEN_PATHS = ("/login", "/static/")  # reachable without the password (the login page itself)
MAX_ID = 2**63 - 1  # the job table's ids are 64-bit: a larger one names no job
MAX_PAGE = 10**9


def parse_job_id(text: str) -> int | None:
    """A job id from a URL: ASCII digits naming a possible row (1 .. 2**63-1), else None."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    n = int(text)
    return n if 0 < n <= MAX_ID else None


def client_of(request: Request, guard: Guard | None = None) -> str:
    """Who a try is throttled and logged by: a browser's device cookie when it carries a good
    one, else its address (X-Forwarded-For only from [web] trusted_proxies, which uvicorn
    has already applied to request.client)."""
    devices = guard.devices if guard is not None else None
    if devices is not None and (device := devices.device_of(request.cookies.get(DEVICE))):
        return f"device:{device}"
    return client_key(request.client.host if request.client else None)


@functools.cache
def _templates() -> jinja2.Environment:
    """Made with the first page served: a console nobody opens keeps no template engine
    (1.9 MiB of the footprint)."""
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("daemon.web", "templates"),
                              autoescape=True, auto_reload=False)


class _GuardMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: Any, guard: Guard):
        super().__init__(app)
        self.guard = guard
        self.log = logs.get("uplift.web")

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await self._check(request, call_next)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    async def _check(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        g, path = self.guard, request.url.path
        if not g.host_ok(request.headers.get("host")):
            self.log.warning("web.refused", why="host", path=path)
            return PlainTextResponse("403: this console answers only to its own address\n",
                                     status_code=403)
        if g.password is not None and not path.startswith(OPEN_PATHS):
            refused = self._authenticate(request)
            if refused is not None:
                return refused
        if request.method == "POST" and path != "/login" and \
                not g.csrf_ok(request.headers.get("x-csrf-token")):
            self.log.warning("web.refused", why="csrf", path=path)
            return PlainTextResponse("403: missing or wrong X-CSRF-Token (reload the page)\n",
                                     status_code=403)
        try:
            return await call_next(request)
        except Exception as exc:  # a database fault: say so, keep serving
            self.log.error("web.error", path=path, error=type(exc).__name__)
            return JSONResponse({"error": f"the console could not answer ({type(exc).__name__});"
                                          f" see the daemon's log"}, status_code=503)

    def _authenticate(self, request: Request) -> Response | None:
        """None when the request may go on: a live session, or the password by basic auth.
        Every basic-auth try counts against its client's throttle; a request with no
        credentials at all is not a try (a browser's first visit, a stale page)."""
        g, path = self.guard, request.url.path
        if g.sessions.valid(request.cookies.get(SESSION_COOKIE)):
            return None
        authorization = request.headers.get("authorization")
        if not authorization:
            if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                return RedirectResponse("/login", status_code=303)
            return self._challenge()
        client = client_of(request, g)
        if g.throttle.wait(client) > 0:  # the password is not even looked at
            retry_after = g.throttle.retry_after(client)
            self.log.warning("web.login_refused", client=client, via="basic", why="throttled",
                             retry_after=retry_after, path=path)
            return PlainTextResponse(f"429: too many wrong passwords; try again in "
                                     f"{retry_after} s\n", status_code=429,
                                     headers={"Retry-After": str(retry_after)})
        if g.basic_ok(authorization):
            g.throttle.succeeded(client)
            return None
        failures = g.throttle.failed(client)  # never the attempted password
        self.log.warning("web.login_refused", client=client, via="basic", why="wrong password",
                         failures=failures, path=path)
        return self._challenge()

    @staticmethod
    def _challenge() -> Response:
        return PlainTextResponse("401: password required\n", status_code=401,
                                 headers={"WWW-Authenticate":
                                          'Basic realm="uplift-capture", charset="UTF-8"'})


def create_app(backend: Backend, metrics: Any, guard: Guard) -> Starlette:
    log = logs.get("uplift.web")

    def page(request: Request) -> Response:
        html = _templates().get_template("index.html").render(
            csrf=guard.csrf_token, version=daemon.__version__,
            password=guard.password is not None)
        return HTMLResponse(html)

    def login_page(error: str = "", status_code: int = 200,
                   headers: dict[str, str] | None = None) -> Response:
        html = _templates().get_template("login.html").render(csrf=guard.csrf_token, error=error)
        return HTMLResponse(html, status_code=status_code, headers=headers)

    def login_form(request: Request) -> Response:
        return login_page()

    async def login(request: Request) -> Response:
        # A urlencoded form parsed here: Starlette's form() would need python-multipart.
        # BodyLimit has already refused a body larger than a form of ours could be.
        body = (await request.body()).decode("utf-8", "replace")
        form = parse_qs(body, keep_blank_values=True)
        given, token = form.get("password", [""])[0], form.get("csrf", [""])[0]
        if guard.password is None:
            return RedirectResponse("/", status_code=303)
        client = client_of(request, guard)
        if guard.throttle.wait(client) > 0:  # the password is not even looked at
            retry_after = guard.throttle.retry_after(client)
            log.warning("web.login_refused", client=client, via="form", why="throttled",
                        retry_after=retry_after)
            return login_page(f"Too many wrong passwords: try again in {retry_after} s.", 429,
                              {"Retry-After": str(retry_after)})
        if not guard.csrf_ok(token):  # a stale page: no password was tried
            log.warning("web.refused", why="csrf", path="/login", client=client)
            return login_page("The page had expired: enter the password again.", 401)
        if not guard.password_ok(given):
            failures = guard.throttle.failed(client)  # never the attempted password
            log.warning("web.login_refused", client=client, via="form", why="wrong password",
                        failures=failures)
            return login_page("That password is not right.", 401)
        guard.throttle.succeeded(client)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, guard.new_session(), httponly=True,
                            samesite="strict", path="/")
        if guard.devices is not None and not client.startswith("device:"):
            response.set_cookie(DEVICE, guard.devices.issue(), max_age=DEVICE_MAX_AGE,
                                httponly=True, samesite="strict", path="/")
        return response

    def logout(request: Request) -> Response:
        guard.end_session(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def api_status(request: Request) -> Response:
        q = request.query_params
        if not any(q.get(k) for k in ("athlete", "node", "state", "page", "per_page")):
            return JSONResponse(backend.status(None, None, None, None, 50))
        try:
            page_no = int(q.get("page") or 1)
            per_page = int(q.get("per_page") or 50)
        except ValueError:
            return JSONResponse({"error": "page and per_page must be numbers"},
                                status_code=400)
        # Past the last page is an empty page, not a database overflow.
        page_no, per_page = min(max(page_no, 1), MAX_PAGE), min(max(per_page, 1), 500)
        return JSONResponse(backend.status(q.get("athlete") or None, q.get("node") or None,
                                           q.get("state") or None, page_no, per_page))

    def api_history(request: Request) -> Response:
        return JSONResponse(backend.history(time.time()))

    def retry_one(request: Request) -> Response:
        job_id = parse_job_id(request.path_params["job_id"])
        if job_id is None:  # not a number, or one no row can have (the database would raise)
            return JSONResponse({"error": "no such job"}, status_code=404)
        if backend.retry(job_id):
            log.info("web.retry", job_id=job_id)
            return JSONResponse({"retried": [job_id]})
        return JSONResponse({"error": f"job {job_id} is not failed or skipped (nothing to "
                                      f"retry)"}, status_code=409)

    def retry_failed(request: Request) -> Response:
        n = backend.retry_failed()
        log.info("web.retry_failed", jobs=n)
        return JSONResponse({"retried": n})

    def pause(request: Request) -> Response:
        backend.pause()
        log.info("web.pause")
        return JSONResponse({"paused": True})

    def resume(request: Request) -> Response:
        backend.resume()
        log.info("web.resume")
        return JSONResponse({"paused": False})

    def api_athletes(request: Request) -> Response:
        return JSONResponse(backend.athletes())

    async def set_athlete(request: Request) -> Response:
        """{"folder", "athlete_id", "name"?} links a folder; {"folder", "remove": true}
        unlinks it. A refusal is one plain line in "error"."""
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("folder"), str):
            return JSONResponse({"error": "send a JSON object with \"folder\" and "
                                          "\"athlete_id\" (or \"remove\": true)"},
                                status_code=400)
        return await run_in_threadpool(_athlete_change, body, client_of(request, guard))

    def _athlete_change(body: dict[str, Any], client: str) -> Response:
        folder = body["folder"]
        try:
            if body.get("remove") is True:
                if not backend.unlink(folder):
                    return JSONResponse({"error": f"the folder '{folder}' is not linked"},
                                        status_code=404)
                log.info("web.athlete_unlinked", folder=folder, client=client)
                return JSONResponse({"removed": folder})
            athlete, name = body.get("athlete_id"), body.get("name")
            if not isinstance(athlete, str) or not (name is None or isinstance(name, str)):
                return JSONResponse({"error": "\"athlete_id\" must be a UUID and \"name\" "
                                              "text"}, status_code=400)
            x = backend.link(folder, athlete, name, client)
        except FromConfig as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        except Invalid as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        log.info("web.athlete_linked", folder=x.folder, athlete_id=x.athlete_id, client=client)
        return JSONResponse({"linked": x.public()})

    def metrics_text(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    def healthz(request: Request) -> Response:
        ok, reason = backend.health()
        return PlainTextResponse("ok\n" if ok else f"{reason}\n", status_code=200 if ok else 503)

    routes = [
        Route("/", page),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/api/status", api_status),
        Route("/api/history", api_history),
        Route("/api/jobs/{job_id}/retry", retry_one, methods=["POST"]),
        Route("/api/retry-failed", retry_failed, methods=["POST"]),
        Route("/api/pause", pause, methods=["POST"]),
        Route("/api/resume", resume, methods=["POST"]),
        Route("/api/athletes", api_athletes, methods=["GET"]),
        Route("/api/athletes", set_athlete, methods=["POST"]),
        Route("/metrics", metrics_text),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(packages=[("daemon.web", "static")]), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(BodyLimit),
                                                Middleware(_GuardMiddleware, guard=guard)])


def query(**params: Any) -> str:
    """For tests and links: a query string without empty values."""
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})
