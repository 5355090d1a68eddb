"""What Pollen's training engine costs and what it reaches, against baselines in the same run.

    .venv/bin/python benchmarks/engine.py [--rounds 20] [--nodes 5] [--repeats 3] [--skip-simulation]

1. Pollen against the bare strategy loop: model "cnn" (SmallCNN, Adam) on digits, fedavg, IID,
   local_epochs 1, batch 32, learning_rate 0.01, seed 0, and the same for "logistic" (numpy, SGD lr
   0.1). Pollen: ``POST /api/v1/training/start`` with a JWT through Django's test Client, in this
   process, on a fresh SQLite database in a temporary POLLEN_VAR_DIR (migrated by the script), with
   CELERY_TASK_ALWAYS_EAGER=true so the task (``run_execution``: round and per-client records,
   checkpoints, logs, events, heartbeat) runs inside the request; the clock stops when
   ``GET /api/v1/training/jobs/<id>`` says completed. Bare: the same builtin ServerApp and ClientApp
   over a plain ``InProcessGrid`` with a no-op observer and no database. The run config of both is
   the one Pollen builds (``run_config_for`` of a warm-up execution, checked key by key after every
   measured run), Python's ``random`` (Flower's node sampling) is seeded alike before each run, and
   the two alternate after an unmeasured one-round warm-up; medians are reported. One more Pollen
   run, with timers inside, says where the extra time goes.
2. Pollen against Flower's own simulation engine (Ray) on the same builtin app with the "logistic"
   model (numpy only, so the simulation venv needs no torch). ``flwr[simulation]`` goes into a
   separate venv (--sim-venv, default /tmp/bench-sim-venv, from requirements-bench.txt; created when
   missing), never into the project's .venv, and ``flwr.simulation.run_simulation`` runs there in a
   child process (this file again, with --sim-child), once with Flower's default resources (2 CPUs
   per client: one actor) and once with 1 CPU per client (two actors). If Ray cannot be installed or
   run, a line says so and why, and the rest goes on.
3. Final test accuracy of centralised training on the pooled digits training split, for as many
   epochs as any sample sees in the federation (rounds x local_epochs), against federated IID.

Prints the machine's load average first, then the tables, and last ``RATIO pollen/bare = x.xx``
(seconds per round of the CNN run, Pollen over bare).
"""

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
REQUIREMENTS = BASE_DIR / "requirements-bench.txt"
TERMINAL = {"completed", "failed", "stopped", "suspended"}

# The work of every run; only the model (and its learning rate) changes. learning_rate is Adam's for
# the torch models and plain SGD's step for the numpy ones (0.1 is Pollen's default there).
COMMON = {"dataset": "digits", "algorithm": "fedavg", "partition": "iid", "local_epochs": 1, "batch_size": 32,
          "seed": 0}
