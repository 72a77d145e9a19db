"""The provider registry (issue 19 item 5): every kind is found by discovery, its settings model coerces and refuses
(the same model apply's targets build from and validate checks with), and each declared ability matches what the
provider does: checked on the calls it would make, offline, for every kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from containers.spec import ContainerSpec, Ingress
from orchestrator.apply.targets import Targets
from orchestrator.errors import SpecError, UserError
from orchestrator.spec.models import Providers
from providers import get_provider, registry
from providers.abilities import WithFirewall, WithMultiNode, WithOfferingsRefresh, WithSpot
from providers.base import Placement

REGIONS = {"aws": "aws:us-east-1", "gcp": "gcp:us-central1", "azure": "azure:eastus", "kubernetes": "onprem:site-a",
           "baremetal": "onprem:site-a", "local": "local:this-machine"}


def _offline(kind: str, tmp_path: Path) -> Any:
    """A provider of ``kind`` that can show its calls without credentials or hosts."""
    config: dict[str, dict[str, Any]] = {
        "aws": {"region": "us-east-1", "ami_id": "ami-1"},
        "gcp": {"project": "demo-proj", "zone": "us-central1-a"},
        "azure": {"subscription_id": "s", "resource_group": "rg", "location": "eastus", "key_vault": "kv",
                  "ssh_public_key": "ssh-ed25519 AAAA test", "subnet_id": "/subscriptions/s/resourceGroups/rg/"
                  "providers/Microsoft.Network/virtualNetworks/v/subnets/default"},
        "kubernetes": {"offline": True},
        "baremetal": {"hosts": ["ops@gpu-1"]},
        "local": {"state_dir": tmp_path / "local"},
    }
    return get_provider(kind, **config[kind])


def _spec(**kw: Any) -> ContainerSpec:
    return ContainerSpec(name="chat-0", image="vllm/vllm-openai:v0.32.0", args=["m", "--port", "8000"],
                         ports={"http": 8000}, gpus=1, gpu_type="A10G", shm_gb=16, **kw)


def _placement(kind: str, market: str = "on_demand") -> Placement:
    return Placement(project="acme", deployment="chat", plan_id="p1", replica="chat-g-0", region=REGIONS[kind],
                     instance_type="g5.xlarge", gpu="A10G", gpu_count=1, market=market)  # type: ignore[arg-type]


def test_every_provider_module_is_discovered() -> None:
    assert {"aws", "gcp", "azure", "kubernetes", "baremetal", "local"} <= set(registry.kinds())
    with pytest.raises(UserError, match="unknown provider 'nope'; known: aws"):
        get_provider("nope")


@pytest.mark.parametrize("kind", sorted(REGIONS))
def test_spot_and_firewall_as_declared(kind: str, tmp_path: Path) -> None:
    p = _offline(kind, tmp_path)
    plain = p.planned_calls(_spec(), _placement(kind))
    assert p.planned_calls(_spec(), _placement(kind)) == plain  # the comparison below means something
    spot = p.planned_calls(_spec(), _placement(kind, "spot"))
    assert (spot != plain) == registry.has(kind, WithSpot), "the market changes the calls only where spot is declared"
    fenced = p.planned_calls(_spec(ingress=[Ingress(8000, cidrs=("192.0.2.0/24",))]), _placement(kind))
    assert (fenced != plain) == registry.has(kind, WithFirewall), "ingress rules only where a firewall is declared"


def test_multi_node_and_offerings_as_declared(tmp_path: Path) -> None:
    from containers.vllm import LABEL_NODES

    multi = [k for k in REGIONS if registry.has(k, WithMultiNode)]
    assert multi == ["kubernetes"]
    calls = _offline("kubernetes", tmp_path).planned_calls(_spec(labels={LABEL_NODES: "2"}), _placement("kubernetes"))
    assert "LeaderWorkerSet" in [c["kind"] for c in calls]
    # a kind without live offerings has no offerings() at all (no [] meaning "cannot")
    for kind in REGIONS:
        assert hasattr(registry.provider_class(kind), "offerings") == registry.has(kind, WithOfferingsRefresh)
    assert not registry.has("kubernetes", WithOfferingsRefresh) and registry.has("aws", WithOfferingsRefresh)


def test_options_are_coerced_by_the_model_and_the_region_is_placed() -> None:
    file = Providers.model_validate({"aws": {"options": {"disk_gb": "300", "security_group_ids": "sg-1, sg-2"}}})
    target = Targets(file).get("aws", "aws:eu-west-1")
    p = target.provider
    assert (p.region, p.disk_gb, p.security_group_ids) == ("eu-west-1", 300, ["sg-1", "sg-2"])
    assert target.list_regions == ["eu-west-1"]


def test_bad_options_are_one_located_error_at_apply_and_placeholders_in_dry_runs() -> None:
    bad = Providers.model_validate({"aws": {"options": {"disk_gb": "big"}}})
    with pytest.raises(UserError, match=r"^providers\.aws\.options\.disk_gb: input should be a valid integer"):
        Targets(bad).get("aws", "aws:us-east-1")
    placed = Providers.model_validate({"aws": {"options": {"region": "us-west-2"}}})  # orch sets it from the plan
    with pytest.raises(UserError, match=r"providers\.aws\.options\.region: unknown setting 'region' for aws"):
        Targets(placed).get("aws", "aws:us-east-1")
    azure = Providers.model_validate({"azure": {"options": {"subscription_id": "s", "resource_group": "rg"}}})
    with pytest.raises(UserError, match=r"providers\.azure\.options\.key_vault is required to launch on azure"):
        Targets(azure).get("azure", "azure:eastus")
    assert Targets(azure, lenient=True).get("azure", "azure:eastus").provider.key_vault == \
        "<set providers.azure.options.key_vault>"


def test_validate_reads_the_same_model(tmp_path: Path) -> None:
    from orchestrator.spec.loader import load_spec

    path = tmp_path / "deploy.yaml"
    path.write_text("""\
version: 1
project: acme
deployments:
  - name: chat
    model: llama-3.1-8b
    traffic: {requests_per_second: 1, input_tokens: 500, output_tokens: 100}
    slo: {ttft_p95_ms: 5000, tpot_p95_ms: 200}
providers:
  gcp:
    regions: [us-central1]
    options: {project: p, zones: us-central1-a, disk_gb: lots, regoin: x}
""")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    found = {(p.path, p.line): p.message for p in err.value.problems}
    assert "valid integer" in found[("providers.gcp.options.disk_gb", 11)]
    unknown = found[("providers.gcp.options.regoin", 11)]
    assert unknown.endswith("expected one of " + ", ".join(registry.settings_model("gcp").options()))


def test_a_new_kind_is_one_registered_class() -> None:
    class TinySettings(registry.ProviderSettings):
        size: int = 1

    @registry.register
    class Tiny:
        name = kind = "test-tiny"
        Settings = TinySettings

        def __init__(self, settings: TinySettings, *, clock: Any = None) -> None:
            self.settings, self.clock = settings, clock

    try:
        p = get_provider("test-tiny", size="3", clock="c")
        assert (p.settings.size, p.clock) == (3, "c")
        assert "test-tiny" in registry.kinds() and registry.abilities("test-tiny") == []
    finally:
        registry._KINDS.pop("test-tiny", None)  # keep the registry clean for other tests
