"""one-gpu-type: a deployment's replicas all on one accelerator type, the type the objective prefers."""

from __future__ import annotations

from pathlib import Path

import yaml

from orchestrator.placement import place
from orchestrator.spec.loader import load_spec

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "multi-region.yaml"


def _plan(tmp_path: Path, name: str, edit) -> dict:  # noqa: ANN001
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["deployments"] = [d for d in doc["deployments"] if d["name"] == "batch-summaries"]
    edit(doc)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    plan = place(load_spec(path), with_fallbacks=False)
    assert plan.status == "optimal", plan.messages
    return plan.deployments[0]


def test_one_type_is_the_best_single_type_and_never_a_mix(tmp_path: Path) -> None:
    free = _plan(tmp_path, "free", lambda doc: None)
    assert {g.gpu for g in free.replicas} == {"L4", "L40S"}  # mixed when nothing forbids it (what the rule is for)

    def one_type(doc: dict) -> None:
        doc["policies"]["one-type"] = {"kind": "one-gpu-type"}
        doc["deployments"][0]["policies"].append("one-type")

    one = _plan(tmp_path, "one", one_type)
    assert len({g.gpu for g in one.replicas}) == 1

    def only(gpu: str):  # noqa: ANN202
        def edit(doc: dict) -> None:
            doc["policies"]["ada-gpus-only"]["gpus"] = [gpu]
        return edit

    alone = {gpu: _plan(tmp_path, gpu, only(gpu)).usd_per_hour for gpu in ("L4", "L40S")}
    # brute force over the types: the rule's plan is the cheapest one-type plan, and no cheaper than the mix
    assert abs(one.usd_per_hour - min(alone.values())) < 1e-6
    assert one.usd_per_hour >= free.usd_per_hour - 1e-6
