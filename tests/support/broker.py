"""The tests use the package's own broker launcher (tinyfl.fleet.broker)."""

from tinyfl.fleet.broker import BrokerUnavailable, MosquittoBroker, free_port, port_accepts

__all__ = ["BrokerUnavailable", "MosquittoBroker", "free_port", "port_accepts"]
