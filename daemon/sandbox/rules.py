"""The API reference's rules for POST /captures (uplift-api/create-capture.txt), and the
sandbox's bandwidth throttle."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any


class ApiRefusal(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def _uuid(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise ApiRefusal(400, f"{key}: required, must be a UUID string")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ApiRefusal(400, f"{key}: {value!r} is not a valid UUID") from None


def validate_capture(body: Any, groups: dict[str, str], now: float) -> dict[str, Any]:
    """The API reference's rules for POST /captures; ApiRefusal on the first one broken."""
    if not isinstance(body, dict):
        raise ApiRefusal(400, "request body must be a JSON object")
    athlete = _uuid(body, "athlete_id")
    group = _uuid(body, "session_group_id")
    for key in ("camera_configuration", "movement_attributes"):
        if not isinstance(body.get(key), dict):
            raise ApiRefusal(400, f"{key}: required, must be an object")
    camera = body["camera_configuration"]
    if not isinstance(camera.get("camera_setup_selection"), str) or \
            not camera["camera_setup_selection"].strip():
        raise ApiRefusal(400, "camera_configuration.camera_setup_selection: required")
    if camera.get("camera_orientation", "portrait") not in ("portrait", "landscape"):
        raise ApiRefusal(400, "camera_configuration.camera_orientation: must be portrait or "
                              "landscape")
    movement = body["movement_attributes"]
    for key in ("activity", "movement"):
        if not isinstance(movement.get(key), str) or not movement[key].strip():
            raise ApiRefusal(400, f"movement_attributes.{key}: required, must be a string")
    name = body.get("file_name")
    if not isinstance(name, str) or not name.strip():
        raise ApiRefusal(400, "file_name: required and must not be blank")
    if "/" in name or "\\" in name:
        raise ApiRefusal(400, "file_name: must not contain / or \\")
    if not name.lower().endswith(".mov"):
        raise ApiRefusal(400, "file_name: must use a .mov extension")
    if len(name) > 255:
        raise ApiRefusal(400, "file_name: at most 255 characters")
    capture_time = body.get("capture_time")
    if capture_time is not None:
        if not isinstance(capture_time, str):
            raise ApiRefusal(400, "capture_time: must be an ISO 8601 date-time string")
        try:
            when = datetime.fromisoformat(capture_time.replace("Z", "+00:00"))
        except ValueError:
            raise ApiRefusal(400, f"capture_time: {capture_time!r} is not ISO 8601") from None
        if when.tzinfo is None:
            raise ApiRefusal(400, "capture_time: must carry a time zone (e.g. Z)")
        if when.timestamp() > now:
            raise ApiRefusal(400, "capture_time: must not be in the future")
    owner = groups.get(group)
    if owner is not None and owner != athlete:
        raise ApiRefusal(409, "session_group_id belongs to a different athlete")
    return {"athlete_id": athlete, "session_group_id": group, "file_name": name}


def throttle(rate: float) -> Callable[[int], None]:
    """A wait(n) that holds a stream of n-byte reads to `rate` bytes per second."""
    started = time.monotonic()
    total = 0

    def wait(n: int) -> None:
        nonlocal total
        total += n
        ahead = total / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)

    return wait
