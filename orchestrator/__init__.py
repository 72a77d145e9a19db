"""orch: place LLM deployments across clouds and on-prem, run them, and meter cost per token."""

__version__ = "0.1.0"
