"""Renderers: one ContainerSpec into what each target runs (Kubernetes objects, a VM startup script,
a `docker run` argv, a local process)."""
