"""What a provider can do beyond the base protocol (providers.base.Provider), in dstack's manner: small classes a
provider class inherits to declare an ability, tested with ``isinstance`` (or ``registry.has``) by the callers
that need it. A provider that lacks one simply does not inherit it: no method that returns ``[]`` for "cannot".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from containers.spec import ContainerSpec
    from orchestrator.catalog.types import Offering
    from providers.secrets import LocalSecrets


class WithOfferingsRefresh(ABC):
    """Lists its instance types and prices live (`orch catalog refresh`): the clouds' price APIs; the local
    provider describes this machine. A cluster or a site has none: their inventory is in the deployment file."""

    @abstractmethod
    def offerings(self, regions: list[str] | None = None) -> list[Offering]:
        """Live instance types and prices in ``regions`` (provider-qualified), or in every region."""


class WithSpot:
    """Launches a placement whose market is "spot" on interruptible capacity (AWS spot, GCP Spot VMs, Azure Spot).
    Elsewhere the market is only a label."""


class WithMultiNode:
    """Runs one replica across several nodes (containers labelled orch-nodes > 1: a LeaderWorkerSet)."""


class WithFirewall:
    """Enforces a container's ``ingress`` itself (security groups, firewall rules, network security groups,
    NetworkPolicies / load-balancer source ranges), and cleans up what it made when the last user goes."""


class WithGatewayPreflight(ABC):
    """Checks a gateway's ports before apply changes anything: a gateway on this machine binds fixed ports, which
    another program may hold. (Every provider runs gateways; elsewhere each gets a machine or a Service of its own.)"""

    @abstractmethod
    def check_ports(self, container: ContainerSpec) -> int:
        """The port the pod will answer on; a UserError when a gateway's fixed port is taken."""


class WithSecretStore:
    """Holds the endpoint's secrets in a store orch can read back (``secrets``: providers.secrets.LocalSecrets), so
    orch finds the admin and API keys without the environment."""

    secrets: LocalSecrets


ABILITIES: tuple[type, ...] = (WithOfferingsRefresh, WithSpot, WithMultiNode, WithFirewall, WithGatewayPreflight,
                               WithSecretStore)
