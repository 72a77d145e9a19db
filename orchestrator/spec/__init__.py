"""The deployment file: pydantic models, a YAML loader that keeps line numbers, and semantic checks."""
