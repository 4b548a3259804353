"""Fleet provisioning (docs/SECURITY.md): per-node credentials and keys from one dealer, the
files each party needs, and a locked-down mosquitto (password file, ACL, TLS listener)."""

from tinyfl.provision.folder import (
    BrokerSettings,
    ProvisionError,
    coordinator_address,
    read_fleet,
    read_keyring,
    remove_node,
    write_fleet,
)
from tinyfl.provision.keys import COORDINATOR_USER, FleetSecrets, NodeSecrets, new_fleet, pair_seed

__all__ = [
    "COORDINATOR_USER",
    "BrokerSettings",
    "FleetSecrets",
    "NodeSecrets",
    "ProvisionError",
    "coordinator_address",
    "new_fleet",
    "pair_seed",
    "read_fleet",
    "read_keyring",
    "remove_node",
    "write_fleet",
]
