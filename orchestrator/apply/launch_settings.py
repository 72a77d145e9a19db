"""What `orch apply` will need from the deployment file to launch on each provider it declares: checked when the
file is loaded, so that a missing setting shows at `validate` and `place`, not after a plan is made.

An unknown setting, or one of the wrong type, is an error (apply would refuse it); a missing one a warning (the file
still plans, and a dry run shows a placeholder). Both come from each provider's settings model (providers.registry),
which apply's targets build the providers from: one source of truth.
"""

from __future__ import annotations

from typing import Any

from orchestrator.spec.problems import Issue

CLOUDS = ("aws", "gcp", "azure")  # the sections with options: providers.<cloud>.options


def launch_issues(providers: Any) -> tuple[list[Issue], list[Issue]]:
    """(errors, warnings) about the launch settings of the providers the file declares."""
    from providers import registry

    errors: list[Issue] = []
    warnings: list[Issue] = []
    if providers is None:
        return errors, warnings
    for kind in CLOUDS:
        cloud = getattr(providers, kind, None)
        if cloud is None:
            continue
        opts = dict(cloud.options)
        path = ("providers", kind, "options")
        model = registry.settings_model(kind)
        for key, message in registry.setting_problems(kind, opts, from_file=True):
            errors.append(Issue((*path, key), message, at_key=True))
        need = model.missing(opts, list(cloud.regions or []))
        if need:
            warnings.append(Issue(path if cloud.options else ("providers", kind),
                                  f"orch apply on {kind} will need options {'; '.join(need)}; placing works without them",
                                  at_key=True))
    from orchestrator.apply.targets import GPU_CLOUDS

    for name in GPU_CLOUDS:
        cloud = getattr(providers, name, None)
        if cloud is not None and cloud.kind == "baremetal" and not cloud.hosts:
            warnings.append(Issue(("providers", name), f"orch apply will need hosts (ssh targets of the instances you "
                                                       f"rented on {name}) for kind baremetal"))
    onprem = getattr(providers, "onprem", None)
    if onprem is not None and onprem.kind == "baremetal":
        for i, site in enumerate(onprem.sites):
            if not site.hosts:
                warnings.append(Issue(("providers", "onprem", "sites", i),
                                      f"orch apply will need hosts (ssh targets) for site {site.name}"))
    return errors, warnings
