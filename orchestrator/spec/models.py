"""pydantic models of the deployment file (design.md, "The deployment file").

Structural rules live here; rules that need the catalog or model registry (unknown models,
regions, GPU types, SLOs no hardware meets) live in ``orchestrator.spec.checks``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

Quantization = Literal["bf16", "fp16", "fp8", "int8", "int4"]
SpotRule = Literal["forbid", "allow", "prefer"]
REGION_ID = r"^[a-z][a-z0-9-]*:[A-Za-z0-9._-]+$"  # provider-qualified: aws:us-east-1
NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"  # a DNS label: it becomes tags and k8s names


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TrafficSource(Strict):
    """Where a share of the users are."""

    region: str = Field(pattern=REGION_ID, description="provider-qualified region, e.g. aws:us-east-1")
    share: float = Field(gt=0, le=1)


class Traffic(Strict):
    requests_per_second: float = Field(gt=0)
    input_tokens: int = Field(gt=0, description="mean prompt length, tokens")
    output_tokens: int = Field(gt=0, description="mean completion length, tokens")
    sources: list[TrafficSource] = Field(
        default_factory=list, description="user regions and their shares (must sum to 1); empty: users near the data"
    )
    headroom: float = Field(0.2, ge=0, le=10, description="capacity planned above the demand, as a fraction")


class SLO(Strict):
    ttft_p95_ms: float = Field(gt=0, description="time to first token, p95, ms, including the network round trip")
    tpot_p95_ms: float = Field(gt=0, description="time per output token, p95, ms")


class DataSource(Strict):
    uri: str | None = None
    region: str = Field(pattern=REGION_ID)
    gb_per_month: float = Field(ge=0, description="GB the deployment reads from this source each month")


class Checkpoint(Strict):
    """The deployment's own weights (a fine-tune of ``model:``, which says the architecture). Moving them to each
    serving region is priced like data egress (orchestrator/placement/inputs.py)."""

    uri: str = Field(min_length=1, description="s3://bucket/path, gs://bucket/path, "
                     "https://ACCOUNT.blob.core.windows.net/CONTAINER/path, or a directory (absolute, or relative to "
                     "this file) on the serving hosts")
    region: str | None = Field(None, pattern=REGION_ID, description="where the weights live (aws:us-east-1, "
                               "onprem:dc-frankfurt, local:this-machine); required for object storage")
    size_gb: float | None = Field(None, gt=0, description="size of the weights, GB; default: the base model's at bf16")
    tokenizer: str | None = Field(None, min_length=1, description="omitted: the checkpoint's own tokenizer files; "
                                  "'base': the base model's; or a Hugging Face id or path")


LORA_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # what clients send as the request's model


class LoraAdapter(Strict):
    """One LoRA adapter (PEFT format: adapter_config.json + adapter_model.safetensors) on the deployment's model."""

    name: str = Field(pattern=LORA_NAME, description="clients call the adapter by this name (the request's model)")
    uri: str = Field(min_length=1, description="s3://, gs://, an Azure blob URL, or a directory (absolute, or "
                     "relative to this file)")
    rank: int | None = Field(None, ge=1, le=512, description="LoRA rank r; omitted: read from a local "
                             "adapter_config.json (required for object storage)")
    region: str | None = Field(None, pattern=REGION_ID, description="where the adapter lives; required for "
                               "object storage (its copy to each serving region is priced as egress)")


class Lora(Strict):
    """Many LoRA adapters served by one deployment on its base model (vLLM --enable-lora)."""

    adapters: list[LoraAdapter] = Field(min_length=1)
    max_loras: int | None = Field(None, ge=1, le=256, description="adapters one batch may mix (vLLM --max-loras; "
                                  "GPU memory is reserved for this many at the largest rank); default: all of them")
    max_rank: int | None = Field(None, ge=1, le=512, description="default: the largest adapter rank, rounded up to "
                                 "a rank vLLM allows (1, 8, 16, 32, 64, 128, 256, 320, 512)")


GatewayPolicy = Literal["cache_aware", "round_robin", "random", "consistent_hash"]
CIDR = r"^[0-9a-fA-F:.]+/[0-9]{1,3}$"


