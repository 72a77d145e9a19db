"""Policies: each kind is one small unit the solver composes (filters, constraints, objective terms).

Adding a kind: a module here with a class decorated by ``@register``; neither the solver nor the spec changes.
"""
