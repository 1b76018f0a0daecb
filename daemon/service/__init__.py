"""The running service: lifecycle (startup, main loop, shutdown), supervision, runtime state,
attention, the operator's pause. `lifecycle.Service` is the entry point."""