class Gateway(Strict):
    """The deployment's endpoint: vllm-router behind an edge that checks the API key (containers/gateway.py)."""

    enabled: bool = Field(True, description="false: no gateway; replicas are still reachable only with the key")
    port: int = Field(8080, gt=0, lt=65533, description="the endpoint's port; the gateway also uses port+1..port+3")
    policy: GatewayPolicy = Field(
        "cache_aware", description="vllm-router's balancing policy (power_of_two needs two workers at start: "
        "orch starts the router before its replicas are ready, so it is not offered)")
    allow_cidrs: list[str] = Field(
        default_factory=list, description="networks that may call the endpoint, beyond the gateway's own network "
        "(default: none; 0.0.0.0/0 for the internet)")
    control_cidrs: list[str] = Field(
        default_factory=list, description="networks orch runs from: they may reach the gateway's control port "
        "(worker routes, with the admin key). Needed on clouds when orch runs outside the gateway's network")

    @field_validator("allow_cidrs", "control_cidrs")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        import ipaddress

        for c in v:
            try:
                ipaddress.ip_network(c, strict=False)
            except ValueError:
                raise ValueError(f"expected CIDRs such as 10.0.0.0/16; {c!r} is not one") from None
        return v


class Autoscale(Strict):
    """Replicas follow the load: capacity at the SLO (measured profile, else the performance model) is kept
    near ``target_utilization``; `orch autoscale FILE` runs the loop."""

    min_replicas: int = Field(1, ge=1, description="never fewer (nor below the spot policy's on-demand floor)")
    max_replicas: int = Field(ge=1, description="never more")
    target_utilization: float = Field(
        0.7, gt=0, le=1, description="of each replica's capacity at the SLO, in (0, 1]: scale out above it")
    scale_out_after_s: float = Field(30, ge=0, description="load above target for this long before adding")
    scale_in_after_s: float = Field(300, ge=0, description="load low enough for one replica less for this long")
    cooldown_s: float = Field(120, ge=0, description="after a change, no other change for this long")
    drain_timeout_s: float = Field(120, ge=0, description="a removed replica finishes its requests for at most this")

    @field_validator("max_replicas")
    @classmethod
    def _max_at_least_min(cls, v: int, info: ValidationInfo) -> int:
        low = info.data.get("min_replicas")
        if low is not None and v < low:
            raise ValueError(f"expected max_replicas >= min_replicas ({low})")
        return v


