"""`orch apply`: converge a plan onto providers (desired → diff → journaled changes → readiness)."""
