"""Watching: observers (observers.py), the settle queue (settle.py), the pure decisions
(classify.py) and the intake that ties them to the job table (intake.py)."""

from daemon.watch.intake import Watcher

__all__ = ["Watcher"]