MODELS = {
    "cnn": {**COMMON, "model_type": "cnn", "learning_rate": 0.01},
    "logistic": {**COMMON, "model_type": "logistic", "learning_rate": 0.1},
}
SIM_MODEL = "logistic"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds per run (20)")
    parser.add_argument("--nodes", type=int, default=5, help="nodes in the federation (5)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="measured runs of each of Pollen and bare, alternated; medians are reported (3)")
    parser.add_argument("--skip-simulation", action="store_true", help="skip the Flower simulation comparison")
    parser.add_argument("--sim-venv", default="/tmp/bench-sim-venv",
                        help="throwaway venv for flwr[simulation] (created when missing)")
    parser.add_argument("--no-sim-install", action="store_true",
                        help="do not create or fill --sim-venv; use it only if it already works")
    parser.add_argument("--sim-timeout", type=int, default=300, help="seconds allowed per simulation run (300)")
    parser.add_argument("--sim-child", help=argparse.SUPPRESS)  # internal: run inside the simulation venv
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.nodes < 1 or args.repeats < 1:
        parser.error("--rounds, --nodes and --repeats must be at least 1")
    return args


# What each ``pollen.*`` key of the run config must say for the parameters above; the run config
# itself is taken from Pollen (``training.runner.run_config_for`` of the warm-up execution), so that
# keys Pollen adds later reach the bare loop and the simulation unchanged.
EXPECTED_KEYS = {"pollen.model": "model_type", "pollen.dataset": "dataset", "pollen.algorithm": "algorithm",
                 "pollen.partition": "partition", "pollen.local-epochs": "local_epochs",
                 "pollen.batch-size": "batch_size", "pollen.learning-rate": "learning_rate", "pollen.seed": "seed"}


def check_run_config(model: str, config: dict, rounds: int, nodes: int) -> None:
    c = MODELS[model]
    wrong = {key: (config.get(key), c[name]) for key, name in EXPECTED_KEYS.items() if config.get(key) != c[name]}
    for key, value in (("pollen.rounds", rounds), ("pollen.min-clients", nodes), ("pollen.round-offset", 0)):
        if config.get(key) != value:
            wrong[key] = (config.get(key), value)
    if wrong:
        raise SystemExit(f"Pollen's run config is not the benchmark's (key: (pollen, wanted)): {wrong}")


def with_rounds(config: dict, rounds: int) -> dict:
    return {**config, "pollen.rounds": rounds}


def node_configs(nodes: int) -> dict[int, dict]:
    return {i + 1: {"partition-id": i, "num-partitions": nodes} for i in range(nodes)}


def _median(values):
    return statistics.median(values) if values else float("nan")


# ---- the bare loop ------------------------------------------------------------------------------

class _Probe:
    """NullObserver's no-ops, plus the one hook the builtin ServerApp offers to hand over the server's
    test metrics: a dict store, so the bare loop can report its accuracy."""

    def __init__(self):
        from training.engine.grid import NullObserver

        self._null = NullObserver()
        self.server_metrics: dict[int, dict] = {}

    def __getattr__(self, name):
        return getattr(self._null, name)

    def on_server_evaluation(self, round_number, arrays, metrics):
        self.server_metrics[round_number] = metrics


def builtin_client_app(config: dict):
    """The ClientApp the runner hands the Grid for ``config`` (as ``_drive_builtin_app`` picks it)."""
    from training.engine import builtin_app

    pick = getattr(builtin_app, "client_app_for", None)
    return pick(config) if pick is not None else builtin_app.client_app


def bare_run(config: dict, nodes: int) -> dict:
    """Pollen's builtin ServerApp/ClientApp over a plain InProcessGrid: no observer work, no database."""
    from training.engine import builtin_app
    from training.engine.grid import InProcessGrid, server_context, server_identity

    rounds = config["pollen.rounds"]
    probe = _Probe()
    started = time.perf_counter()
    grid = InProcessGrid(client_app=builtin_client_app(config), nodes=node_configs(nodes), run_config=config,
                         run_id=1, observer=probe)
    grid.initial_arrays = None
    server_identity(grid.run.run_id)
    builtin_app.server_app(grid, server_context(grid.run.run_id, config))
    grid.finish()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "accuracy": probe.server_metrics[rounds]["accuracy"]}


# ---- Pollen through its API ---------------------------------------------------------------------

def setup_django(var_dir: Path):
    """Environment for an embedded Pollen on a fresh SQLite file in ``var_dir``; migrate; a user
    with the built-in "user" role, a project and a JWT. Returns a test Client and the project id."""
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "POLLEN_VAR_DIR": str(var_dir),
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "LOG_LEVEL": "WARNING",
        "THROTTLE_GENERAL": "1000000/min",
        "THROTTLE_TRAINING": "1000000/min",
        "ACCESS_TOKEN_MINUTES": "240",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "MEDIA_ROOT", "DEBUG"):
        os.environ.pop(name, None)  # the embedded defaults: SQLite, local memory, files under var_dir
    os.environ.update(env)
    (var_dir / "staticfiles").mkdir(exist_ok=True)
    sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", interactive=False, verbosity=0)
    from accounts.models import Role, User
    from accounts.services import tokens_issue
    from projects.models import Project

    user = User.objects.create_user(username="bench", email="bench@example.com", password=None)
    user.roles.set(Role.objects.filter(name="user"))
    project = Project.objects.create(owner=user, name="Engine benchmark", configuration={})
    token = tokens_issue(user=User.objects.get(pk=user.pk))["access_token"]
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}"), project.pk


def _data(response):
    body = response.json()
    return body.get("data", body) if isinstance(body, dict) else body


