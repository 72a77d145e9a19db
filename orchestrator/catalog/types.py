"""Plain records the catalog hands to the rest of orch. Every figure carries its source and date."""

from __future__ import annotations

from dataclasses import dataclass

HOURS_PER_MONTH = 730.0  # $/h -> $/month everywhere (8,760 h / 12)
ONPREM_PROVIDERS = ("onprem", "local")  # capacity the user owns: priced and sized by the deployment file, not a catalog
MARKETS = ("on_demand", "spot", "onprem")  # how an offering is bought
ON_DEMAND, SPOT = MARKETS[0], MARKETS[1]  # the markets by name (the solver compares with these, not with literals)


@dataclass(frozen=True)
class GPU:
    name: str  # canonical: T4, A10G, L4, L40S, A100-40GB, A100-80GB, H100, H100-PCIe, H200, B200, MI300X
    vendor: str  # nvidia | amd
    family: str  # turing, ampere, ada, hopper, blackwell, cdna3: calibration is per family
    memory_gb: float
    bandwidth_tbps: float  # HBM/GDDR bandwidth, TB/s
    bf16_tflops: float  # dense
    fp8_tflops: float | None  # dense; None = no FP8 tensor cores
    int8_tops: float | None  # dense
    tdp_w: float
    nvlink: bool  # GPU-to-GPU link inside a node: NVLink/Infinity Fabric (True) or PCIe (False)
    link_gbps: float  # GPU-to-GPU bandwidth per GPU, GB/s, one direction
    source: str
    as_of: str  # ISO date
    compute_capability: float | None = None  # CUDA major.minor (AMD: vLLM's gfx-derived one); None for the CPU


@dataclass(frozen=True)
class Offering:
    """One way to rent (or own) GPUs: an instance type in a region.

    Prices are per instance-hour, after the user's discount and custom prices apply.
    On-prem sites appear as offerings with provider "onprem", one per GPU type per site,
    priced at marginal cost, with their inventory in ``max_gpus``.
    """

    provider: str  # aws | gcp | azure | onprem
    region: str  # provider-qualified: aws:us-east-1, onprem:dc-frankfurt
    instance_type: str
    gpu: str  # canonical GPU name
    gpu_count: int
    vcpus: int
    memory_gb: float
    usd_per_hour: float  # on-demand (or on-prem marginal) price per instance-hour, effective
    spot_usd_per_hour: float | None  # None where no spot market
    source: str
    as_of: str
    list_usd_per_hour: float | None = None  # before discount, for reports (list vs effective)
    max_gpus: int | None = None  # on-prem inventory; clouds use quotas instead

    @property
    def usd_per_gpu_hour(self) -> float:
        return self.usd_per_hour / self.gpu_count


@dataclass(frozen=True)
class Region:
    id: str  # provider-qualified
    provider: str
    name: str  # provider's own name: us-east-1
    location: str  # human label: N. Virginia
    continent: str  # na | sa | eu | asia | oc | me | af
    lat: float
    lon: float
    carbon_g_per_kwh: float  # grid carbon intensity
    source: str
    as_of: str
