"""TinyFL: federated learning on microcontroller fleets.

The host side: the wire codec shared with the node firmware (`tinyfl.wire`), transports
(`tinyfl.transport`) and the command line (`tinyfl.cli`).
"""

from tinyfl.errors import TinyFLError

__version__ = "0.1.0"
__all__ = ["TinyFLError", "__version__"]
