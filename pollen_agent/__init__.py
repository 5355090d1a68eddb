"""Pollen's node agent: it registers a host as a Pollen node, sends heartbeats with the host's
system metrics, and supervises the node's Flower SuperNode pointed at the SuperLink Pollen names.

Standalone by design (httpx, psutil and an installed ``flwr``; no Django), so that it installs on
a node without the platform: ``python -m pollen_agent --help``.
"""

__version__ = "0.1.0"
