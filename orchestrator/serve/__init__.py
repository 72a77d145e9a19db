"""Serving: each deployment's gateway (its admin client and keys), worker registration and draining, and the
autoscaler that follows the load (decide: pure rules; loop: metrics -> decision -> a plan apply converges)."""
