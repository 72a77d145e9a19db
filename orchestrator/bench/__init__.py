"""`orch bench`: measure a live vLLM endpoint and turn the results into a performance profile."""
