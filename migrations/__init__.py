"""Alembic environment; installed as daemon.migrations."""
