from __future__ import annotations

from daemon import logs


def test_redaction_masks_secret_keys_and_registered_values() -> None:
    logs.add_secret("tok-1234567890")
    event = logs.redact(None, "info", {
        "event": "x", "token": "abc", "upload_fields": {"policy": "p"},
        "reason": "HTTP 401 for Bearer tok-1234567890",
        "nested": {"policy": "eyJ...", "ok": ["tok-1234567890", 3]},
    })
    assert event["token"] == event["upload_fields"] == logs.REDACTED
    assert "tok-1234567890" not in str(event)
    assert event["nested"]["policy"] == logs.REDACTED
    assert event["nested"]["ok"][1] == 3
