"""Where the broker is and how to prove who we are to it: URL, credentials and TLS.

`mqtt://[USER[:PASSWORD]@]HOST[:PORT]` (port 1883) and `mqtts://...` (TLS, port 8883). A
password in a URL given on a command line is visible to every user of the machine (`ps`) and
stays in the shell history, so the commands also read it from a file or from the environment
variable `TINYFL_MQTT_PASSWORD` (`address_from_options`).

A `BrokerAddress` never shows its password: its repr and str mask it and `url` carries no
credentials at all, so an address can go into a log line, an error message or a run's
config.json as it is (docs/BROKER.md).
"""

from __future__ import annotations

import os
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from tinyfl.errors import UsageError

__all__ = [
    "DEFAULT_MQTTS_PORT",
    "DEFAULT_MQTT_PORT",
    "PASSWORD_ENV",
    "BrokerAddress",
    "address_from_options",
    "parse_broker_url",
    "public_url",
    "read_password_file",
    "resolve_broker",
    "tls_context",
]

DEFAULT_MQTT_PORT = 1883
DEFAULT_MQTTS_PORT = 8883
PASSWORD_ENV = "TINYFL_MQTT_PASSWORD"
_MASK = "***"


@dataclass(frozen=True)
class BrokerAddress:
    """A broker endpoint with optional credentials and TLS settings.

    `password` is excluded from repr and comparison output by design; `url` never includes the
    user or the password, so it is safe to print and to store.
    """

    host: str
    port: int = DEFAULT_MQTT_PORT
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if self.password is not None and self.username is None:
            # MQTT 3.1.1 section 3.1.2.9: the password flag needs the username flag.
            raise UsageError("a broker password needs a username as well")
        if self.ca_file is not None and not self.tls:
            raise UsageError("a CA file only applies to TLS: use an mqtts:// broker URL")

    @property
    def scheme(self) -> str:
        return "mqtts" if self.tls else "mqtt"

    @property
    def url(self) -> str:
        """scheme://HOST:PORT, without user or password: safe for logs and files."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def __str__(self) -> str:
        """The URL with the user and a masked password, for messages that name the account."""
        if self.username is None:
            return self.url
        user = urllib.parse.quote(self.username, safe="")
        secret = f":{_MASK}" if self.password is not None else ""
        return self.url.replace("://", f"://{user}{secret}@", 1)

    def __repr__(self) -> str:
        password = _MASK if self.password is not None else None
        return (
            f"BrokerAddress(host={self.host!r}, port={self.port}, tls={self.tls}, "
            f"username={self.username!r}, password={password!r}, ca_file={self.ca_file!r})"
        )

    def with_credentials(
        self, username: str | None, password: str | None, ca_file: str | None = None
    ) -> BrokerAddress:
        """A copy with the given credentials (None keeps what the address has)."""
        return replace(
            self,
            username=self.username if username is None else username,
            password=self.password if password is None else password,
            ca_file=self.ca_file if ca_file is None else ca_file,
        )


def _hint() -> str:
    return "expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT], with USER@ before HOST if needed"


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse a broker URL, raising UsageError with the fix for anything else.

    The error messages never repeat a URL that carries a password: they show it masked.
    """
    shown = _masked_url(url)
    if not isinstance(url, str) or "://" not in url:
        raise UsageError(f"bad broker URL {shown!r}: {_hint()}")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("mqtt", "mqtts"):
        raise UsageError(f"bad broker URL {shown!r}: unsupported scheme {scheme!r}; {_hint()}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(f"bad broker URL {shown!r}: unexpected path or query; {_hint()}")
    if not parts.hostname:
        raise UsageError(f"bad broker URL {shown!r}: missing host; {_hint()}")
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"bad broker URL {shown!r}: port must be 1-65535; {_hint()}") from None
    if port == 0:
        raise UsageError(f"bad broker URL {shown!r}: port must be 1-65535; {_hint()}")
    tls = scheme == "mqtts"
    username = urllib.parse.unquote(parts.username) if parts.username is not None else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    if username == "":
        raise UsageError(f"bad broker URL {shown!r}: empty user name before '@'")
    return BrokerAddress(
        parts.hostname,
        port if port is not None else DEFAULT_MQTTS_PORT if tls else DEFAULT_MQTT_PORT,
        tls=tls,
        username=username,
        password=password,
    )


def _masked_url(url: object) -> str:
    """`url` with any password replaced by ***; for error messages about unparsable URLs too."""
    if not isinstance(url, str):
        return repr(url)
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, at, hostpart = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:{_MASK}@{hostpart}"


def public_url(broker: str | BrokerAddress) -> str:
    """The broker's URL without user or password, for config.json, reports and logs."""
    if isinstance(broker, BrokerAddress):
        return broker.url
    if broker.startswith("memory://"):
        return broker
    return parse_broker_url(broker).url


def resolve_broker(
    url: str | BrokerAddress | None, host: str | None, port: int = DEFAULT_MQTT_PORT
) -> BrokerAddress:
    """The broker from either a URL (or a BrokerAddress) or host and port."""
    if url is not None and host is not None:
        raise UsageError("give the broker as a URL or as host/port, not both")
    if isinstance(url, BrokerAddress):
        return url
    if url is not None:
        return parse_broker_url(url)
    if not host:
        raise UsageError("no broker given: pass a URL such as mqtt://127.0.0.1:1883 or host=...")
    if not 1 <= port <= 65535:
        raise UsageError(f"broker port must be 1-65535, got {port}")
    return BrokerAddress(host, port)


def read_password_file(path: str | Path) -> str:
    """The password in `path`: its first line without the line break (nothing else is read)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the password file {path}: {exc}") from None
    password = text.splitlines()[0] if text else ""
    if not password:
        raise UsageError(f"the password file {path} is empty")
    return password


def address_from_options(
    url: str,
    *,
    username: str | None = None,
    password_file: str | Path | None = None,
    ca_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> BrokerAddress:
    """The broker address a command was given: its URL plus --username, --password-file,
    --ca-file and the environment variable TINYFL_MQTT_PASSWORD.

    The password comes from exactly one place: the URL, the file, or (when neither gives one)
    the environment; two explicit sources are a UsageError rather than a silent choice.
    """
    env = os.environ if environ is None else environ
    address = parse_broker_url(url)
    if username is not None and address.username not in (None, username):
        raise UsageError("the broker URL and --username name different users: give one")
    password: str | None = None
    if password_file is not None:
        if address.password is not None:
            raise UsageError("the broker URL has a password and --password-file gives one: "
                             "keep the file and take the password out of the URL")
        password = read_password_file(password_file)
    elif address.password is None and env.get(PASSWORD_ENV):
        password = env[PASSWORD_ENV]
    user = username if username is not None else address.username
    if password is not None and user is None:
        raise UsageError("a broker password was given without a user name: add --username")
    if ca_file is not None:
        if not address.tls:
            raise UsageError("--ca-file applies to TLS only: use an mqtts:// broker URL")
        if not Path(ca_file).is_file():
            raise UsageError(f"--ca-file {ca_file}: no such file")
    return address.with_credentials(user, password, None if ca_file is None else str(ca_file))


def tls_context(address: BrokerAddress) -> ssl.SSLContext:
    """A client TLS context that verifies the broker's certificate and host name.

    The system's trusted CAs, or only `address.ca_file` when given (a private CA). There is no
    switch to turn verification off: a broker whose certificate does not verify is refused.
    """
    try:
        context = ssl.create_default_context(cafile=address.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load the CA file {address.ca_file}: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
