"""The placement MILP (HiGHS via highspy, imported lazily).

- problem.py: plain numbers the MILP is built from (DeploymentInput, ResourceLimit, SolverInput)
- inputs.py: spec + catalog + performance model -> SolverInput (egress accounting, quotas, inventory)
- model.py: ModelBuilder, the columns/rows as numpy arrays; the API policies use
- solve.py: lexicographic objectives, decomposition by deployment with a coupling check, joint fallback
- bounds.py: bound-based pruning for the per-deployment subproblems
- explain.py / infeasible.py: what the plan says about itself, and why no plan exists
"""
