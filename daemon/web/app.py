"""The console's Starlette app: the page, its JSON API, /metrics and /healthz.

Endpoints are plain functions: Starlette runs them in its thread pool, so a slow database read
never stalls the event loop, and nothing runs unless a client asks (no server-side timers)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
from starlette.applications import Starlette
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
from daemon.web.backend import Backend
from daemon.web.metrics import CONTENT_TYPE
from daemon.web.security import HEADERS, SESSION_COOKIE, Guard

OPEN_PATHS = ("/login", "/static/")  # reachable without the password (the login page itself)


def _templates() -> jinja2.Environment:
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
        if not path.startswith(OPEN_PATHS) and not g.authenticated(
                request.headers.get("authorization"), request.cookies.get(SESSION_COOKIE)):
            if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                return RedirectResponse("/login", status_code=303)
            return PlainTextResponse("401: password required\n", status_code=401,
                                     headers={"WWW-Authenticate":
                                              'Basic realm="uplift-capture", charset="UTF-8"'})
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


def create_app(backend: Backend, metrics: Any, guard: Guard) -> Starlette:
    templates = _templates()
    log = logs.get("uplift.web")

    def page(request: Request) -> Response:
        html = templates.get_template("index.html").render(
            csrf=guard.csrf_token, version=daemon.__version__,
            password=guard.password is not None)
        return HTMLResponse(html)

    def login_form(request: Request) -> Response:
        html = templates.get_template("login.html").render(csrf=guard.csrf_token, error=False)
        return HTMLResponse(html)

    async def login(request: Request) -> Response:
        # A urlencoded form parsed here: Starlette's form() would need python-multipart.
        body = (await request.body())[:8192].decode("utf-8", "replace")
        form = parse_qs(body, keep_blank_values=True)
        given, token = form.get("password", [""])[0], form.get("csrf", [""])[0]
        if guard.password is None:
            return RedirectResponse("/", status_code=303)
        if not guard.csrf_ok(token) or not guard.password_ok(given):
            log.warning("web.login_failed")  # never the attempted password
            html = templates.get_template("login.html").render(csrf=guard.csrf_token,
                                                                error=True)
            return HTMLResponse(html, status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, guard.new_session(), httponly=True,
                            samesite="strict", path="/")
        return response

    def logout(request: Request) -> Response:
        guard.end_session(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def api_status(request: Request) -> Response:
        q = request.query_params
        if not any(q.get(k) for k in ("athlete", "node", "state", "page", "per_page")):
            return JSONResponse(backend.status(None, None, None, None, 50))  # type: ignore
        try:
            page_no = int(q.get("page") or 1)
            per_page = int(q.get("per_page") or 50)
        except ValueError:
            return JSONResponse({"error": "page and per_page must be numbers"},
                                status_code=400)
        return JSONResponse(backend.status(q.get("athlete") or None, q.get("node") or None,
                                           q.get("state") or None, page_no, per_page))

    def api_history(request: Request) -> Response:
        return JSONResponse(backend.history(time.time()))

    def retry_one(request: Request) -> Response:
        try:
            job_id = int(request.path_params["job_id"])
        except ValueError:
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
        Route("/metrics", metrics_text),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(packages=[("daemon.web", "static")]), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(_GuardMiddleware, guard=guard)])


def query(**params: Any) -> str:
    """For tests and links: a query string without empty values."""
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})
