"""Training parameters: one parser for every front door (seed 000 ``config``, seed 001/004 bodies).

Accepts seed 000's snake_case and seed 001's camelCase names, fills defaults, checks types and
ranges, and answers 422 ``VALIDATION_ERROR`` naming the field for anything it cannot use.
"""

from __future__ import annotations

from typing import Any

from core.exceptions import ValidationFailed
from training.engine.strategies import StrategyConfigError, resolve, validate_params

ALIASES = {
    "numRounds": "rounds", "num_rounds": "rounds", "totalRounds": "rounds",
    "numClients": "clients", "num_clients": "clients",
    "minClients": "min_clients", "modelType": "model_type", "learningRate": "learning_rate",
    "batchSize": "batch_size", "localEpochs": "local_epochs", "epochs": "local_epochs",
    "fractionFit": "fraction_fit", "fraction": "fraction_fit", "clientFraction": "fraction_fit", "fractionEvaluate": "fraction_evaluate",
    "strategyParams": "strategy_params", "partitionMethod": "partition", "targetColumn": "target_column",
}

# Image benchmarks that need a download; the bundled 10-class image set stands in for them.
IMAGE_STAND_INS = {"mnist", "fashion_mnist", "fashion-mnist", "emnist", "cifar10", "cifar-10", "kmnist"}
STAND_IN_DATASET = "digits"

FIELDS: dict[str, tuple[type, Any, float | None, float | None]] = {
    # name: (type, default, minimum, maximum)
    "rounds": (int, 5, 1, 1000),
    "clients": (int, 5, 1, 100),
    "min_clients": (int, None, 1, 100),
    "local_epochs": (int, 1, 1, 100),
    "batch_size": (int, 32, 1, 4096),
    "learning_rate": (float, 0.1, 1e-6, 10.0),
    "fraction_fit": (float, 1.0, 0.0, 1.0),
    "fraction_evaluate": (float, 1.0, 0.0, 1.0),
    "alpha": (float, 0.5, 1e-3, 1000.0),
    "seed": (int, 0, 0, 2**31 - 1),
    "target_accuracy": (float, None, 0.0, 1.0),
}
PARTITIONS = ("iid", "dirichlet", "shards")


def _fail(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, details={"field": field, "reason": message}, http_status=422)


