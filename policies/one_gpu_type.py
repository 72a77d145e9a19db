"""one-gpu-type: every replica of a deployment on one accelerator type (for identical numerics, one driver and
image to qualify, or simpler capacity planning); which type is the solver's choice, by the objective.

Rows: one binary per GPU type among the deployment's candidates, at most one of them on, and each candidate's
units only under its type's binary (units <= their upper bound x binary). The ``hardware`` policy says which
types are allowed; this one says that only one of them is used.
"""

from __future__ import annotations

from collections import defaultdict
from typing import ClassVar

from policies.base import Policy, PolicyParams
from policies.registry import register


@register
class OneGpuType(Policy):
    kind: ClassVar[str] = "one-gpu-type"
    reads: ClassVar[frozenset[str]] = frozenset()
    Params: ClassVar[type[PolicyParams]] = PolicyParams
    adds_rows: ClassVar[bool] = True
    per_gpu_type: ClassVar[bool] = True

    def add_constraints(self, builder, deployment, candidates):  # noqa: ANN001, ANN201
        from orchestrator.solver.model import RowTag

        if deployment is None:
            return
        by_gpu: dict[str, list] = defaultdict(list)
        for c in candidates:
            if builder.has_units(c):
                by_gpu[c.gpu].append(c)
        if len(by_gpu) < 2:
            return
        name = deployment.name
        chosen = {}
        for gpu, cs in sorted(by_gpu.items()):
            z = chosen[gpu] = builder.add_binary()
            for c in cs:
                builder.add_row({builder.units(c): 1.0, z: -float(builder.units_upper(c))}, float("-inf"), 0.0,
                                RowTag("one_gpu_type", f"{name}: {gpu} only if chosen", name))
        builder.add_row({z: 1.0 for z in chosen.values()}, float("-inf"), 1.0,
                        RowTag("one_gpu_type", f"{name}: one GPU type ({self.name})", name))
