"""The `orch` command line. Each command lives in its own module with a ``register(app)`` function;
heavy imports (numpy, highspy, cloud SDKs) happen inside the commands, so `orch --help` stays fast."""
