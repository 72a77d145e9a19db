"""The catalog: GPUs, offerings (provider x region x instance type x market), regions, egress tariffs."""