def pollen_run(client, project_id, model: str, rounds: int, nodes: int, expected_config: dict | None = None,
               timeout: float = 900) -> dict:
    """One execution through the API, timed from the POST until the job reads completed. With
    ``expected_config``, fails unless Pollen ran exactly that run config on the same nodes."""
    from core.models import Event
    from training.models import Execution, ExecutionLog, Round, RoundClient
    from training.runner import nodes_for, run_config_for

    c = MODELS[model]
    body = {"project_id": str(project_id), "name": f"bench {model}", "algorithm": c["algorithm"],
            "config": {"rounds": rounds, "clients": nodes, "min_clients": nodes,
                       **{k: v for k, v in c.items() if k != "algorithm"}}}
    events_before = Event.objects.count()
    started = time.perf_counter()
    response = client.post("/api/v1/training/start", data=json.dumps(body), content_type="application/json")
    if response.status_code != 202:
        raise SystemExit(f"POST /api/v1/training/start answered {response.status_code}: {response.content[:500]!r}")
    job_id = _data(response)["job_id"]
    deadline = started + timeout
    while True:
        response = client.get(f"/api/v1/training/jobs/{job_id}")
        if response.status_code != 200:
            raise SystemExit(f"GET /api/v1/training/jobs/{job_id} answered {response.status_code}: "
                             f"{response.content[:500]!r}")
        status = _data(response)["status"]
        if status in TERMINAL or time.perf_counter() > deadline:
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    execution = Execution.objects.get(pk=job_id)
    if status != "completed":
        raise SystemExit(f"Pollen's execution ended {status}: {execution.error_message}")
    config = run_config_for(execution)
    check_run_config(model, config, rounds, nodes)
    if nodes_for(execution) != node_configs(nodes):
        raise SystemExit(f"Pollen's nodes are not the bare loop's: {nodes_for(execution)}")
    if expected_config is not None and config != expected_config:  # identical work, key by key
        diff = {k: (expected_config.get(k), config.get(k)) for k in set(expected_config) | set(config)
                if expected_config.get(k) != config.get(k)}
        raise SystemExit(f"Pollen's run config differs from the bare loop's (key: (bare, pollen)): {diff}")
    rows = list(Round.objects.filter(execution=execution).order_by("number"))
    return {
        "seconds": seconds,
        "config": config,
        "accuracy": rows[-1].server_metrics["accuracy"],
        "round_seconds": [r.duration_seconds for r in rows if r.duration_seconds is not None],
        "records": {"rounds": len(rows), "checkpoints": sum(1 for r in rows if r.checkpoint),
                    "round_clients": RoundClient.objects.filter(round__execution=execution).count(),
                    "logs": ExecutionLog.objects.filter(execution=execution).count(),
                    "events": Event.objects.count() - events_before},
    }


def pollen_breakdown(client, project_id, model: str, rounds: int, nodes: int, config: dict) -> dict:
    """One more Pollen run with timers around the runner's observer callbacks and the live-event
    delivery, to say where Pollen's extra time goes. Not part of the medians."""
    import functools

    from core import realtime
    from training import runner

    spent: dict[str, float] = {}
    targets = [(runner.ExecutionObserver, name, name) for name in
               ("before_round", "on_replies", "on_global_arrays", "on_server_evaluation", "on_round_end")]
    targets.append((realtime, "_send", "events"))
    originals = []

    def timed(owner, name, label):
        original = getattr(owner, name)
        originals.append((owner, name, original))

        @functools.wraps(original)
        def wrapper(*a, **k):
            started = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - started

        setattr(owner, name, wrapper)

    try:
        for owner, name, label in targets:
            timed(owner, name, label)
        result = pollen_run(client, project_id, model, rounds, nodes, expected_config=config)
    finally:
        for owner, name, original in reversed(originals):
            setattr(owner, name, original)
    return {**result, "spent": spent}


# ---- centralised training -----------------------------------------------------------------------

