"""The job table: models (what a job is) and store (the one module that talks to the DB)."""
