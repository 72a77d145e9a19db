"""The GPU table shipped with orch (orchestrator/data/gpus.csv)."""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources

from orchestrator.catalog.types import GPU
from orchestrator.errors import UserError
from orchestrator.suggest import did_you_mean


def _rows(filename: str) -> list[dict[str, str]]:
    text = resources.files("orchestrator.data").joinpath(filename).read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return list(csv.DictReader(lines))


@cache
def _table() -> tuple[dict[str, GPU], dict[str, str]]:
    gpus: dict[str, GPU] = {}
    aliases: dict[str, str] = {}
    for r in _rows("gpus.csv"):
        g = GPU(
            name=r["name"],
            vendor=r["vendor"],
            family=r["family"],
            memory_gb=float(r["memory_gb"]),
            bandwidth_tbps=float(r["bandwidth_tbps"]),
            bf16_tflops=float(r["bf16_tflops"]),
            fp8_tflops=float(r["fp8_tflops"]) if r["fp8_tflops"] else None,
            int8_tops=float(r["int8_tops"]) if r["int8_tops"] else None,
            tdp_w=float(r["tdp_w"]),
            nvlink=r["nvlink"] == "true",
            link_gbps=float(r["link_gbps"]),
            source=r["source"],
            as_of=r["as_of"],
            compute_capability=float(r["compute_capability"]) if r.get("compute_capability") else None,
        )
        gpus[g.name] = g
        for key in [g.name, *filter(None, r["aliases"].split("|"))]:
            aliases[key.lower()] = g.name
    return gpus, aliases


def all_gpus() -> list[GPU]:
    return list(_table()[0].values())


def canonical_gpu_name(name: str) -> str | None:
    """The canonical name for a GPU name or alias (case-insensitive), or None."""
    return _table()[1].get(name.strip().lower().replace("nvidia-", "").replace("_", "-"))


def get_gpu(name: str) -> GPU:
    canonical = canonical_gpu_name(name)
    if canonical is None:
        names = [g.name for g in all_gpus()]
        raise UserError(f"unknown GPU type {name!r}{did_you_mean(name, names)}; known: {', '.join(names)}")
    return _table()[0][canonical]
