"""A Flower SuperLink and N SuperNodes on this machine, for development and tests.

``LocalFederation`` starts ``flower-superlink`` (Fleet, Control and Runtime APIs on one HTTP port,
state in a file database, runtime dependency installation disabled) and ``flower-supernode``
processes that each hold one partition (``partition-id``/``num-partitions`` node config). With
``tls=True`` every API is served over TLS with a certificate for the host signed by a throwaway
CA (``ca.pem`` in the work folder: give it to Pollen as ``FLOWER_ROOT_CERTIFICATES``). With
``auth=True`` (which needs TLS, so it implies it) the SuperLink requires SuperNode
authentication: each SuperNode gets an EC key pair and its public key is registered through the
Control API before it connects. Their ServerApps and
ClientApps import Pollen's engine from this checkout (``PYTHONPATH``) and sign their round reports
with the callback secret (``POLLEN_FLOWER_CALLBACK_SECRET``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from django.conf import settings

from training.engine.callback import SECRET_ENV


class FederationError(Exception):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the system picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LocalFederation:
    def __init__(self, *, supernodes: int = 2, host: str = "127.0.0.1", port: int = 9093,
                 workdir: str | None = None, auth: bool = False, tls: bool = False, secret: str | None = None,
                 startup_timeout: float = 60.0):
        self.supernodes = supernodes
        self.host = host
        self.port = port
        self.auth = auth
        self.tls = tls or auth
        self.secret = secret
        self.startup_timeout = startup_timeout
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="pollen-federation-"))
        self.processes: list[subprocess.Popen] = []
        self._supernodes: dict[int, subprocess.Popen] = {}
        self._supernode_keys: dict[int, Path] = {}
        self._restarts = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _env(self) -> dict:
        from training.deployed import callback_secret

        bindir = str(Path(sys.executable).parent)
        env = dict(os.environ)
        env.update({
            "PATH": bindir + os.pathsep + env.get("PATH", ""),
            "PYTHONPATH": str(settings.BASE_DIR) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
            "FLWR_HOME": str(self.workdir / "flwr-home"),
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            SECRET_ENV: self.secret or callback_secret(),
        })
        return env

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        process = subprocess.Popen(command, env=self._env(), stdout=log, stderr=subprocess.STDOUT,
                                   cwd=self.workdir, start_new_session=True)
        log.close()
        self.processes.append(process)
        return process

    @property
    def ca_path(self) -> Path | None:
        return self.workdir / "ca.pem" if self.tls else None

    def control_client(self):
        from flwr.supercore.control.control_http_client import ControlHttpClient

        return ControlHttpClient.from_server_address(
            server_address=self.address, insecure=not self.tls,
            root_certificates=self.ca_path.read_bytes() if self.tls else None, interceptors=[])

    def _healthy(self) -> bool:
        scheme = "https" if self.tls else "http"
        try:
            return httpx.get(f"{scheme}://{self.address}/health", timeout=1.0,
                             verify=str(self.ca_path) if self.tls else True).is_success
        except httpx.HTTPError:
            return False

    def _write_certificates(self) -> tuple[Path, Path]:
        """A throwaway CA and a server certificate for ``host`` (and localhost) that it signed."""
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        now = datetime.datetime.now(datetime.timezone.utc)
        lifetime = datetime.timedelta(days=30)

        def build(subject, issuer, public_key, signing_key, *, ca: bool, names=()):
            builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                       .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                       .not_valid_after(now + lifetime)
                       .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
            if names:
                builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
            return builder.sign(signing_key, hashes.SHA256())

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Pollen local federation CA")])
        ca_cert = build(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
        key = ec.generate_private_key(ec.SECP256R1())
        names = [x509.DNSName("localhost")]
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(self.host)))
        except ValueError:
            names.append(x509.DNSName(self.host))
        cert = build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.host)]), ca_name, key.public_key(),
                     ca_key, ca=False, names=names)
        pem = serialization.Encoding.PEM
        self.ca_path.write_bytes(ca_cert.public_bytes(pem))
        cert_path, key_path = self.workdir / "server.pem", self.workdir / "server.key"
        cert_path.write_bytes(cert.public_bytes(pem))
        key_path.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        key_path.chmod(0o600)
        return cert_path, key_path

    def start(self) -> LocalFederation:
        bindir = Path(sys.executable).parent
        command = [str(bindir / "flower-superlink"), "--host", self.host, "--port", str(self.port),
                   "--database", str(self.workdir / "superlink.db"), "--disable-runtime-dependency-installation"]
        if self.tls:
            cert_path, key_path = self._write_certificates()
            command += ["--ssl-certfile", str(cert_path), "--ssl-keyfile", str(key_path),
                        "--ssl-ca-certfile", str(self.ca_path)]
        else:
            command.append("--insecure")
        if self.auth:
            command.append("--enable-supernode-auth")
        superlink = self._spawn("superlink", command)
        deadline = time.monotonic() + self.startup_timeout
        while not self._healthy():
            if superlink.poll() is not None:
                raise FederationError(f"flower-superlink exited with {superlink.returncode}; see "
                                      f"{self.workdir / 'superlink.log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise FederationError(f"The SuperLink did not answer within {self.startup_timeout:.0f} s")
            time.sleep(0.2)
        if self.auth:
            self._supernode_keys = {index: self._register_key(index) for index in range(self.supernodes)}
        self._supernodes = {index: self._spawn_supernode(index) for index in range(self.supernodes)}
        return self

    def _spawn_supernode(self, index: int) -> subprocess.Popen:
        bindir = Path(sys.executable).parent
        # The SuperNode's own ClientAppIo port: a free one. (A fixed offset from the SuperLink's port
        # could be one an outgoing connection already holds; the SuperNode then exits at once.)
        command = [str(bindir / "flower-supernode"), "--superlink", self.address,
                   "--port", str(free_port(self.host)),
                   "--node-config", f"partition-id={index} num-partitions={self.supernodes}"]
        command += ["--root-certificates", str(self.ca_path)] if self.tls else ["--insecure"]
        if self.auth:
            command += ["--auth-supernode-private-key", str(self._supernode_keys[index])]
        return self._spawn(f"supernode-{index}", command)

    def _restart_exited_supernodes(self) -> None:
        """Start again a SuperNode that exited (a port taken between choosing and binding it), a
        few times at most."""
        for index, process in list(self._supernodes.items()):
            if process.poll() is None:
                continue
            self._restarts += 1
            if self._restarts > 3 * max(1, self.supernodes):
                raise FederationError(f"SuperNode {index} keeps exiting ({process.returncode})" + self._log_tails())
            self._supernodes[index] = self._spawn_supernode(index)

    def _register_key(self, index: int) -> Path:
        """An EC key pair for SuperNode ``index``; its public key registered with the SuperLink."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from flwr.proto.control_pb2 import RegisterNodeRequest
        from flwr.supercore.primitives.asymmetric import public_key_to_bytes

        key = ec.generate_private_key(ec.SECP384R1())
        path = self.workdir / f"supernode-{index}.key"
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                           serialization.NoEncryption()))
        path.chmod(0o600)
        client = self.control_client()
        try:
            client.RegisterNode(RegisterNodeRequest(public_key=public_key_to_bytes(key.public_key()),
                                                    name=f"pollen-local-{index}"))
        finally:
            client.close()
        return path

    def wait_for_nodes(self, count: int | None = None, timeout: float = 60.0) -> int:
        """Wait until ``count`` SuperNodes (all by default) are online; return how many are."""
        from flwr.proto.control_pb2 import ListNodesRequest

        count = self.supernodes if count is None else count
        client = self.control_client()
        deadline = time.monotonic() + timeout
        online = 0
        try:
            while time.monotonic() < deadline:
                try:
                    nodes = client.ListNodes(ListNodesRequest()).nodes_info
                    online = sum(1 for node in nodes if node.status == "online")
                except httpx.HTTPError:
                    online = 0
                if online >= count:
                    return online
                self._restart_exited_supernodes()
                time.sleep(0.5)
        finally:
            client.close()
        raise FederationError(f"Only {online} of {count} SuperNodes came online within {timeout:.0f} s"
                              + self._log_tails())

    def _log_tails(self, lines: int = 15) -> str:
        """The last lines of each process's log, for an error message."""
        out = []
        for path in sorted(self.workdir.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"\n--- {path.name} ---\n" + "\n".join(tail))
        return "".join(out)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes = []
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalFederation:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
