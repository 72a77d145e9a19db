"""Same plans before and after a change: every example under every objective, as plan JSON (fallbacks included;
the wall-clock fields dropped), written to a directory, and compared byte for byte with another such directory.

    .venv/bin/python benchmarks/plans_identical.py --out /tmp/plans-before       # on the old code
    .venv/bin/python benchmarks/plans_identical.py --out /tmp/plans-after --compare /tmp/plans-before

Exits 1 and names the files that differ. A refactoring step (issue 19) must leave them identical.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

OBJECTIVES = ("cost", "latency", "egress", "carbon")
TIMING = {"solve_seconds"}  # the only field that depends on the machine's speed


def _strip(node: object) -> object:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k not in TIMING}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def write_all(out: Path) -> list[Path]:
    from orchestrator.placement import place
    from orchestrator.spec.loader import load_spec

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for example in sorted((REPO / "examples").glob("*.yaml")):
        loaded = load_spec(example)
        for objective in OBJECTIVES:
            # no time limit in the way, and plans B over every candidate: the optimum, the same on any machine
            plan = place(loaded, objective, time_limit=600, with_fallbacks="exhaustive")
            path = out / f"{example.stem}.{objective}.json"
            path.write_text(json.dumps(_strip(plan.model_dump(mode="json")), indent=1, sort_keys=True) + "\n")
            written.append(path)
    return written


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--compare", type=Path, default=None)
    args = ap.parse_args()
    written = write_all(args.out)
    print(f"{len(written)} plans written to {args.out}")
    if args.compare is None:
        return 0
    differ = [p.name for p in written if not (args.compare / p.name).exists()
              or (args.compare / p.name).read_bytes() != p.read_bytes()]
    for name in differ:
        print(f"differs: {name}")
    print("identical" if not differ else f"{len(differ)} of {len(written)} plans differ")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
