"""JSON Schema of the deployment file, for editors (YAML language servers) and other tools."""

from __future__ import annotations

from typing import Any

from orchestrator.spec.models import DeploymentFile

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def deployment_schema() -> dict[str, Any]:
    schema = DeploymentFile.model_json_schema(by_alias=True)
    deployment = schema.get("$defs", {}).get("Deployment", {}).get("properties", {})
    quant = deployment.get("quantization")
    if quant and "items" in quant:
        # the loader also accepts one value (quantization: fp8), as Deployment._one_or_many does
        listed = {k: v for k, v in quant.items() if k not in ("title", "description", "default")}
        keep = {k: v for k, v in quant.items() if k in ("title", "description", "default")}
        deployment["quantization"] = {**keep, "anyOf": [quant["items"], listed]}
    return {
        "$schema": DIALECT,
        **schema,
        "title": "orch deployment file",
    }
