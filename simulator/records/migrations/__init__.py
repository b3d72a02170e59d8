"""Alembic migrations of the attempt store (run by ``Store.open``; see ``env.py``)."""
