"""Nodes, the node agent and seed 002's device protocol (REST, gRPC, WebSocket)."""

from config.env import env  # noqa: F401

# ---- device protocol (nodes.protocol) ----------------------------------------------------------------
# An update body above this answers 413 without being read (seed 002 POST /rounds/{id}/updates).
DEVICE_UPDATE_MAX_BYTES = env.int("DEVICE_UPDATE_MAX_BYTES", default=256 * 1024 * 1024)
# Update bodies a web process holds in memory at once while it checks them (each one whose
# Content-Length fits what is left; the others are spooled to unnamed temporary files). 0: always files.
DEVICE_UPDATE_MEMORY_BYTES = env.int("DEVICE_UPDATE_MEMORY_BYTES", default=32 * 1024 * 1024)
# How long a device's registration token lives; registering again with the API key renews it.
DEVICE_TOKEN_HOURS = env.int("DEVICE_TOKEN_HOURS", default=24)
# A device round's deadline when the execution's config has no ``round_timeout`` (seconds).
DEVICE_ROUND_TIMEOUT_SECONDS = env.int("DEVICE_ROUND_TIMEOUT_SECONDS", default=600)
# How often the worker driving a device execution looks at its open round.
DEVICE_ROUND_POLL_SECONDS = env.float("DEVICE_ROUND_POLL_SECONDS", default=0.3)
# Public base URL put in front of model download paths (empty: the request's own host).
DEVICE_PUBLIC_URL = env.str("DEVICE_PUBLIC_URL", default="")
# seed 002 section 5, per device and endpoint.
# Heartbeats are counted per node and per caller (a fleet of agents often shares one API key), not
# against the general limit.
NODE_HEARTBEAT_THROTTLE_RATES = {
    "node_heartbeat": env.str("THROTTLE_NODE_HEARTBEAT", default="60/min"),
    "heartbeat_fleet": env.str("THROTTLE_HEARTBEAT_FLEET", default="6000/min"),
}
DEVICE_THROTTLE_RATES = {
    "device_models": env.str("THROTTLE_DEVICE_MODELS", default="10/min"),
    "device_updates": env.str("THROTTLE_DEVICE_UPDATES", default="5/min"),
    "device_rounds": env.str("THROTTLE_DEVICE_ROUNDS", default="20/min"),
}

# ---- device protocol over gRPC (nodes.protocol.grpc, `manage.py device_grpc`) -------------------------
# Where the gRPC service listens; runplatform starts it unless --no-grpc.
DEVICE_GRPC_ADDRESS = env.str("DEVICE_GRPC_ADDRESS", default="127.0.0.1:50051")
# Size of the ModelChunks DownloadModel sends (UpdateChunks may be up to 4 MiB or this, whichever is larger).
DEVICE_GRPC_CHUNK_BYTES = env.int("DEVICE_GRPC_CHUNK_BYTES", default=1024 * 1024)
# Calls served at once (each open StreamUpdates holds one) and how often a stream looks for news.
DEVICE_GRPC_MAX_WORKERS = env.int("DEVICE_GRPC_MAX_WORKERS", default=32)
DEVICE_GRPC_STREAM_POLL_SECONDS = env.float("DEVICE_GRPC_STREAM_POLL_SECONDS", default=1.0)
# TLS: both files (PEM) or neither; without them the service is plaintext, for loopback or a TLS proxy.
DEVICE_GRPC_TLS_CERT = env.str("DEVICE_GRPC_TLS_CERT", default="")
DEVICE_GRPC_TLS_KEY = env.str("DEVICE_GRPC_TLS_KEY", default="")

# ---- node agent (pollen_agent) ------------------------------------------------------------------------
# The SuperLink's Fleet API as nodes reach it (host:port), named to node agents in each heartbeat's
# answer with FLOWER_INSECURE and the CA of FLOWER_ROOT_CERTIFICATES. Empty: FLOWER_SUPERLINK_ADDRESS,
# since flwr 1.41 serves the Fleet API on the SuperLink's one HTTP port (the separate gRPC Fleet port
# 9092 of older Flower is gone). Set it when nodes reach the SuperLink by another name than Pollen
# does. A node's assignment_config["federation"] overrides it for that node.
FLOWER_FLEET_ADDRESS = env.str("FLOWER_FLEET_ADDRESS", default="")
