"""orch's state: what apply created, its journal and the per-project lock (SQLAlchemy + Alembic).

Import ``orchestrator.state.db`` only when a command runs: SQLAlchemy is not on the CLI start-up path.
"""