def central_accuracy(model: str, config: dict, nodes: int) -> dict:
    """Test accuracy after ``rounds x local_epochs`` epochs on (a) the whole training split and
    (b) the union of what the nodes train on (their partitions less the 20% each keeps to validate)."""
    import numpy as np

    from training.engine import builtin_app
    from training.engine.models import build_model

    c = MODELS[model]
    dataset = builtin_app.dataset_for(config)
    epochs = config["pollen.rounds"] * c["local_epochs"]
    parts = [builtin_app.node_data(config, node)[0] for node in node_configs(nodes).values()]
    pooled = {"whole": (dataset.x_train, dataset.y_train),
              "nodes": (np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]))}
    out = {"epochs": epochs, "sizes": {}}
    for name, (x, y) in pooled.items():
        m = build_model(c["model_type"], dataset, seed=c["seed"])
        started = time.perf_counter()
        m.fit(x, y, epochs=epochs, learning_rate=c["learning_rate"], batch_size=c["batch_size"], seed=c["seed"])
        out[f"{name}_seconds"] = time.perf_counter() - started
        out[name] = m.evaluate(dataset.x_test, dataset.y_test)["accuracy"]
        out["sizes"][name] = len(y)
    return out


# ---- Flower's simulation engine, in its own venv ------------------------------------------------

def _tail(text: str, lines: int = 12) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])


def sim_python(args, log_dir: Path) -> tuple[str | None, str]:
    """The simulation venv's python once it imports flwr + ray + numpy + scikit-learn, else
    (None, why). Creates and fills the venv from requirements-bench.txt unless --no-sim-install."""
    venv = Path(args.sim_venv)
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import flwr, ray, numpy, sklearn; print(flwr.__version__, ray.__version__)"]

    def works() -> tuple[bool, str]:
        if not python.exists():
            return False, f"{python} does not exist"
        done = subprocess.run(probe, capture_output=True, text=True, timeout=120)
        return done.returncode == 0, (done.stdout.strip() if done.returncode == 0 else done.stderr.strip())

    ok, info = works()
    if ok:
        return str(python), info
    if args.no_sim_install:
        return None, f"--no-sim-install and {venv} is not usable ({info.splitlines()[-1] if info else 'no output'})"
    log = log_dir / "sim-venv-install.log"
    print(f"installing flwr[simulation] into {venv} (log: {log}) ...", flush=True)
    started = time.monotonic()
    with open(log, "w") as fh:
        base = getattr(sys, "_base_executable", sys.executable)
        steps = [[base, "-m", "venv", str(venv)]] if not python.exists() else []
        steps.append([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                      "-r", str(REQUIREMENTS)])
        for cmd in steps:
            try:
                done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=900)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return None, f"`{' '.join(cmd)}` failed: {exc}"
            if done.returncode != 0:
                return None, f"`{' '.join(cmd)}` exited {done.returncode}:\n{_tail(log.read_text())}"
    ok, info = works()
    if not ok:
        return None, f"installed, but flwr/ray do not import: {info.splitlines()[-1] if info else ''}"
    print(f"installed in {time.monotonic() - started:.0f} s", flush=True)
    return str(python), info


