"""Watching: observers (observers.py), the settle queue (settle.py), the pure decisions
(classify.py, pickup.py) and the intake that ties them to the job table (intake.py: Watcher)."""
