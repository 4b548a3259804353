"""TLS files for a test broker: the provisioning's own CA and server certificate
(tinyfl.provision.tls), naming only 127.0.0.1 and ::1, so hostname verification passes for
mqtts://127.0.0.1 and fails for mqtts://localhost (same socket, a name the certificate does not
carry)."""

from __future__ import annotations

from pathlib import Path

from tinyfl.fleet.broker import BrokerTls
from tinyfl.provision.tls import make_certificates

__all__ = ["make_tls_files"]


def make_tls_files(directory: Path) -> BrokerTls:
    """ca.pem, server.pem and server.key in `directory`."""
    certs = make_certificates("test", ["127.0.0.1", "::1"], days=1)
    directory.mkdir(parents=True, exist_ok=True)
    files = BrokerTls(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca_file.write_bytes(certs.ca_cert)
    files.cert_file.write_bytes(certs.server_cert)
    files.key_file.write_bytes(certs.server_key)
    files.key_file.chmod(0o600)
    return files
