"""``manage.py device_grpc``: serve seed 002's gRPC service (``wia.federatedlearning.v1.FederatedLearning``).

Runs until SIGTERM or Ctrl-C, then stops taking calls, lets calls in progress finish for
``--grace`` seconds (open StreamUpdates end at once) and exits. ``runplatform`` starts it.
"""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from nodes.protocol.grpc.server import SERVICE, build_server


class Command(BaseCommand):
    help = "Serve the device protocol over gRPC (seed 002 section 2)."

    def add_arguments(self, parser):
        parser.add_argument("--address", default=None,
                            help=f"host:port to listen on (default DEVICE_GRPC_ADDRESS, {settings.DEVICE_GRPC_ADDRESS})")
        parser.add_argument("--max-workers", type=int, default=None,
                            help="Calls served at once (default DEVICE_GRPC_MAX_WORKERS)")
        parser.add_argument("--grace", type=float, default=10.0,
                            help="Seconds calls in progress get to finish on shutdown")

    def handle(self, *args, **options):
        address = options["address"] or settings.DEVICE_GRPC_ADDRESS
        shutdown = threading.Event()
        try:
            server, port = build_server(address, max_workers=options["max_workers"], shutdown=shutdown)
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc))
        stop = threading.Event()

        def on_signal(signum, frame):
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        server.start()
        host = address.rsplit(":", 1)[0]
        tls = "TLS" if settings.DEVICE_GRPC_TLS_CERT else "plaintext"
        self.stdout.write(self.style.SUCCESS(f"{SERVICE} serving on {host}:{port} ({tls})"))
        self.stdout.flush()
        while not stop.wait(1.0):
            pass
        self.stdout.write("Stopping the gRPC service")
        server.health.enter_graceful_shutdown()  # health checks answer NOT_SERVING from now on
        shutdown.set()  # streams end now; unary calls and transfers get the grace period
        server.stop(options["grace"]).wait()
        self.stdout.write("gRPC service stopped")
