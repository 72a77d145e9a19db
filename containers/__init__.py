"""Containers: one ContainerSpec per replica, built for vLLM and rendered for each kind of target.
Containers know nothing of clouds: renderers produce text/objects, providers decide where they run."""
