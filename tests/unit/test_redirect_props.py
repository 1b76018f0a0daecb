"""Issue 19 item 2: a 3xx answer to the upload means "stored" only when it is the
success_action_redirect the signed fields asked for (with the bucket, key and etag S3 appends);
any other redirect stored nothing and is a bounded storage refusal, never `done`."""

from __future__ import annotations

from urllib.parse import urlencode

from hypothesis import assume, given
from hypothesis import strategies as st

from daemon.errors import (
    MAX_REFUSALS,
    Kind,
    Outcome,
    TransferError,
    Where,
    after_refusal,
    decide,
)
from daemon.net.redirect import redirect_stored
from daemon.sandbox.s3post import redirect_location

WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
HOST = st.builds(lambda a, b: f"{a}.{b}", WORD, st.sampled_from(["com", "org", "invalid"]))
PATH = st.lists(WORD, max_size=3).map(lambda parts: "/" + "/".join(parts))
QUERY = st.lists(st.tuples(WORD, st.text(max_size=10)), max_size=3)
URL = st.builds(lambda scheme, host, path, query: f"{scheme}://{host}{path}" + (
    "?" + urlencode(query) if query else ""),
    st.sampled_from(["http", "https"]), HOST, PATH, QUERY)
KEY = st.builds(lambda a, b: f"captures/{a}/{b}.mov", WORD, WORD)
ETAG = st.from_regex(r'"[0-9a-f]{32}"', fullmatch=True)
REDIRECT_STATUS = st.integers(300, 399)


@given(URL, st.text(max_size=60), KEY)
def test_without_a_success_action_redirect_no_redirect_is_stored(
        location: str, noise: str, key: str) -> None:
    fields = {"key": key, "Content-Type": "video/quicktime", "policy": "p"}
    assert not redirect_stored(location, fields)
    assert not redirect_stored(noise, fields)
    assert not redirect_stored(None, fields)


@given(URL, st.sampled_from(["b", "uplift-sandbox"]), KEY, ETAG)
def test_the_asked_for_url_with_what_s3_appends_is_stored(url: str, bucket: str, key: str,
                                                          etag: str) -> None:
    fields = {"key": key, "success_action_redirect": url}
    assert redirect_stored(redirect_location(url, bucket, key, etag), fields)
    # Names are case-insensitive; scheme and host are compared as a browser would.
    scheme, rest = url.split("://", 1)
    host, _, tail = rest.partition("/")
    loud = f"{scheme.upper()}://{host.upper()}/{tail}"
    assert redirect_stored(redirect_location(loud, bucket, key, etag),
                           {"Success_Action_Redirect": url})


@given(URL, URL, KEY, ETAG)
def test_a_location_elsewhere_is_never_stored(url: str, other: str, key: str,
                                              etag: str) -> None:
    assume(other.split("?")[0].rstrip("/") != url.split("?")[0].rstrip("/"))
    fields = {"key": key, "success_action_redirect": url}
    assert not redirect_stored(redirect_location(other, "b", key, etag), fields)
    assert not redirect_stored(other, fields)


@given(URL, KEY, ETAG, WORD, st.text(max_size=8))
def test_a_parameter_s3_never_adds_is_not_stored(url: str, key: str, etag: str, name: str,
                                                 value: str) -> None:
    assume(name not in ("bucket", "key", "etag"))
    fields = {"key": key, "success_action_redirect": url}
    location = redirect_location(url, "b", key, etag) + "&" + urlencode({name: value})
    assert not redirect_stored(location, fields)


@given(st.sampled_from(["http://a.example/ok?x=1&y=2", "https://a.example/done?x=1"]), KEY,
       ETAG)
def test_the_redirect_s_own_query_must_be_kept(url: str, key: str, etag: str) -> None:
    fields = {"key": key, "success_action_redirect": url}
    bare = url.split("?")[0]
    assert not redirect_stored(redirect_location(bare, "b", key, etag), fields)
    assert redirect_stored(redirect_location(url, "b", key, etag), fields)


@given(REDIRECT_STATUS, st.none() | st.sampled_from(["TemporaryRedirect", "PermanentRedirect"]),
       st.integers(1, 20), st.floats(0, 1), st.booleans())
def test_a_redirect_that_stored_nothing_is_a_refusal(status: int, code: str | None,
                                                     attempt: int, jitter: float,
                                                     lapsed: bool) -> None:
    err = TransferError(Where.STORAGE, Kind.HTTP, f"HTTP {status}: nothing was stored",
                        status=status, code=code)
    d = decide(err, attempt, lambda: jitter, lapsed=lapsed)
    assert d.outcome is Outcome.REFUSED and str(status) in d.reason


@given(REDIRECT_STATUS, st.integers(1, 12), st.floats(0, 1))
def test_refused_redirects_get_a_fresh_reservation_then_backoff_then_a_person(
        status: int, attempt: int, jitter: float) -> None:
    err = TransferError(Where.STORAGE, Kind.HTTP,
                        f"HTTP {status} TemporaryRedirect: nothing was stored",
                        status=status, code="TemporaryRedirect")
    outcomes = [after_refusal(n, err, attempt, lambda: jitter) for n in range(1, 8)]
    assert outcomes[0].outcome is Outcome.RERESERVE
    assert all(d.outcome is Outcome.RETRY and d.delay > 0 for d in outcomes[1:MAX_REFUSALS - 1])
    for d in outcomes[MAX_REFUSALS - 1:]:
        assert d.outcome is Outcome.FAIL
        assert f"HTTP {status} TemporaryRedirect" in d.reason and "refused" in d.reason
