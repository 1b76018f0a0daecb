"""Following uploaded captures through Uplift's processing: a pure schedule (schedule.py), the
follower thread (follower.py) and what a look found (results.py)."""
