"""The placement MILP (HiGHS via highspy, imported lazily): the engine. What feeds it is orchestrator/placement/.

- problem.py: the records the MILP is built from (Candidate, DeploymentInput, ResourceLimit, SolverInput)
- model.py: ModelBuilder, the columns/rows as numpy arrays; the API policies use
- stages.py: the lexicographic objectives on HiGHS; solve.py: decomposition by deployment with a coupling check
- strategy.py: SolveStrategy, how solves are sped up; narrowing.py + bounds.py: bound pruning and short lists
"""