def simulation_run(python: str, model: str, config: dict, nodes: int, client_cpus: int, log_dir: Path,
                   timeout: int) -> tuple[dict | None, str]:
    """Run ``run_simulation`` in a child process of the simulation venv; (result, "") or (None, why)."""
    spec = {"model": model, "rounds": config["pollen.rounds"], "nodes": nodes, "client_cpus": client_cpus,
            "run_config": config}
    env = {**os.environ, "PYTHONPATH": str(BASE_DIR), "FLWR_TELEMETRY_ENABLED": "0",
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0", "PYTHONUNBUFFERED": "1"}
    for name in ("VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    log = log_dir / f"simulation-{model}-{client_cpus}cpu.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([python, str(Path(__file__).resolve()), "--sim-child", json.dumps(spec)],
                                cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return None, f"did not finish within {timeout} s (log: {log}):\n{_tail(log.read_text())}"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    for line in out.splitlines():
        if line.startswith("SIMRESULT "):
            return json.loads(line[len("SIMRESULT "):]), ""
    return None, f"exited {proc.returncode} without a result (log: {log}):\n{_tail(log.read_text())}"


def sim_child(spec_json: str) -> int:
    """Inside the simulation venv: Pollen's builtin app under flwr.simulation.run_simulation.

    run_simulation gives every Context an empty run config, so thin wrapper apps put Pollen's
    ``pollen.*`` keys in and call the builtin apps themselves (the ClientApp the runner would pick);
    node configs (partition-id, num-partitions) come from the simulation, as the builtin app expects."""
    spec = json.loads(spec_json)
    sys.path.insert(0, str(BASE_DIR))
    import logging
    import re

    from flwr.app import Context
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    from training.engine import builtin_app

    config = dict(spec["run_config"])
    pick = getattr(builtin_app, "client_app_for", None)
    inner_client = pick(config) if pick is not None else builtin_app.client_app
    result: dict = {"server_metrics": {}}

    class Probe:
        def on_server_evaluation(self, round_number, arrays, metrics):
            result["server_metrics"][round_number] = metrics

    def with_config(context):
        # Flower refuses a changed run_config on the Context it hands in; the builtin apps get a
        # copy that carries the config and shares the node's state.
        return Context(run_id=context.run_id, node_id=context.node_id, node_config=context.node_config,
                       state=context.state, run_config=dict(config))

    client_app = ClientApp()

    @client_app.train()
    def train(msg, context):
        return inner_client(msg, with_config(context))

    @client_app.evaluate()
    def evaluate(msg, context):
        return inner_client(msg, with_config(context))

    server_app = ServerApp()

    @server_app.main()
    def main(grid, context):
        try:
            grid.observer = Probe()
        except AttributeError:
            pass
        started = time.perf_counter()
        builtin_app.server_app(grid, with_config(context))
        result["loop_seconds"] = time.perf_counter() - started

    class FailureCounter(logging.Handler):
        """Counts the node failures Flower's strategy reports ("Received N results and M failures")."""

        def emit(self, record):
            match = re.search(r"Received (\d+) results and (\d+) failures", record.getMessage())
            if match:
                result["replies"] = result.get("replies", 0) + int(match.group(1))
                result["failures"] = result.get("failures", 0) + int(match.group(2))

    logging.getLogger("flwr").addHandler(FailureCounter())
    random.seed(int(config.get("pollen.seed", 0)))
    started = time.perf_counter()
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=spec["nodes"],
                   backend_config={"client_resources": {"num_cpus": spec["client_cpus"], "num_gpus": 0.0},
                                   "init_args": {"include_dashboard": False}})
    result["seconds"] = time.perf_counter() - started
    rounds = spec["rounds"]
    if "loop_seconds" not in result or rounds not in result["server_metrics"]:
        print(f"the ServerApp did not finish its {rounds} rounds: {sorted(result['server_metrics'])}", file=sys.stderr)
        return 1
    if result.get("failures"):
        print(f"{result['failures']} node replies were errors (of {result['failures'] + result.get('replies', 0)})",
              file=sys.stderr)
        return 1
    metrics = result.pop("server_metrics")
    result["accuracy"] = metrics[rounds]["accuracy"]
    print("SIMRESULT " + json.dumps(result), flush=True)
    return 0


# ---- the run ------------------------------------------------------------------------------------

def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def _quiet_console() -> None:
    """Console output below WARNING off, for every run alike. Pollen's root JSON handler has no level
    of its own, so without this every INFO line of Flower's (the ``flwr`` logger is at DEBUG) is
    printed despite LOG_LEVEL=WARNING; Flower's own console handler likewise. Pollen's log handler,
    which the runner adds to the ``flwr`` logger to keep the lines as ExecutionLog rows, still
    receives every record."""
    import logging

    from flwr.common.logger import console_handler

    console_handler.setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.sim_child:
        return sim_child(args.sim_child)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores; load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
          + ("  (other work is running: it skews every figure)" if load[0] > 0.5 else ""), flush=True)
    rounds, nodes = args.rounds, args.nodes
    tmp = Path(tempfile.mkdtemp(prefix="pollen-bench-engine-"))
    overall = time.monotonic()
    try:
        client, project_id = setup_django(tmp)
        _quiet_console()
        print(f"database: SQLite ({tmp / 'pollen.sqlite3'}), migrated; Celery eager (task runs inside the "
              f"request); Pollen path: POST /api/v1/training/start -> GET /api/v1/training/jobs/<id> completed",
              flush=True)
        print(f"work: {nodes} nodes x {rounds} rounds, fedavg, iid, local_epochs 1, batch 32, seed 0; "
              f"cnn: SmallCNN, Adam lr {MODELS['cnn']['learning_rate']}; "
              f"logistic: numpy softmax regression, SGD lr {MODELS['logistic']['learning_rate']}", flush=True)

        # Warm-up: imports (torch), the data set cache, Django's first requests. Not measured.
        started = time.monotonic()
        configs = {}
        for model in MODELS:
            warm = pollen_run(client, project_id, model, 1, nodes)
            configs[model] = with_rounds(warm["config"], rounds)  # the run config of every measured run
            bare_run(with_rounds(configs[model], 1), nodes)
        print(f"warm-up (1 round of each, unmeasured): {time.monotonic() - started:.1f} s", flush=True)

        # 1. Pollen against the bare loop, alternated so that drift in the machine's load hits both.
        results: dict[tuple[str, str], list[dict]] = {}
        for model in MODELS:
            for i in range(args.repeats):
                order = ("bare", "pollen") if i % 2 == 0 else ("pollen", "bare")
                for engine in order:
                    random.seed(MODELS[model]["seed"])  # Flower's FedAvg samples nodes with `random`
                    r = (bare_run(configs[model], nodes) if engine == "bare"
                         else pollen_run(client, project_id, model, rounds, nodes, expected_config=configs[model]))
                    results.setdefault((engine, model), []).append(r)
                    print(f"  {model:<8} {engine:<6} run {i + 1}: {r['seconds']:7.2f} s  "
                          f"accuracy {r['accuracy']:.4f}", flush=True)

        def med(engine, model, key="seconds"):
            return _median([r[key] for r in results[(engine, model)]])

        print()
        print(f"1. Pollen (API + records) vs the bare strategy loop: {nodes} nodes x {rounds} rounds, "
              f"median of {args.repeats} runs each")
        print(f"{'engine':<14} {'model':<9} {'total s':>8} {'s/round':>8} {'final acc':>10}  runs (s)")
        for model in MODELS:
            for engine, label in (("bare", "bare loop"), ("pollen", "pollen (API)")):
                runs = results[(engine, model)]
                print(f"{label:<14} {model:<9} {med(engine, model):>8.2f} {med(engine, model) / rounds:>8.3f} "
                      f"{med(engine, model, 'accuracy'):>10.4f}  "
                      + ", ".join(f"{r['seconds']:.2f}" for r in runs))
        for model in MODELS:
            pollen = results[("pollen", model)]
            in_rounds = _median([sum(r["round_seconds"]) for r in pollen])
            per_round = _median([s for r in pollen for s in r["round_seconds"]])
            accs = {round(r["accuracy"], 6) for k in (("bare", model), ("pollen", model)) for r in results[k]}
            spread = max(accs) - min(accs)
            print(f"{model}: pollen/bare = {med('pollen', model) / med('bare', model):.2f}; Pollen's rounds "
                  f"(Round.duration_seconds) median {per_round:.3f} s, sum {in_rounds:.2f} s, outside rounds "
                  f"{med('pollen', model) - in_rounds:.2f} s; final accuracy over all {2 * args.repeats} runs "
                  + ("identical" if spread == 0 else f"spread {spread * 100:.2f} points"))
        rec = results[("pollen", "cnn")][-1]["records"]
        print(f"records per Pollen run: {rec['rounds']} rounds, {rec['checkpoints']} checkpoints, "
              f"{rec['round_clients']} per-client rows, {rec['logs']} log rows, {rec['events']} events")
        ratio = med("pollen", "cnn") / med("bare", "cnn")
        random.seed(MODELS["cnn"]["seed"])
        diag = pollen_breakdown(client, project_id, "cnn", rounds, nodes, configs["cnn"])
        spent = diag["spent"]
        callbacks = sum(v for k, v in spent.items() if k != "events")
        extra = diag["seconds"] - med("bare", "cnn")
        print(f"where Pollen's extra time goes (cnn; one more run, timed inside, not in the medians): "
              f"{diag['seconds']:.2f} s total, {extra:.2f} s over the bare median, {extra / rounds * 1000:.0f} ms "
              f"per round")
        print(f"  the runner's observer callbacks: {callbacks:.2f} s ("
              + ", ".join(f"{k} {v:.2f}" for k, v in sorted(spent.items(), key=lambda kv: -kv[1]) if k != "events")
              + f"); of all this, live-event delivery (core.realtime._send) {spent.get('events', 0.0):.2f} s")
        print(f"  the rest (API request, run start and finish, records outside the callbacks, noise): "
              f"{extra - callbacks:.2f} s")

        # 2. Flower's simulation engine.
        print()
        print(f"2. Pollen vs Flower's simulation engine (Ray), model {SIM_MODEL} (numpy: no torch in the sim venv), "
              f"{nodes} nodes x {rounds} rounds")
        if args.skip_simulation:
            print("FLOWER SIMULATION: not run (--skip-simulation)")
        else:
            python, info = sim_python(args, tmp)
            if python is None:
                print(f"FLOWER SIMULATION: not run: flwr[simulation] is not usable here: {info}")
            else:
                print(f"simulation venv: {Path(python).parent.parent} (flwr, ray = {info})", flush=True)
                sims = []
                for client_cpus, label in ((2, "Flower default: 2 cpus/client, 1 actor"),
                                           (1, "1 cpu/client, 2 actors in parallel")):
                    sim, why = simulation_run(python, SIM_MODEL, configs[SIM_MODEL], nodes, client_cpus, tmp,
                                              args.sim_timeout)
                    if sim is None:
                        print(f"FLOWER SIMULATION ({label}): failed: {why}")
                        continue
                    sims.append((label, sim))
                    print(f"  flower-sim {label}: {sim['seconds']:.2f} s", flush=True)
                if sims:
                    pollen_s, bare_s = med("pollen", SIM_MODEL), med("bare", SIM_MODEL)
                    print(f"{'engine':<48} {'total s':>8} {'loop s':>8} {'final acc':>10}")
                    for label, sim in sims:
                        print(f"{'flower-sim (' + label + ')':<48} {sim['seconds']:>8.2f} {sim['loop_seconds']:>8.2f} "
                              f"{sim['accuracy']:>10.4f}")
                    print(f"{'pollen (API, median)':<48} {pollen_s:>8.2f} {'':>8} "
                          f"{med('pollen', SIM_MODEL, 'accuracy'):>10.4f}")
                    print(f"{'bare loop (median)':<48} {bare_s:>8.2f} {bare_s:>8.2f} "
                          f"{med('bare', SIM_MODEL, 'accuracy'):>10.4f}")
                    print("(total: time to completion, for the simulation including Ray's start and stop; "
                          "loop: the ServerApp's strategy loop alone)")
                    pollen_acc = med("pollen", SIM_MODEL, "accuracy")
                    for label, sim in sims:
                        gap = abs(sim["accuracy"] - pollen_acc) * 100
                        print(f"flower-sim ({label}) final accuracy "
                              + ("matches Pollen's" if gap < 0.5 else f"differs from Pollen's by {gap:.2f} points"))
                    for label, sim in sims:
                        print(f"RATIO pollen/flower-simulation ({SIM_MODEL}, {label}) = "
                              f"{pollen_s / sim['seconds']:.2f}   (loop only: pollen/flower-sim = "
                              f"{pollen_s / sim['loop_seconds']:.2f})")

        # 3. Centralised against federated.
        print()
        print(f"3. Final test accuracy: centralised on the pooled training data vs federated IID "
              f"({rounds} rounds x 1 local epoch = {rounds} epochs for any sample)")
        print(f"{'model':<9} {'central (whole train split)':>28} {'central (nodes 80% union)':>26} "
              f"{'federated (pollen)':>19} {'central-fed points':>19}")
        diffs = {}
        for model in MODELS:
            central = central_accuracy(model, configs[model], nodes)
            fed = med("pollen", model, "accuracy")
            diffs[model] = (central["whole"] - fed) * 100
            print(f"{model:<9} {central['whole']:>17.4f} (n={central['sizes']['whole']:>4}) "
                  f"{central['nodes']:>15.4f} (n={central['sizes']['nodes']:>4}) {fed:>19.4f} {diffs[model]:>+19.2f}")
        for model, diff in diffs.items():
            print(f"DIFF central-federated ({model}) = {diff:+.2f} points")

        print()
        print(f"total benchmark time {time.monotonic() - overall:.0f} s")
        print(f"RATIO pollen/bare = {ratio:.2f}   (cnn, {med('pollen', 'cnn') / rounds:.3f} vs "
              f"{med('bare', 'cnn') / rounds:.3f} s per round)")
        return 0
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
