"""Placement: from a loaded deployment file and a catalog to a Plan, around the solver (the engine, orchestrator/solver/).

- inputs.py: spec + catalog + performance model -> SolverInput (egress accounting, quotas, inventory)
- offerings.py / candidates.py: the catalog as arrays; every option that can serve a deployment, with what was rejected
- pruning.py: the dominance rules (per group, across regions) that drop candidates without losing an optimum
- pipeline.py: place(), the entry; fallbacks.py: ranked plans B per deployment
- explain.py / infeasible.py: what the plan says about itself, and why no plan exists
"""

from orchestrator.placement.pipeline import LARGE_GPUS, MODEL_LEN_MARGIN, place
from orchestrator.solver.model import OBJECTIVES

__all__ = ["LARGE_GPUS", "MODEL_LEN_MARGIN", "OBJECTIVES", "place"]