class Deployment(Strict):
    name: str = Field(pattern=NAME)
    model: str = Field(min_length=1, description="registry name or alias, or a path to a Hugging Face config.json")
    quantization: list[Quantization] = Field(default_factory=lambda: ["bf16"], min_length=1)
    kv_cache_dtype: Literal["auto", "fp8"] = "auto"
    max_model_len: int | None = Field(None, gt=0)
    traffic: Traffic
    slo: SLO
    data: list[DataSource] = Field(default_factory=list)
    spot: SpotRule = "forbid"
    team: str | None = None
    policies: list[str] = Field(default_factory=list, description="names of policies defined under policies:")
    gateway: Gateway = Field(default_factory=Gateway, description="the endpoint users call")
    autoscale: Autoscale | None = Field(None, description="replicas follow the load (orch autoscale)")
    checkpoint: Checkpoint | None = Field(None, description="your own weights of model's architecture (a fine-tune)")
    lora: Lora | None = Field(None, description="LoRA adapters served on the model; clients call each by its name")

    @field_validator("quantization", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v


class Quota(Strict):
    """At most max_gpus GPUs (of one type, in one region, or both) for a provider."""

    max_gpus: int = Field(ge=0)
    region: str | None = Field(None, description="region name within the provider, e.g. us-east-1; omitted: all")
    gpu: str | None = Field(None, description="GPU type, e.g. H100; omitted: all")


class CustomPrice(Strict):
    """A negotiated or private price that replaces the list price for an instance type."""

    instance_type: str
    region: str | None = Field(None, description="region name within the provider; omitted: every region")
    usd_per_hour: float = Field(ge=0)
    spot_usd_per_hour: float | None = Field(None, ge=0)


class CloudProvider(Strict):
    regions: list[str] | None = Field(None, description="regions orch may use; omitted: every region in the catalog")
    discount: float = Field(0.0, ge=0, lt=1, description="negotiated discount off on-demand list prices")
    quotas: list[Quota] = Field(default_factory=list)
    prices: list[CustomPrice] = Field(default_factory=list)
    options: dict[str, str] = Field(
        default_factory=dict,
        description="provider settings for apply: aws ami_id/subnet_id/key_name; gcp project/zone; "
        "azure subscription_id/resource_group/subnet_id. Never secrets: credentials come from each SDK's chain",
    )


class SiteCost(Strict):
    amortized_usd_per_gpu_hour: float = Field(
        0.0, ge=0, description="hardware amortization; counted when declared (owned hardware is otherwise sunk)"
    )
    power_usd_per_kwh: float = Field(ge=0)
    pue: float = Field(1.3, ge=1, le=3)


class OnPremSite(Strict):
    name: str = Field(pattern=NAME)
    location: str = Field(description="a catalog region id (aws:eu-central-1) or a metro label (eu-central)")
    gpus: dict[str, int] = Field(description="GPU type -> count, e.g. {H100: 16}")
    gpus_per_node: int = Field(8, gt=0)
    cost: SiteCost
    carbon_g_per_kwh: float | None = Field(None, ge=0, description="grid intensity; omitted: the location's")
    hosts: list[str] = Field(default_factory=list, description="baremetal: ssh targets, user@host[:port]")
    kube_context: str | None = Field(None, description="kubernetes: kubeconfig context of the site's cluster")
    namespace: str = Field("orch", description="kubernetes: namespace orch deploys into")
    gateway_service: Literal["ClusterIP", "LoadBalancer"] = Field(
        "ClusterIP", description="kubernetes: how gateways are exposed; LoadBalancer reaches outside the cluster, "
        "limited to the gateway's allow_cidrs and control_cidrs")

    @field_validator("gpus")
    @classmethod
    def _non_negative(cls, v: dict[str, int]) -> dict[str, int]:
        for gpu, n in v.items():
            if n < 0:
                raise ValueError(f"GPU count for {gpu} must be >= 0, found {n}")
        return v


class OnPrem(Strict):
    kind: Literal["baremetal", "kubernetes"] = "baremetal"
    sites: list[OnPremSite] = Field(min_length=1)


class LocalProvider(Strict):
    """This machine: vLLM runs as a local process (CPU or local GPUs). How a user tries orch on a laptop."""

    python: str | None = Field(None, description="python with vLLM installed; default $ORCH_VLLM_PYTHON, else python3")
    host: str = "127.0.0.1"
    port: int = Field(8000, gt=0, lt=65536)
    extra_args: list[str] = Field(default_factory=list, description="extra vLLM flags, e.g. [--max-num-seqs, '8']")
    usd_per_hour: float = Field(
        0.0, ge=0, description="what an hour of one vLLM process on this machine costs you (power, amortization): "
        "reports price tokens with it"
    )
    replicas: int = Field(1, ge=1, le=64, description="how many vLLM processes this machine may run at once "
                          "(each takes VLLM_CPU_KVCACHE_SPACE, 1 GiB, of KV cache on the CPU backend)")


class GpuCloud(CloudProvider):
    """A GPU cloud (Lambda, RunPod, Nebius, CoreWeave, Vultr): priced from the catalog, launched through orch's
    kubernetes provider (its managed Kubernetes) or baremetal provider (SSH to its instances)."""

    kind: Literal["baremetal", "kubernetes"] = Field(description="how orch launches there: kubernetes (the cloud's "
                                                     "managed Kubernetes) or baremetal (ssh to instances you rent)")
    hosts: list[str] = Field(default_factory=list, description="baremetal: ssh targets, user@host[:port]")
    kube_context: str | None = Field(None, description="kubernetes: kubeconfig context of the cluster")
    namespace: str = Field("orch", description="kubernetes: namespace orch deploys into")
    gateway_service: Literal["ClusterIP", "LoadBalancer"] = Field(
        "ClusterIP", description="kubernetes: how gateways are exposed")


class Providers(Strict):
    """Which providers orch may use. Omit the whole section to allow AWS, GCP and Azure (every cloud in the catalog
    but the GPU clouds, which launch with settings the file gives)."""

    aws: CloudProvider | None = None
    gcp: CloudProvider | None = None
    azure: CloudProvider | None = None
    lambdalabs: GpuCloud | None = None
    runpod: GpuCloud | None = None
    nebius: GpuCloud | None = None
    coreweave: GpuCloud | None = None
    vultr: GpuCloud | None = None
    onprem: OnPrem | None = None
    local: LocalProvider | None = None


class PolicyRef(BaseModel):
    """A named policy: ``kind`` picks the policy in policies/, the other keys are its parameters."""

    model_config = ConfigDict(extra="allow")
    kind: str


class Budget(Strict):
    monthly_usd: float = Field(gt=0)


class DeploymentFile(Strict):
    version: Literal[1] = 1
    project: str = Field(pattern=NAME)
    deployments: list[Deployment] = Field(min_length=1)
    providers: Providers | None = None
    policies: dict[str, PolicyRef] = Field(default_factory=dict)
    budget: Budget | None = None
