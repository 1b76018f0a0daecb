"""The instant-pickup decision (watch/pickup.py) as properties: a file goes before settle only
when its writer closed it, in a watch with change events, unchanged while read, and its movie
is complete; everything else waits (for the next close or settle), and nothing fails here."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daemon.watch.pickup import Movie, Now, PickupFacts, Wait, decide, movie_state

facts = st.builds(PickupFacts, events=st.booleans(), closed=st.booleans(),
                  movie=st.sampled_from(Movie), steady=st.booleans(), why=st.text())


@given(facts)
def test_now_exactly_when_closed_complete_and_steady_with_events(f: PickupFacts) -> None:
    verdict = decide(f)
    assert isinstance(verdict, Now | Wait)
    go = f.events and f.closed and f.steady and f.movie is Movie.COMPLETE
    assert isinstance(verdict, Now) == go
    if isinstance(verdict, Wait):
        assert verdict.reason  # a reason for the debug log, never empty


@given(facts)
def test_any_missing_condition_waits(f: PickupFacts) -> None:
    for weaker in (PickupFacts(False, f.closed, f.movie, f.steady),
                   PickupFacts(f.events, False, f.movie, f.steady),
                   PickupFacts(f.events, f.closed, f.movie, False)):
        assert isinstance(decide(weaker), Wait)


@given(st.text())
def test_movie_state_of_any_reason(reason: str) -> None:
    state = movie_state(reason)
    assert state is not Movie.COMPLETE  # any NotAMovie message means not complete
    assert (state is Movie.INCOMPLETE) == ("incomplete" in reason)
    assert movie_state(None) is Movie.COMPLETE
    assert movie_state(reason, unreadable=True) is Movie.UNREADABLE
