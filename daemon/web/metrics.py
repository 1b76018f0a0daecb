"""Prometheus metrics on the daemon's own registry (never the process-global one). Counters move
when the worker reports; gauges that mirror the job table are read only when scraped, so an
unwatched daemon does no metrics work at all. No per-file labels: cardinality stays fixed."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import daemon

PREFIX = "uplift_capture"
OUTCOMES = ("done", "failed", "retry", "lapsed", "interrupted")
ANALYSIS = ("completed", "error", "gone", "unknown")  # a followed capture's final statuses
# Upload times of capture clips: seconds for a short swing, an hour for a long session on a
# slow link.
DURATION_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

# The *_created series only double every counter in the scrape; this process has no other
# prometheus-client user to keep them for.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _TableCollector(Collector):
    def __init__(self, counts: Callable[[], Mapping[str, int]] | None,
                 paused: Callable[[], bool] | None):
        self.counts, self.paused = counts, paused
        self.following: Callable[[], int] | None = None

    def collect(self) -> Iterator[Metric]:
        if self.counts is not None:
            jobs = GaugeMetricFamily(f"{PREFIX}_jobs", "Jobs in the job table, per state.",
                                     labels=["state"])
            for state, n in self.counts().items():
                jobs.add_metric([state], n)
            yield jobs
        if self.paused is not None:
            yield GaugeMetricFamily(f"{PREFIX}_paused",
                                    "1 while an operator has paused uploads, else 0.",
                                    value=1.0 if self.paused() else 0.0)
        if self.following is not None:
            yield GaugeMetricFamily(f"{PREFIX}_analysis_following", "Uploaded captures "
                                    "followed until Uplift has analysed them.",
                                    value=float(self.following()))

    def describe(self) -> Iterator[Metric]:
        return iter(())  # read lazily: registering must not query the database


class Metrics:
    """What the worker reports (reserved(), upload_finished()) plus, on scrape, the job table's
    counts and the pause flag from the given callables."""

    def __init__(self, counts: Callable[[], Mapping[str, int]] | None = None,
                 paused: Callable[[], bool] | None = None, version: str = daemon.__version__):
        self.registry = CollectorRegistry(auto_describe=False)
        self._table = _TableCollector(counts, paused)
        self.registry.register(self._table)
        r = self.registry
        self.bytes = Counter(f"{PREFIX}_uploaded_bytes", "Bytes accepted by the storage "
                             "endpoint.", registry=r)
        self.uploads = Counter(f"{PREFIX}_uploads", "Upload attempts that ended, per outcome.",
                               ["outcome"], registry=r)
        for outcome in OUTCOMES:
            self.uploads.labels(outcome)  # present at 0 from the start: rate() needs a base
        self.reservations = Counter(f"{PREFIX}_reservations", "Captures reserved with the "
                                    "API.", registry=r)
        self.duration = Histogram(f"{PREFIX}_upload_duration_seconds", "Time an upload attempt "
                                  "took.", buckets=DURATION_BUCKETS, registry=r)
        self.last_upload = Gauge(f"{PREFIX}_last_upload_timestamp_seconds", "When the last "
                                 "upload was accepted (Unix time); 0 if none yet.", registry=r)
        self.analysis = Counter(f"{PREFIX}_analysis_results", "Followed captures "
                                "that reached a final analysis status, per status.",
                                ["status"], registry=r)
        for status in ANALYSIS:
            self.analysis.labels(status)
        self.build = Gauge(f"{PREFIX}_build_info", "The running version.", ["version"],
                           registry=r)
        self.build.labels(version).set(1)

    def bind(self, counts: Callable[[], Mapping[str, int]] | None = None,
             paused: Callable[[], bool] | None = None,
             following: Callable[[], int] | None = None) -> None:
        """Set the scrape-time sources once the store exists."""
        if following is not None:
            self._table.following = following
        if counts is not None:
            self._table.counts = counts
        if paused is not None:
            self._table.paused = paused

    # ---- the worker's calls (any thread) -------------------------------------------------

    def reserved(self) -> None:
        self.reservations.inc()

    def upload_finished(self, outcome: str, nbytes: int, seconds: float, at: float) -> None:
        """One upload attempt ended. `nbytes` counts only when the endpoint accepted it;
        `at` is the wall-clock time it ended."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown upload outcome {outcome!r}; expected one of {OUTCOMES}")
        self.uploads.labels(outcome).inc()
        self.duration.observe(max(seconds, 0.0))
        if outcome == "done":
            self.bytes.inc(max(nbytes, 0))
            self.last_upload.set(at)

    def analysed(self, status: str) -> None:
        """A followed capture reached a final status."""
        if status in ANALYSIS:
            self.analysis.labels(status).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

