"""Fleet provisioning (docs/SECURITY.md): per-node credentials and keys from one dealer, the
files each party needs, and a locked-down mosquitto (password file, ACL, TLS listener)."""

from tinyfl.provision.folder import (
    BrokerSettings,
    ProvisionError,
    admin_address,
    check_admin_url,
    coordinator_address,
    read_fleet,
    read_keyring,
    remove_node,
    write_fleet,
)
from tinyfl.provision.keys import (
    ADMIN_USER,
    COORDINATOR_USER,
    FleetSecrets,
    NodeSecrets,
    new_fleet,
    pair_seed,
)

__all__ = [
    "ADMIN_USER",
    "COORDINATOR_USER",
    "BrokerSettings",
    "FleetSecrets",
    "NodeSecrets",
    "ProvisionError",
    "admin_address",
    "check_admin_url",
    "coordinator_address",
    "new_fleet",
    "pair_seed",
    "read_fleet",
    "read_keyring",
    "remove_node",
    "write_fleet",
]
