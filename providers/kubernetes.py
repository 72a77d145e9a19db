"""Kubernetes provider: one replica = one Deployment (or LeaderWorkerSet) + Service, applied with the official client,
with the ConfigMap of its files and the NetworkPolicy of its ingress when it has them (a gateway has both; a replica
behind gateways has a NetworkPolicy). A gateway's endpoint is its Service's public port.

Errors: 401/403 -> AuthError, 404 -> NotFoundError, 409 on create -> the object exists: adopt it (patch),
429/5xx -> TransientError, retried with backoff. A pod that cannot schedule (no free GPUs) keeps the replica
pending; describe reports the scheduler's message in ``Handle.details["unschedulable"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from typing import Any, TypeVar

from pydantic import Field

from containers.labels import LABEL_NODES
from containers.render.kubernetes import INSTANCE_LABEL, ServiceType, render_kubernetes
from containers.render.kubernetes_lws import LWS_API_VERSION
from containers.render.kubernetes_nodes import CONVENTIONS, Convention
from containers.render.kubernetes_extra import config_map_name
from containers.spec import ContainerSpec
from orchestrator.errors import AuthError, NotFoundError, ProviderError, TransientError
from providers.abilities import WithFirewall, WithMultiNode
from providers.base import Handle, Placement
from providers.registry import ProviderSettings, create as build, register
from providers.retry import with_retries

T = TypeVar("T")
LWS_GROUP, LWS_VERSION = LWS_API_VERSION.split("/")
LWS_PLURAL = "leaderworkersets"
# Patch bodies are whole objects: strategic merge for built-in kinds, JSON merge patch for CRDs (no strategic merge).
STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
WORKLOADS = ("Deployment", "LeaderWorkerSet")


def _api_error(exc: Exception, what: str) -> ProviderError:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", "") or ""
    msg = f"kubernetes: {what}: {status} {reason}".strip()
    if status in (401, 403):
        return AuthError(f"{msg}; check the kubeconfig context and RBAC (orch needs apps/deployments, services, pods, configmaps, networking.k8s.io/networkpolicies)")
    if status == 404:
        return NotFoundError(msg)
    if status == 429 or (isinstance(status, int) and status >= 500) or status in (0, None):
        return TransientError(msg)
    return ProviderError(msg)


class KubernetesSettings(ProviderSettings):
    """One cluster: a kubeconfig context (else the default one, else in-cluster) and where orch deploys in it."""

    context: str | None = None
    namespace: str = "orch"
    convention: Convention = Field("nfd", description="how GPU nodes are labelled: " + ", ".join(CONVENTIONS))
    kubeconfig: str | None = None
    service_type: ServiceType = Field("ClusterIP", description="LoadBalancer exposes gateways outside the cluster "
                                      "(their allow list as source ranges)")
    offline: bool = Field(False, description="render manifests (dry runs) without a kubeconfig; any call fails")


@register
class KubernetesProvider(WithMultiNode, WithFirewall):
    name = kind = "kubernetes"
    Settings = KubernetesSettings

    def __init__(self, settings: KubernetesSettings | None = None, *, api_client: Any = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        s = settings or KubernetesSettings()
        self.service_type: ServiceType = s.service_type
        self.api_client = api_client if api_client is not None else _api_client(s)
        self.namespace = s.namespace
        self.convention: Convention = s.convention
        self._sleep = sleep

    # -- plumbing ---------------------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T], *, ok: tuple[int, ...] = ()) -> T | None:
        """Run one API call with retries; statuses in ``ok`` return None instead of raising."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        def attempt() -> T | None:
            try:
                return fn()
            except ApiException as exc:
                if exc.status in ok:
                    return None
                raise _api_error(exc, what) from None
            except HTTPError as exc:  # connection refused/reset: the API server may be restarting
                raise TransientError(f"kubernetes: {what}: {exc}") from None

        kwargs = {"sleep": self._sleep} if self._sleep else {}
        return with_retries(attempt, **kwargs)

    @property
    def _apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api_client)

    @property
    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api_client)

    @property
    def _networking(self) -> Any:
        from kubernetes import client

        return client.NetworkingV1Api(self.api_client)

    @property
    def _custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api_client)

    def _manifests(self, container: ContainerSpec, placement: Placement) -> list[dict[str, Any]]:
        spec = ContainerSpec(**{**container.__dict__, "labels": {**container.labels, **placement.labels()}})
        nodes = int(container.labels.get(LABEL_NODES, "1"))
        return render_kubernetes(spec, namespace=self.namespace, replicas=1, convention=self.convention,
                                 nodes_per_replica=nodes, service_type=self.service_type)

    def _apply(self, obj: dict[str, Any]) -> None:
        kind, name, ns = obj["kind"], obj["metadata"]["name"], self.namespace
        if kind == "Deployment":
            create = lambda: self._apps.create_namespaced_deployment(ns, obj)  # noqa: E731
            patch = lambda: self._apps.patch_namespaced_deployment(name, ns, obj, _content_type=STRATEGIC)  # noqa: E731
        elif kind == "Service":
            create = lambda: self._core.create_namespaced_service(ns, obj)  # noqa: E731
            patch = lambda: self._core.patch_namespaced_service(name, ns, obj, _content_type=STRATEGIC)  # noqa: E731
        elif kind == "ConfigMap":
            create = lambda: self._core.create_namespaced_config_map(ns, obj)  # noqa: E731
            patch = lambda: self._core.patch_namespaced_config_map(name, ns, obj, _content_type=STRATEGIC)  # noqa: E731
        elif kind == "NetworkPolicy":
            create = lambda: self._networking.create_namespaced_network_policy(ns, obj)  # noqa: E731
            patch = lambda: self._networking.patch_namespaced_network_policy(name, ns, obj, _content_type=STRATEGIC)  # noqa: E731
        elif kind == "LeaderWorkerSet":
            create = lambda: self._custom.create_namespaced_custom_object(LWS_GROUP, LWS_VERSION, ns, LWS_PLURAL, obj)  # noqa: E731
            patch = lambda: self._custom.patch_namespaced_custom_object(LWS_GROUP, LWS_VERSION, ns, LWS_PLURAL, name, obj, _content_type=MERGE)  # noqa: E731
        else:
            raise ValueError(f"cannot apply kind {kind}")
        created = self._call(f"create {kind} {ns}/{name}", create, ok=(409,))
        if created is None:  # 409: it exists (a previous run made it): adopt and bring it to the spec
            self._call(f"patch {kind} {ns}/{name}", patch)

    # -- protocol ----------------------------------------------------------------------------------------
    def planned_calls(self, container: ContainerSpec, placement: Placement) -> list[dict[str, Any]]:
        return [
            {"call": "create_or_patch", "kind": m["kind"], "namespace": self.namespace, "name": m["metadata"]["name"], "body": m}
            for m in self._manifests(container, placement)
        ]

    def launch(self, container: ContainerSpec, placement: Placement) -> Handle:
        manifests = self._manifests(container, placement)  # in apply order: the pod's files and policy first
        for obj in manifests:
            self._apply(obj)
        workload = next(m for m in manifests if m["kind"] in WORKLOADS)
        service = next((m for m in manifests if m["kind"] == "Service"), None)
        handle = self._handle_from(workload, placement.region, service=service)
        handle.launched_at = datetime.now(timezone.utc)
        return handle

    @staticmethod
    def _public_port(ports: list[dict[str, Any]], key: str) -> int | None:
        """The port named http (the endpoint's), else the first."""
        named = [p for p in ports if p.get("name") == "http"]
        return (named or ports or [{}])[0].get(key)

    def _handle_from(self, obj: dict[str, Any], region: str, service: dict[str, Any] | None = None) -> Handle:
        meta = obj["metadata"]
        containers = (
            obj["spec"]["template"]["spec"]["containers"]
            if obj["kind"] == "Deployment"
            else obj["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"]
        )
        if service is not None:
            ports, key = service["spec"].get("ports") or [], "port"
        else:  # every container's ports: a gateway's are on its edge sidecar
            ports, key = [p for c in containers for p in c.get("ports") or []], "containerPort"
        port = self._public_port(ports, key)
        handle = Handle(
            provider=self.name,
            id=meta["name"],
            region=region,
            state="pending",
            labels=dict(meta.get("labels") or {}),
            endpoint=f"http://{meta['name']}.{self.namespace}.svc.cluster.local:{port or 8000}",
            details={"kind": obj["kind"], "namespace": self.namespace},
        )
        control = [p[key] for p in ports if p.get("name") == "control"]
        if control:  # a gateway's control port (admin routes, metrics; with the admin key)
            handle.details["control_endpoint"] = f"http://{meta['name']}.{self.namespace}.svc.cluster.local:{control[0]}"
        return handle

    def _read(self, name: str) -> dict[str, Any] | None:
        """The Deployment or LeaderWorkerSet called ``name``, as a plain dict, or None."""
        dep = self._call(f"read Deployment {name}", lambda: self._apps.read_namespaced_deployment(name, self.namespace), ok=(404,))
        if dep is not None:
            return self.api_client.sanitize_for_serialization(dep)
        return self._call(
            f"read LeaderWorkerSet {name}",
            lambda: self._custom.get_namespaced_custom_object(LWS_GROUP, LWS_VERSION, self.namespace, LWS_PLURAL, name),
            ok=(404,),
        )

    def _unschedulable(self, name: str) -> list[str]:
        pods = self._call(
            f"list pods of {name}",
            lambda: self._core.list_namespaced_pod(self.namespace, label_selector=f"{INSTANCE_LABEL}={name}"),
            ok=(403, 404),
        )
        messages = []
        for pod in getattr(pods, "items", None) or []:
            for cond in (pod.status.conditions or []) if pod.status else []:
                if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == "Unschedulable":
                    messages.append(cond.message or "unschedulable")
        return messages

    def describe(self, handle_id: str, region: str) -> Handle:
        obj = self._read(handle_id)
        if obj is None:
            raise NotFoundError(f"kubernetes: {self.namespace}/{handle_id} not found")
        handle = self._handle_from(obj, region)
        want = (obj.get("spec") or {}).get("replicas", 1) or 0
        status = obj.get("status") or {}
        ready = status.get("readyReplicas", 0) or 0
        handle.details.update({"replicas": want, "ready_replicas": ready})
        created = (obj["metadata"].get("creationTimestamp"))
        if isinstance(created, str):
            handle.launched_at = datetime.fromisoformat(created.replace("Z", "+00:00"))
        if want == 0:
            handle.state = "stopped"
        elif ready >= want:
            handle.state = "running"
        else:
            handle.state = "pending"
            blocked = self._unschedulable(handle_id)
            if blocked:  # e.g. "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
                handle.details["unschedulable"] = blocked
        svc = self._call(f"read Service {handle_id}", lambda: self._core.read_namespaced_service(handle_id, self.namespace), ok=(404,))
        if svc is not None and svc.spec and svc.spec.ports:
            port = self._public_port([{"name": p.name, "port": p.port} for p in svc.spec.ports], "port")
            handle.endpoint = f"http://{handle_id}.{self.namespace}.svc.cluster.local:{port}"
            if svc.spec.cluster_ip and svc.spec.cluster_ip != "None":
                handle.details["cluster_ip"] = svc.spec.cluster_ip
        return handle

    def list(self, labels: dict[str, str], regions: list[str] | None = None) -> list[Handle]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        region = regions[0] if regions else f"kubernetes:{self.namespace}"
        deps = self._call("list Deployments", lambda: self._apps.list_namespaced_deployment(self.namespace, label_selector=selector))
        handles = [self._handle_from(self.api_client.sanitize_for_serialization(d), region) for d in deps.items]
        lws = self._call(
            "list LeaderWorkerSets",
            lambda: self._custom.list_namespaced_custom_object(LWS_GROUP, LWS_VERSION, self.namespace, LWS_PLURAL, label_selector=selector),
            ok=(404,),  # the LWS CRD is not installed: nothing of that kind
        )
        handles += [self._handle_from(o, region) for o in (lws or {}).get("items", [])]
        return handles

    def terminate(self, handle: Handle) -> None:
        """Delete the workload, its Service, then its ConfigMap and NetworkPolicy (the pods' protection goes last);
        each one already gone is skipped."""
        name, ns = handle.id, self.namespace
        self._call(f"delete Deployment {name}", lambda: self._apps.delete_namespaced_deployment(name, ns, _preload_content=False), ok=(404,))
        self._call(
            f"delete LeaderWorkerSet {name}",
            lambda: self._custom.delete_namespaced_custom_object(LWS_GROUP, LWS_VERSION, ns, LWS_PLURAL, name, _preload_content=False),
            ok=(404,),
        )
        self._call(f"delete Service {name}", lambda: self._core.delete_namespaced_service(name, ns, _preload_content=False), ok=(404,))
        files = config_map_name(name)
        self._call(f"delete ConfigMap {files}", lambda: self._core.delete_namespaced_config_map(files, ns, _preload_content=False), ok=(404,))
        self._call(
            f"delete NetworkPolicy {name}",
            lambda: self._networking.delete_namespaced_network_policy(name, ns, _preload_content=False),
            ok=(404,),
        )



def _api_client(s: KubernetesSettings) -> Any:
    """The kubeconfig's client (``context``), else the default context's, else in-cluster; a bare client offline."""
    from kubernetes import client, config

    if s.offline:
        return client.ApiClient()
    try:
        if s.kubeconfig or s.context:
            return config.new_client_from_config(config_file=s.kubeconfig, context=s.context)
        try:
            return config.new_client_from_config()
        except config.ConfigException:
            config.load_incluster_config()
            return client.ApiClient()
    except config.ConfigException as exc:
        raise AuthError(f"kubernetes: no usable kubeconfig ({exc}); set KUBECONFIG or the site's kube_context") from None


create = partial(build, "kubernetes")  # settings (KubernetesSettings) and wiring (api_client, sleep)
