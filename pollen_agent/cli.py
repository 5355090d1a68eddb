"""``python -m pollen_agent``: every option also reads an environment variable (the flag wins)."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import socket
import sys
from pathlib import Path

from pollen_agent import __version__

ENV_PREFIX = "POLLEN_"


def _default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "pollen-agent")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _float_or_none(value):
    return None if value in (None, "") else float(value)


def _int_or_none(value):
    return None if value in (None, "") else int(value)


def build_parser() -> argparse.ArgumentParser:
    e = os.environ.get
    p = argparse.ArgumentParser(
        prog="python -m pollen_agent",
        description="Pollen node agent: registers this host as a Pollen node, sends heartbeats with its system "
                    "metrics and runs its Flower SuperNode against the SuperLink Pollen names.",
        epilog="Each option defaults to the environment variable shown. Prefer POLLEN_API_KEY or "
               "--api-key-file to --api-key, which other users of the host can read in the process list.")
    server = p.add_argument_group("Pollen")
    server.add_argument("--server-url", default=e("POLLEN_SERVER_URL"),
                        help="Pollen's base URL, e.g. https://pollen.example.com [POLLEN_SERVER_URL]")
    server.add_argument("--api-key", default=e("POLLEN_API_KEY"),
                        help="API key with the scopes client:register and training:participate [POLLEN_API_KEY]")
    server.add_argument("--api-key-file", default=e("POLLEN_API_KEY_FILE"),
                        help="Read the API key from this file [POLLEN_API_KEY_FILE]")
    server.add_argument("--auth-header", choices=["bearer", "x-api-key"], default=e("POLLEN_AUTH_HEADER", "bearer"),
                        help="Send the key as 'Authorization: Bearer' or as 'X-API-Key' [POLLEN_AUTH_HEADER]")
    server.add_argument("--ca-bundle", default=e("POLLEN_CA_BUNDLE"),
                        help="CA bundle to verify Pollen's HTTPS certificate [POLLEN_CA_BUNDLE]")
    server.add_argument("--http-timeout", type=float, default=float(e("POLLEN_HTTP_TIMEOUT", "10")),
                        help="Seconds per request to Pollen (default 10) [POLLEN_HTTP_TIMEOUT]")

    node = p.add_argument_group("the node, as registered")
    node.add_argument("--name", default=e("POLLEN_NODE_NAME"), help="Default: the host name [POLLEN_NODE_NAME]")
    node.add_argument("--host", default=e("POLLEN_NODE_HOST"),
                      help="Address to register (default: this host's address towards Pollen) [POLLEN_NODE_HOST]")
    node.add_argument("--type", dest="node_type", choices=["client", "aggregator"],
                      default=e("POLLEN_NODE_TYPE", "client"), help="[POLLEN_NODE_TYPE]")
    node.add_argument("--compute", choices=["cpu", "gpu", "mobile"], default=e("POLLEN_COMPUTE"),
                      help="Default: gpu if an NVIDIA driver is loaded, else cpu [POLLEN_COMPUTE]")
    node.add_argument("--region", default=e("POLLEN_REGION"), help="[POLLEN_REGION]")
    node.add_argument("--zone", default=e("POLLEN_ZONE"), help="AI zone id or code [POLLEN_ZONE]")
    node.add_argument("--location-name", default=e("POLLEN_LOCATION_NAME"), help="[POLLEN_LOCATION_NAME]")
    node.add_argument("--location-code", default=e("POLLEN_LOCATION_CODE"), help="[POLLEN_LOCATION_CODE]")
    node.add_argument("--lat", type=float, default=_float_or_none(e("POLLEN_LATITUDE")), help="[POLLEN_LATITUDE]")
    node.add_argument("--lon", type=float, default=_float_or_none(e("POLLEN_LONGITUDE")), help="[POLLEN_LONGITUDE]")
    node.add_argument("--project-id", default=e("POLLEN_PROJECT_ID"),
                      help="The project whose executions the node serves [POLLEN_PROJECT_ID]")
    node.add_argument("--dataset", default=e("POLLEN_DATASET"), help="The dataset it trains on [POLLEN_DATASET]")

    beat = p.add_argument_group("heartbeats")
    beat.add_argument("--interval", type=float, default=_float_or_none(e("POLLEN_HEARTBEAT_INTERVAL")),
                      help="Seconds between heartbeats (default: the node's interval as Pollen stores it) "
                           "[POLLEN_HEARTBEAT_INTERVAL]")
    beat.add_argument("--register-interval", type=int, default=int(e("POLLEN_REGISTER_INTERVAL", "30")),
                      help="Heartbeat interval to register the node with (at least 5; Pollen marks the node "
                           "offline after twice this) [POLLEN_REGISTER_INTERVAL]")
    beat.add_argument("--disk-path", default=e("POLLEN_DISK_PATH", "/"),
                      help="File system whose usage is reported (default /) [POLLEN_DISK_PATH]")
    beat.add_argument("--max-backoff", type=float, default=float(e("POLLEN_AGENT_MAX_BACKOFF", "60")),
                      help="Longest wait between retries, in seconds (default 60) [POLLEN_AGENT_MAX_BACKOFF]")

    flower = p.add_argument_group("the Flower SuperNode")
    flower.add_argument("--no-supernode", action="store_true", default=_env_flag("POLLEN_NO_SUPERNODE"),
                        help="Metrics only: do not run a SuperNode [POLLEN_NO_SUPERNODE=1]")
    flower.add_argument("--supernode-bin", default=e("POLLEN_SUPERNODE_BIN"),
                        help="flower-supernode to run (default: the one beside this Python, else on PATH) "
                             "[POLLEN_SUPERNODE_BIN]")
    flower.add_argument("--superlink", default=e("POLLEN_SUPERLINK"),
                        help="Fleet API address host:port, over what Pollen says [POLLEN_SUPERLINK]")
    flower.add_argument("--superlink-insecure", action="store_true", default=_env_flag("POLLEN_SUPERLINK_INSECURE"),
                        help="Connect without TLS whatever Pollen says [POLLEN_SUPERLINK_INSECURE=1]")
    flower.add_argument("--root-certificates", default=e("POLLEN_SUPERLINK_ROOT_CERTIFICATES"),
                        help="PEM CA file for the SuperLink's TLS, over what Pollen says "
                             "[POLLEN_SUPERLINK_ROOT_CERTIFICATES]")
    flower.add_argument("--auth-private-key", default=e("POLLEN_SUPERNODE_AUTH_KEY"),
                        help="SuperNode private key (OpenSSH PEM) for SuperLinks that authenticate nodes; its "
                             "public key must be registered with the SuperLink [POLLEN_SUPERNODE_AUTH_KEY]")
    flower.add_argument("--node-config", default=e("POLLEN_NODE_CONFIG"),
                        help="SuperNode node config, e.g. 'partition-id=0 num-partitions=2', over Pollen's "
                             "[POLLEN_NODE_CONFIG]")
    flower.add_argument("--supernode-port", type=int, default=_int_or_none(e("POLLEN_SUPERNODE_PORT")),
                        help="Port of the SuperNode's local Runtime API (Flower's default 9094) "
                             "[POLLEN_SUPERNODE_PORT]")
    flower.add_argument("--supernode-args", default=e("POLLEN_SUPERNODE_ARGS", ""),
                        help="More arguments for flower-supernode, shell-quoted [POLLEN_SUPERNODE_ARGS]")
    flower.add_argument("--stop-timeout", type=float, default=float(e("POLLEN_SUPERNODE_STOP_TIMEOUT", "10")),
                        help="Seconds between SIGTERM and SIGKILL when stopping it [POLLEN_SUPERNODE_STOP_TIMEOUT]")

    agent = p.add_argument_group("the agent")
    agent.add_argument("--state-dir", default=e("POLLEN_AGENT_STATE_DIR") or _default_state_dir(),
                       help="Node id, last federation, SuperNode log (default ~/.local/state/pollen-agent) "
                            "[POLLEN_AGENT_STATE_DIR]")
    agent.add_argument("--log-level", default=e("POLLEN_AGENT_LOG_LEVEL", "INFO"),
                       choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper, help="[POLLEN_AGENT_LOG_LEVEL]")
    agent.add_argument("--version", action="version", version=f"pollen-agent {__version__}")
    return p


def find_supernode() -> str | None:
    """flower-supernode beside the running Python (a virtualenv's bin), else on PATH."""
    beside = Path(sys.executable).parent / "flower-supernode"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("flower-supernode")


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser):
    from pollen_agent.agent import AgentConfig

    if not args.server_url:
        parser.error("--server-url (or POLLEN_SERVER_URL) is required")
    api_key = args.api_key
    if args.api_key_file:
        try:
            api_key = Path(args.api_key_file).read_text().strip()
        except OSError as exc:
            parser.error(f"cannot read --api-key-file: {exc}")
    if not api_key:
        parser.error("an API key is required: --api-key, --api-key-file or POLLEN_API_KEY")
    supernode_bin = None
    if not args.no_supernode:
        supernode_bin = args.supernode_bin or find_supernode()
        if not supernode_bin:
            parser.error("flower-supernode not found: install flwr, pass --supernode-bin, or run with --no-supernode")
    location = {"name": args.location_name, "code": args.location_code, "lat": args.lat, "lon": args.lon}
    return AgentConfig(
        server_url=args.server_url, api_key=api_key, auth_header=args.auth_header, state_dir=Path(args.state_dir),
        name=args.name or socket.gethostname(), host=args.host, node_type=args.node_type,
        interval=args.interval, register_interval=args.register_interval, region=args.region, zone=args.zone,
        location=location, project_id=args.project_id, dataset=args.dataset, compute=args.compute,
        disk_path=args.disk_path, supernode=not args.no_supernode, supernode_bin=supernode_bin,
        superlink=args.superlink, superlink_insecure=args.superlink_insecure,
        root_certificates=args.root_certificates, auth_private_key=args.auth_private_key,
        node_config=args.node_config, supernode_port=args.supernode_port,
        supernode_args=shlex.split(args.supernode_args or ""), max_backoff=args.max_backoff,
        stop_timeout=args.stop_timeout, http_timeout=args.http_timeout, verify_tls=args.ca_bundle or True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.interval is not None and args.interval <= 0:
        parser.error("--interval must be positive")
    config = config_from_args(args, parser)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)-7s %(message)s",
                        datefmt="%Y-%m-%dT%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from pollen_agent.agent import Agent

    agent = Agent(config)
    agent.install_signal_handlers()
    logging.getLogger("pollen_agent").info(
        "pollen-agent %s for %s as %r%s", __version__, agent.api.root, config.name,
        "" if config.supernode else " (metrics only)")
    return agent.run()
