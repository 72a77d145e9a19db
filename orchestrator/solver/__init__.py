"""The placement MILP: problem data (problem.py), model building (model.py), solving (solve.py),
explanations (explain.py) and infeasibility diagnosis (infeasible.py). highspy is imported lazily."""
