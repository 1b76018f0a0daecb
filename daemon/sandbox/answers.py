"""Odd but real reservation answers for fault injection: trickled, huge, or with keys changed.

A reserve fault with any of these keys still creates a real reservation; only the answer sent
back differs (see `shaping`):

    {"omit": ["upload_fields"]}          keys removed from the answer
    {"set": {"upload_url": "..."}}       keys overridden in the answer
    {"trickle": 4.0}                     the body sent one byte every 4.0 s
    {"huge": 300000000}                  a JSON body of that many bytes, streamed
"""

from __future__ import annotations

import json
import select
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

SHAPING_KEYS = ("trickle", "huge", "omit", "set")
STATUS = 201  # shaped answers are otherwise valid "created" answers
CHUNK = 64 * 1024
POLL = 0.5  # how often a trickle looks for a gone client or a stopping server


def shaping(fault: dict[str, Any] | None) -> bool:
    """Whether a reserve fault changes a real answer (rather than replacing it)."""
    return fault is not None and any(k in fault for k in SHAPING_KEYS)


def reshape(answer: dict[str, Any], fault: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in answer.items() if k not in set(fault.get("omit") or ())}
    out.update(fault.get("set") or {})
    return out


def send(handler: BaseHTTPRequestHandler, answer: dict[str, Any], fault: dict[str, Any],
         stopping: threading.Event) -> None:
    """Answer with `answer` shaped by `fault`. Raises OSError when the client goes away."""
    answer = reshape(answer, fault)
    if fault.get("huge"):
        _send_huge(handler, answer, int(fault["huge"]))
        return
    body = json.dumps(answer).encode()
    _head(handler, len(body))
    if fault.get("trickle"):
        _trickle(handler, body, float(fault["trickle"]), stopping)
    else:
        handler.wfile.write(body)


def _head(handler: BaseHTTPRequestHandler, length: int) -> None:
    handler.send_response(STATUS)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(length))
    handler.end_headers()
    handler.wfile.flush()


def _trickle(handler: BaseHTTPRequestHandler, body: bytes, interval: float,
             stopping: threading.Event) -> None:
    started = time.monotonic()
    for i in range(len(body)):
        due = started + (i + 1) * interval  # a fixed schedule: no drift from slow writes
        while (left := due - time.monotonic()) > 0:
            if stopping.is_set() or _client_gone(handler, min(left, POLL)):
                handler.close_connection = True
                return
        handler.wfile.write(body[i:i + 1])


def _client_gone(handler: BaseHTTPRequestHandler, timeout: float) -> bool:
    """Wait up to `timeout`; True if the socket turned readable. A client awaiting our answer
    sends nothing, so readable means it closed (EOF, reset, or a TLS close_notify)."""
    poll = select.poll()  # not select(): descriptors past 1,024 are fine
    poll.register(handler.connection, select.POLLIN)
    return bool(poll.poll(int(timeout * 1000)))


def _send_huge(handler: BaseHTTPRequestHandler, answer: dict[str, Any], size: int) -> None:
    # A valid reservation object padded with one long string, so the JSON parses if read whole.
    text = json.dumps(answer)
    head = (text[:-1] + (', ' if answer else '') + '"padding": "').encode()
    tail = b'"}'
    pad = max(0, size - len(head) - len(tail))
    _head(handler, len(head) + pad + len(tail))
    handler.wfile.write(head)
    chunk = b"x" * CHUNK
    while pad > 0:
        n = min(pad, CHUNK)
        handler.wfile.write(chunk if n == CHUNK else chunk[:n])
        pad -= n
    handler.wfile.write(tail)