def _number(field: str, value: Any, kind: type, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(field, f"{field} must be a number")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise _fail(field, f"{field} must be a whole number")
        value = int(value)
    else:
        value = float(value)
    if lo is not None and value < lo:
        raise _fail(field, f"{field} must be at least {lo}")
    if hi is not None and value > hi:
        raise _fail(field, f"{field} must be at most {hi}")
    return value


def parse_training_config(raw: dict | None, *, project_configuration: dict | None = None,
                          algorithm: str | None = None, strategy_params: dict | None = None,
                          upload=None, project=None) -> dict:
    """A complete, checked config dict. Keys: the FIELDS above plus model_type, dataset, partition,
    algorithm, strategy_params, model_params and ``substitutions`` (what stood in for what the
    caller asked); for a project's CSV data set also dataset_id, dataset_name, target_column and
    task.

    A CSV data set must belong to ``project``. Without a project (re-checking a stored config) the
    data set the config already names is looked up by its id. Inside a transaction the data set's
    row is locked, so that it cannot be deleted before the execution that uses it is saved."""
    from training.engine.datasets import BUILTIN_DATASETS
    from training.engine.models import SUPPORTED_MODELS

    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise _fail("config", "config must be a JSON object")
    data = {ALIASES.get(k, k): v for k, v in raw.items()}
    project_configuration = project_configuration or {}
    out: dict[str, Any] = {"substitutions": []}

    if upload is not None and "rounds" not in data:
        app_rounds = (upload.app_config or {}).get("num-server-rounds")
        if isinstance(app_rounds, int) and not isinstance(app_rounds, bool) and app_rounds > 0:
            data["rounds"] = app_rounds
    for field, (kind, default, lo, hi) in FIELDS.items():
        value = data.get(field, default)
        out[field] = None if value is None else _number(field, value, kind, lo, hi)
    if out["min_clients"] is None:
        out["min_clients"] = min(2, out["clients"]) if out["clients"] > 1 else 1
    if out["min_clients"] > out["clients"]:
        from core.exceptions import ApplicationError

        raise ApplicationError("FL002", f"min_clients ({out['min_clients']}) is more than the {out['clients']} "
                               "nodes of this federation", details={"field": "min_clients"})

    if upload is not None:
        if data.get("dataset_id") is not None or str(data.get("dataset") or "").startswith("csv:"):
            raise _fail("source", f"This project's uploaded Flower app {upload.app_name or upload.original_name!r} "
                                  "loads its own data; set source to \"builtin\" to train on a CSV data set")
        return _upload_config(out, data, upload)

    csv_dataset = _csv_dataset(data, project_configuration, project)
    model_type = data.get("model_type") or project_configuration.get("model_type") or (
        "linear" if csv_dataset is not None and csv_dataset.task == "regression" else "logistic")
    if not isinstance(model_type, str) or model_type not in SUPPORTED_MODELS:
        raise _fail("model_type", f"model_type must be one of {sorted(SUPPORTED_MODELS)}")
    out["model_type"] = model_type

    dataset = data.get("dataset")
    if csv_dataset is not None:
        out.update(_csv_config(model_type, csv_dataset, data, out["clients"]))
    elif dataset is None:
        dataset = project_configuration.get("dataset")
        if isinstance(dataset, str) and dataset.lower() in IMAGE_STAND_INS:
            out["substitutions"].append(
                f"dataset {dataset!r} needs a download; the bundled image set {STAND_IN_DATASET!r} is used")
            dataset = STAND_IN_DATASET
        dataset = dataset or ("diabetes" if model_type == "linear" else "digits")
    elif isinstance(dataset, str) and dataset.lower() in IMAGE_STAND_INS:
        raise _fail("dataset", f"dataset {dataset!r} cannot be downloaded here; bundled: {sorted(BUILTIN_DATASETS)}")
    if csv_dataset is None:
        if not isinstance(dataset, str) or dataset not in BUILTIN_DATASETS:
            raise _fail("dataset", f"dataset must be one of {sorted(BUILTIN_DATASETS)} or "
                                   "\"csv:<id>\" for a CSV data set of the project")
        out["dataset"] = dataset
        _check_pairing(model_type, dataset, BUILTIN_DATASETS[dataset])

    partition = data.get("partition", "iid")
    if partition not in PARTITIONS:
        raise _fail("partition", f"partition must be one of {list(PARTITIONS)}")
    out["partition"] = partition

    model_params = data.get("model_params", {})
    if not isinstance(model_params, dict):
        raise _fail("model_params", "model_params must be an object")
    out["model_params"] = model_params

    name = algorithm or data.get("algorithm") or data.get("strategy") or "fedavg"
    params = dict(strategy_params if strategy_params is not None else data.get("strategy_params") or {})
    if not isinstance(params, dict):
        raise _fail("strategy_params", "strategy_params must be an object")
    try:
        out["algorithm"] = resolve(str(name))
        params.setdefault("fraction_train", out["fraction_fit"])
        params.setdefault("fraction_evaluate", out["fraction_evaluate"])
        out["strategy_params"] = validate_params(out["algorithm"], params)
    except StrategyConfigError as exc:
        raise _fail(exc.field, str(exc))
    return out


# Which kind of data each model can learn from; checked before a run rather than failing in it.
MODEL_TASKS = {"logistic": {"classification"}, "mlp": {"classification"}, "cnn": {"classification"},
               "linear": {"regression"}, "kmeans": {"classification", "regression"}}
IMAGE_DATASETS = {"digits"}


def _check_pairing(model_type: str, dataset: str, task: str) -> None:
    if task not in MODEL_TASKS.get(model_type, {task}):
        fits = sorted(m for m, tasks in MODEL_TASKS.items() if task in tasks)
        raise _fail("model_type", f"model_type {model_type!r} cannot learn the {task} dataset {dataset!r}; "
                                  f"for it use one of {fits}")
    if model_type == "cnn" and dataset not in IMAGE_DATASETS:
        raise _fail("dataset", f"the cnn model needs an image dataset: {sorted(IMAGE_DATASETS)}")


def _csv_reference(data: dict, project_configuration: dict) -> str | None:
    """The id of the CSV data set a config names: ``"dataset": "csv:<id>"`` (``csv:<id>:<task>``
    as stored), seed 000's ``"dataset_id": "<id>"``, or else the project's configured dataset."""
    dataset, dataset_id = data.get("dataset"), data.get("dataset_id")
    named = None
    if isinstance(dataset, str) and dataset.split(":")[0] == "csv":
        named = dataset.split(":")[1] if ":" in dataset else None
        if named is None and dataset_id is None:
            raise _fail("dataset", 'Name the CSV data set: "csv:<id>", with the id of one of the '
                                   "project's data sets")
    elif dataset is not None and dataset_id is not None:
        raise _fail("dataset_id", "Give dataset or dataset_id, not both")
    if dataset_id is not None:
        if not isinstance(dataset_id, str):
            raise _fail("dataset_id", "dataset_id must be the id of one of the project's data sets")
        if named is not None and named != dataset_id:
            raise _fail("dataset_id", f"dataset names csv:{named} but dataset_id is {dataset_id}")
        return dataset_id
    if named is not None or dataset is not None:
        return named
    configured = project_configuration.get("dataset")
    if isinstance(configured, str) and configured.startswith("csv:"):
        return configured.split(":")[1]
    return None


def _csv_dataset(data: dict, project_configuration: dict, project):
    """The project's CSV data set the config names, or None when it names a bundled one."""
    import uuid

    from django.db import transaction

    from projects.models import ProjectDataset

    reference = _csv_reference(data, project_configuration)
    if reference is None:
        return None
    field = "dataset_id" if data.get("dataset_id") is not None else "dataset"
    try:
        dataset_id = uuid.UUID(reference)
    except ValueError:
        raise _fail(field, f"csv:{reference} is not a data set of this project")
    datasets = ProjectDataset.objects.filter(pk=dataset_id)
    if project is not None:
        datasets = datasets.filter(project=project)
    if transaction.get_connection().in_atomic_block:
        datasets = datasets.select_for_update()
    dataset = datasets.first()
    if dataset is None:
        raise _fail(field, f"csv:{reference} is not a data set of this project")
    return dataset


# Models that need an image shape, which a CSV file does not give.
IMAGE_MODELS = {"cnn"}


def _csv_config(model_type: str, dataset, data: dict, clients: int) -> dict:
    from training.engine.datasets import csv_dataset_name

    fits = sorted(m for m, tasks in MODEL_TASKS.items() if dataset.task in tasks and m not in IMAGE_MODELS)
    if model_type not in fits:
        reason = "needs an image data set" if model_type in IMAGE_MODELS else f"cannot learn a {dataset.task} target"
        raise _fail("model_type", f"model_type {model_type!r} {reason}; for the {dataset.task} data set "
                                  f"{dataset.name!r} use one of {fits}")
    target = data.get("target_column")
    if target is not None and target != dataset.target_column:
        raise _fail("target_column", f"The data set {dataset.name!r} was validated with the target column "
                                     f"{dataset.target_column!r}; upload it again to train on another")
    # load_dataset holds out a fifth for the server's evaluation; each node needs two rows of the rest.
    train_rows = dataset.rows - int(round(dataset.rows * 0.2))
    if clients * 2 > train_rows:
        raise _fail("clients", f"The data set {dataset.name!r} has {dataset.rows} rows: enough for at most "
                               f"{train_rows // 2} nodes")
    return {"dataset": csv_dataset_name(str(dataset.pk), dataset.task), "dataset_id": str(dataset.pk),
            "dataset_name": dataset.name, "target_column": dataset.target_column, "task": dataset.task}


def _upload_config(out: dict, data: dict, upload) -> dict:
    """An uploaded Flower app brings its own model, data and strategy: only the federation's
    shape (rounds, nodes) and overrides of its run config are Pollen's to set."""
    run_config = data.get("run_config", {})
    if not isinstance(run_config, dict) or not all(
            isinstance(v, (str, int, float, bool)) for v in run_config.values()):
        raise _fail("run_config", "run_config must be an object of strings, numbers and booleans")
    out.update({"model_type": "flower_app", "dataset": "", "partition": "iid", "model_params": {},
                "algorithm": "app", "strategy_params": {}, "run_config": run_config,
                "source": "upload", "upload_id": str(upload.pk)})
    if data.get("model_type"):
        out["substitutions"].append(
            f"model_type {data['model_type']!r} is ignored: the uploaded app {upload.app_name or upload.original_name!r} "
            "defines its own model")
    return out


DP_DEFAULTS = {"mode": "server", "clipping": "fixed", "noise_multiplier": 1.0, "clipping_norm": 1.0, "delta": 1e-5}


def parse_privacy(raw: dict | None, *, uploaded: bool = False) -> dict:
    """Checked privacy settings: ``{"differential_privacy": {...} | {}, "secure_aggregation": False}``.

    Differential privacy wraps the strategy in Flower's clipping strategy (server- or client-side,
    fixed or adaptive) with Gaussian noise; fixed clipping is accounted with Rényi DP and each
    round reports the epsilon spent for ``delta``. ``epsilon`` sets a budget the run may not exceed.
    """
    raw = raw or {}
    if not isinstance(raw, dict):
        raise _fail("privacy_config", "privacy_config must be an object")
    secagg = _parse_secagg(raw, uploaded=uploaded)
    if not raw.get("differential_privacy"):
        out = {"differential_privacy": {}, "secure_aggregation": bool(secagg)}
        return {**out, "secagg": secagg} if secagg else out
    if secagg:
        raise _fail("privacy_config.secure_aggregation",
                    "secure aggregation and differential privacy cannot be combined here: choose one")
    if uploaded:
        raise _fail("privacy_config.differential_privacy",
                    "an uploaded Flower app sets up its own strategy; add Flower's DP wrapper in the app")
    dp = {**DP_DEFAULTS, **{k: v for k, v in raw.items() if k in DP_DEFAULTS and v is not None}}
    if dp["mode"] not in ("server", "client"):
        raise _fail("privacy_config.mode", "mode must be 'server' or 'client'")
    if dp["clipping"] not in ("fixed", "adaptive"):
        raise _fail("privacy_config.clipping", "clipping must be 'fixed' or 'adaptive'")
    for field, lo, hi in (("noise_multiplier", 1e-6, 1000.0), ("clipping_norm", 1e-9, 1e6), ("delta", 1e-12, 0.1)):
        dp[field] = _number(f"privacy_config.{field}", dp[field], float, lo, hi)
    if raw.get("epsilon") is not None:
        dp["max_epsilon"] = _number("privacy_config.epsilon", raw["epsilon"], float, 1e-6, 1e6)
    dp["enabled"] = True
    return {"differential_privacy": dp, "secure_aggregation": False}


SECAGG_FIELDS = {
    # name: (type, minimum, maximum)
    "num_shares": (float, 0.0, 1000.0),
    "reconstruction_threshold": (float, 0.0, 1000.0),
    "clipping_range": (float, 1e-3, 1e6),
    "quantization_range": (int, 2, 2**30),
}


def _parse_secagg(raw: dict, *, uploaded: bool) -> dict | None:
    """Flower's SecAgg+: ``secure_aggregation: true`` with optional ``num_shares`` and
    ``reconstruction_threshold`` (a count, or a fraction of the nodes when <= 1), ``clipping_range``
    and ``quantization_range`` (see ``training.engine.secure``)."""
    value = raw.get("secure_aggregation")
    if not value:
        return None
    if not isinstance(value, (bool, dict)):
        raise _fail("privacy_config.secure_aggregation", "secure_aggregation must be true, false or an object")
    if uploaded:
        raise _fail("privacy_config.secure_aggregation",
                    "an uploaded Flower app sets up its own aggregation; add Flower's SecAggPlusWorkflow and "
                    "secaggplus_mod in the app")
    source = value if isinstance(value, dict) else raw
    out: dict = {"enabled": True}
    for field, (kind, lo, hi) in SECAGG_FIELDS.items():
        if source.get(field) is not None:
            number = _number(f"privacy_config.{field}", source[field], float, lo, hi)
            out[field] = int(number) if kind is int or number > 1 else number
    shares, threshold = out.get("num_shares"), out.get("reconstruction_threshold")
    if isinstance(shares, int) and shares <= 2:
        raise _fail("privacy_config.num_shares", "num_shares as a count must be at least 3 (or a fraction <= 1)")
    if isinstance(shares, int) and isinstance(threshold, int) and threshold >= shares:
        raise _fail("privacy_config.reconstruction_threshold", "reconstruction_threshold must be below num_shares")
    return out


def check_secagg_fits(algorithm: str, clients: int) -> None:
    """SecAgg+ sums updates: it needs a strategy built on that sum and at least three nodes."""
    from training.engine.secure import LEGACY_STRATEGIES

    if algorithm not in LEGACY_STRATEGIES:
        raise _fail("algorithm", f"secure aggregation only reveals the sum of the updates, which {algorithm!r} "
                                 f"cannot use; choose one of {sorted(LEGACY_STRATEGIES)}")
    if clients < 3:
        raise _fail("clients", "secure aggregation needs at least 3 nodes")
