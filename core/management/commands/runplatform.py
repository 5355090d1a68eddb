"""Serve the whole platform from one command: the ASGI server, a Celery worker, Celery beat, the
devices' gRPC service on DEVICE_GRPC_ADDRESS (unless ``--no-grpc``) and, with ``--supernodes N``,
a local Flower SuperLink with N SuperNodes for deployed executions.

Ctrl-C (or SIGTERM) stops everything; if the server, the worker or beat dies the others are
stopped too, so the platform never runs half-started. The gRPC service and the local federation
are optional: if the gRPC service cannot start (its port taken, say), devices keep REST and the
WebSocket; if the federation cannot, embedded training goes on and deployed executions fail with
the reason.
"""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the ASGI server (uvicorn), a Celery worker, Celery beat and the devices' gRPC service together."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
        parser.add_argument("--no-worker", action="store_true", help="No Celery worker or beat (nor the federation)")
        parser.add_argument("--no-grpc", action="store_true",
                            help="Leave out the devices' gRPC service (DEVICE_GRPC_ADDRESS)")
        parser.add_argument("--supernodes", type=int, default=0,
                            help="Also start a local Flower SuperLink with this many SuperNodes (deployed transport)")

    def handle(self, *args, **options):
        python = sys.executable
        env = dict(os.environ, DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings"))
        # A deployed ServerApp reports its rounds to this server.
        env.setdefault("FLOWER_CALLBACK_URL", f"http://{options['host']}:{options['port']}")
        commands = {
            "web": [python, "-m", "uvicorn", "config.asgi:application", "--host", options["host"],
                    "--port", str(options["port"]), "--no-access-log", "--lifespan", "off"],
        }
        if not options["no_worker"] and not settings.CELERY_TASK_ALWAYS_EAGER:
            commands["worker"] = [python, "-m", "celery", "-A", "config", "worker", "--loglevel", "INFO",
                                  "--concurrency", str(options["concurrency"]), "--without-mingle",
                                  "--without-gossip"]
            commands["beat"] = [python, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
                                "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
                                "--pidfile", ""]
        # Optional services: the platform goes on without them (what is left is said when one dies).
        optional = {}
        if not options["no_grpc"]:
            # Devices keep REST and the WebSocket if its port is taken.
            commands["grpc"] = [python, str(settings.BASE_DIR / "manage.py"), "device_grpc",
                                "--address", settings.DEVICE_GRPC_ADDRESS]
            optional["grpc"] = "devices keep REST and the WebSocket"
        if options["supernodes"] > 0 and not options["no_worker"]:
            commands["federation"] = [python, str(settings.BASE_DIR / "manage.py"), "flower_federation",
                                      "--supernodes", str(options["supernodes"])]
            optional["federation"] = "embedded training goes on"
        processes = {}
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for name, cmd in commands.items():
            processes[name] = subprocess.Popen(cmd, env=env)
            self.stdout.write(f"started {name} (pid {processes[name].pid})")
        self.stdout.write(self.style.SUCCESS(
            f"Pollen is serving on http://{options['host']}:{options['port']}/  (Ctrl-C stops everything)"))
        try:
            while not stopping:
                for name, proc in list(processes.items()):
                    if proc.poll() is not None:
                        if name in optional:
                            self.stderr.write(f"{name} exited with {proc.returncode}; {optional[name]}")
                            del processes[name]
                            continue
                        self.stderr.write(f"{name} exited with {proc.returncode}; stopping the platform")
                        stopping = True
                        break
                time.sleep(0.5)
        finally:
            for proc in processes.values():
                if proc.poll() is None:
                    proc.terminate()
            deadline = time.monotonic() + 10
            for proc in processes.values():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
