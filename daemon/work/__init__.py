"""Working: the dispatcher (upload slots and reserve-ahead), the per-job pipeline, the shared
reservation state, the outcome table, the gate with upload hours and the timetable.
`worker.Worker` puts them together for the service."""
