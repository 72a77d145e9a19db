"""Metering: scrape vLLM /metrics, roll samples into per-replica hourly usage, keep it in state."""
