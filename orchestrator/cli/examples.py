"""Examples shown at the end of each command's --help (every one runs as written from a checkout)."""

from __future__ import annotations

from typing import Any

EXAMPLES: dict[str, list[str]] = {
    "init": ["orch init                      # writes a commented deploy.yaml", "orch init --force"],
    "validate": ["orch validate examples/*.yaml", "orch validate deploy.yaml --json"],
    "schema": ["orch schema --out orch.schema.json"],
    "estimate": ["orch estimate --model llama-3.1-8b --gpu L4 --quantization fp8",
                 "orch estimate --model llama-3.1-70b --quantization fp8 --tpot-slo-ms 50   # every GPU",
                 "orch estimate --model llama-3.1-8b --gpu H100 --explain"],
    "place": ["orch place examples/quickstart.yaml",
              "orch place examples/multi-region.yaml --minimize latency",
              "orch place examples/hybrid.yaml --json --out plan.json --time-limit 20"],
    "apply": ["orch apply examples/quickstart.yaml --dry-run",
              "orch place deploy.yaml --out plan.json && orch apply deploy.yaml --plan plan.json --yes",
              "orch apply examples/local.yaml --yes        # a real vLLM on this machine"],
    "autoscale": ["orch autoscale examples/local-serve.yaml --once --dry-run",
                  "orch autoscale deploy.yaml --interval 30",
                  "orch autoscale deploy.yaml --render keda > keda.yaml"],
    "status": ["orch status examples/local.yaml", "orch status deploy.yaml --json"],
    "destroy": ["orch destroy examples/local.yaml --yes"],
    "bench": ["orch bench http://127.0.0.1:8000 --model tiny --concurrency 1,4,16"],
    "meter": ["orch meter --once", "orch meter --interval 15"],
    "report": ["orch report --period 2026-11 --by team",
               "orch report --period 2026-11 --file deploy.yaml --format html --out report.html",
               "orch report --period 2026-11 --format focus --out focus.csv"],
    "recommend": ["orch recommend deploy.yaml", "orch recommend deploy.yaml --json --since 2026-11-01",
                  "orch recommend deploy.yaml --write deploy.measured.yaml"],
    "check": ["orch check", "orch check deploy.yaml --json"],
    "list": ["orch catalog list --gpu H100 --limit 10", "orch catalog list --spot --provider aws --json"],
    "models": ["orch catalog models"],
    "gpus": ["orch catalog gpus"],
    "import": ["orch catalog import ~/.sky/catalogs/v7"],
    "refresh": ["orch catalog refresh --provider azure", "orch catalog refresh --provider aws --source public",
                "orch catalog refresh --provider runpod --source gpuhunt"],
}


def add_examples(app: Any) -> None:
    """Set each registered command's epilog (sub-groups' commands too) from EXAMPLES."""
    infos = list(app.registered_commands)
    for group in app.registered_groups:
        infos += list(group.typer_instance.registered_commands)
    for info in infos:
        name = info.name or info.callback.__name__
        lines = EXAMPLES.get(name)
        if lines and not info.epilog:
            # click rewraps an epilog's text; \b before a paragraph keeps its lines as written
            info.epilog = "\b\nExamples:\n" + "\n".join(f"  {ln}" for ln in lines)
