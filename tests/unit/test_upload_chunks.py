"""The upload's send size: grows while the link takes chunks quickly, shrinks when one send
takes long (a slow link must not hold one send for tens of seconds), within its bounds."""

from daemon.net.upload import CHUNK, FIRST_CHUNK, _next_chunk, chunk_for_rate


def test_quick_sends_grow_to_the_most() -> None:
    chunk = FIRST_CHUNK
    for _ in range(10):
        chunk = _next_chunk(chunk, 0.001, CHUNK)
    assert chunk == CHUNK


def test_slow_sends_shrink_but_not_below_the_first_size() -> None:
    chunk = CHUNK
    sizes = []
    for _ in range(10):
        chunk = _next_chunk(chunk, 2.0, CHUNK)
        sizes.append(chunk)
    assert sizes[0] == CHUNK // 2
    assert chunk == FIRST_CHUNK


def test_a_steady_send_keeps_its_size() -> None:
    assert _next_chunk(512 * 1024, 0.2, CHUNK) == 512 * 1024


def test_a_bandwidth_limit_caps_the_size() -> None:
    """Under a limit the uploader's most is small: never grown past it, nor shrunk below it."""
    most = 128 * 1024
    assert _next_chunk(most, 0.001, most) == most
    assert _next_chunk(most, 5.0, most) == most


def test_a_bandwidth_limit_sets_the_most_one_send_carries() -> None:
    """About eight sends a second under a limit, never below 64 KiB; no limit: CHUNK."""
    assert chunk_for_rate(0) == CHUNK
    assert chunk_for_rate(8 * 256 * 1024) == 256 * 1024
    assert chunk_for_rate(1000) == 64 * 1024
    assert chunk_for_rate(10**12) == CHUNK
    assert chunk_for_rate(0, 128 * 1024) == 128 * 1024
