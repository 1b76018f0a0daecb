"""The web console: a page on the workstation showing what uploads, what waits and why, what
failed (with Retry), plus /metrics and /healthz. The daemon starts it with start_console()."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from daemon.web.backend import Backend, StoreBackend
from daemon.web.metrics import Metrics
from daemon.web.security import check_listen
from daemon.web.server import WebServer
from daemon.web.sessions import Sessions
from daemon.web.throttle import Throttle

__all__ = ["Backend", "Metrics", "Sessions", "StoreBackend", "Throttle", "WebServer",
           "check_listen", "start_console"]


def start_console(listen: str, password_file: Path | None, backend: Backend,
                  metrics: Metrics | Any, *, sessions: Sessions | None = None,
                  throttle: Throttle | None = None,
                  trusted_proxies: tuple[str, ...] = ()) -> WebServer | None:
    """Serve the console on `listen` ("HOST:PORT"; "" = off -> None). Raises ValueError when
    check_listen() refuses it or the password file is unusable, OSError when the address
    cannot be bound. `sessions` and `throttle`: the defaults unless a test brings its own
    (a short window, a fake clock). `trusted_proxies`: [web] trusted_proxies."""
    from daemon.web.app import create_app
    from daemon.web.security import Guard, read_password, split_listen

    if not listen.strip():
        return None
    problem = check_listen(listen, password_file)
    if problem:
        raise ValueError(problem)
    host, port = split_listen(listen)
    password = read_password(password_file) if password_file is not None else None
    guard = Guard(host, password, sessions=sessions, throttle=throttle)
    server = WebServer(create_app(backend, metrics, guard), host, port, trusted_proxies)
    server.start()
    return server
