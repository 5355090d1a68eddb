"""Start a local Flower SuperLink and N SuperNodes for executions with transport "deployed"."""

import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from training.local_federation import FederationError, LocalFederation


class Command(BaseCommand):
    help = ("Start a Flower SuperLink and N SuperNodes on this machine (Ctrl-C stops them). Executions "
            "started with config.transport = \"deployed\" run on them.")

    def add_arguments(self, parser):
        default_host, _, default_port = settings.FLOWER_SUPERLINK_ADDRESS.rpartition(":")
        parser.add_argument("--supernodes", type=int, default=2, help="How many SuperNodes (default 2)")
        parser.add_argument("--host", default=default_host or "127.0.0.1")
        parser.add_argument("--port", type=int, default=int(default_port or 9093),
                            help="Port of the SuperLink's HTTP APIs (default from FLOWER_SUPERLINK_ADDRESS)")
        parser.add_argument("--tls", action="store_true", help="Serve the SuperLink over TLS (throwaway CA)")
        parser.add_argument("--auth", action="store_true",
                            help="Require SuperNode authentication (EC keys registered through the Control API; "
                                 "implies --tls)")
        parser.add_argument("--workdir", help="Keep state, keys and logs here (default: a temporary folder)")

    def handle(self, *args, supernodes, host, port, tls, auth, workdir, **options):
        if not 1 <= supernodes <= 64:
            raise CommandError("--supernodes must be between 1 and 64")
        federation = LocalFederation(supernodes=supernodes, host=host, port=port, auth=auth, tls=tls, workdir=workdir)
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        try:
            federation.start()
            online = federation.wait_for_nodes()
            self.stdout.write(self.style.SUCCESS(
                f"SuperLink at {federation.address} with {online} SuperNodes online"
                f"{' (authenticated)' if auth else ''}; logs in {federation.workdir}"))
            if federation.tls:
                self.stdout.write(f"Set FLOWER_INSECURE=false and FLOWER_ROOT_CERTIFICATES={federation.ca_path} "
                                  "for Pollen's worker")
            while not stopping and all(p.poll() is None for p in federation.processes[:1]):
                time.sleep(1)
        except FederationError as exc:
            raise CommandError(str(exc))
        except KeyboardInterrupt:
            pass
        finally:
            federation.stop()
