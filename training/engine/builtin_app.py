"""Pollen's own Flower app: the models and data sets that ship with the platform.

A ServerApp and a ClientApp written against Flower's Message API, as any Flower app is. What to
train comes from the run config (flat ``pollen.*`` keys, set by the runner from the execution);
which part of the data a node holds comes from its node config (``partition-id``,
``num-partitions``). Each node trains only on its own partition; the server evaluates the global
model on the held-out test split after every round.

Aggregation settings come from the run config too: ``pollen.weights`` (how much each node's update
counts), ``pollen.validation`` (a held-out check each aggregate must pass, else the previous global
model is kept) and ``pollen.manual-step`` (one round on chosen nodes, then suspend).
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import adaptiveclipping_mod, fixedclipping_mod
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp import strategy as flwr_strategies
from flwr.serverapp.strategy import Strategy

from training.engine.datasets import load_dataset, partition
from training.engine.grid import ExecutionInterrupted
from training.engine.models import build_model
from training.engine.strategies import build_strategy

LOCAL_VALIDATION_FRACTION = 0.2
# The metric each weighting averages updates by; "proportional" is Flower's default, by examples.
# Clients send ``perf-weight`` only when it is asked for: it costs an evaluation per round.
WEIGHT_KEYS = {"uniform": "unit-weight", "proportional": None, "performance": "perf-weight"}
# A node that scores nothing still counts a little, so that the weights never sum to zero.
MIN_PERFORMANCE_WEIGHT = 1e-6


def _conf(run_config: dict, key: str, default=None):
    return run_config.get(f"pollen.{key}", default)


@lru_cache(maxsize=8)
def _dataset(name: str, seed: int, csv_path: str, target: str):
    return load_dataset(name, seed=seed, csv_path=csv_path or None, target_column=target or None)


def dataset_for(run_config: dict):
    return _dataset(_conf(run_config, "dataset"), int(_conf(run_config, "seed", 0)),
                    _conf(run_config, "csv-path", ""), _conf(run_config, "target-column", ""))


@lru_cache(maxsize=64)
def _partition_indices(name, seed, csv_path, target, num_partitions, method, alpha) -> tuple:
    dataset = _dataset(name, seed, csv_path, target)
    parts = partition(dataset.y_train, num_partitions, method=method, alpha=alpha, seed=seed, min_size=2)
    return tuple(parts)


def node_data(run_config: dict, node_config: dict):
    """The node's local (train, validation) arrays: its partition, split 80/20 by the run seed."""
    dataset = dataset_for(run_config)
    parts = _partition_indices(
        _conf(run_config, "dataset"), int(_conf(run_config, "seed", 0)), _conf(run_config, "csv-path", ""),
        _conf(run_config, "target-column", ""), int(node_config["num-partitions"]),
        _conf(run_config, "partition", "iid"), float(_conf(run_config, "alpha", 0.5)),
    )
    pid = int(node_config["partition-id"])
    indices = np.random.default_rng(int(_conf(run_config, "seed", 0)) + pid).permutation(parts[pid])
    cut = max(1, int(len(indices) * (1 - LOCAL_VALIDATION_FRACTION)))
    train_idx, val_idx = indices[:cut], indices[cut:] if len(indices) > cut else indices[:1]
    return (dataset.x_train[train_idx], dataset.y_train[train_idx]), (dataset.x_train[val_idx], dataset.y_train[val_idx])


def new_model(run_config: dict):
    params = json.loads(_conf(run_config, "model-params", "{}"))
    return build_model(_conf(run_config, "model"), dataset_for(run_config), seed=int(_conf(run_config, "seed", 0)),
                       **params)


def _float_metrics(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float, np.floating, np.integer))}


def performance_weight(metrics: dict) -> float:
    """How much a node's update counts under ``performance`` weighting: its local validation
    accuracy, or 1/(1+loss) for a model without accuracy."""
    score = metrics["accuracy"] if "accuracy" in metrics else 1.0 / (1.0 + max(float(metrics.get("loss", 0.0)), 0.0))
    return max(float(score), MIN_PERFORMANCE_WEIGHT)


# ---- ClientApp ---------------------------------------------------------------------------------
def train(msg: Message, context: Context) -> Message:
    (x, y), (x_val, y_val) = node_data(context.run_config, context.node_config)
    model = new_model(context.run_config)
    global_weights = msg.content["arrays"].to_numpy_ndarrays()
    model.set_weights(global_weights)
    config = msg.content.get("config") or ConfigRecord()
    # The absolute round, so that a resumed run draws the same batches as an uninterrupted one.
    server_round = int(config.get("server-round", 1)) + int(_conf(context.run_config, "round-offset", 0))
    metrics = model.fit(
        x, y,
        epochs=int(_conf(context.run_config, "local-epochs", 1)),
        learning_rate=float(config.get("lr", _conf(context.run_config, "learning-rate", 0.1))),
        batch_size=int(_conf(context.run_config, "batch-size", 32)),
        seed=int(_conf(context.run_config, "seed", 0)) * 1000 + server_round * 100 + int(context.node_config["partition-id"]),
        proximal_mu=float(config.get("proximal-mu", 0.0)),
        global_weights=global_weights,
    )
    metrics = {f"train_{k}" if k != "num_examples" else "num-examples": v for k, v in _float_metrics(metrics).items()}
    metrics["num-examples"] = int(len(y))
    # Differential privacy is accounted per node: every node's update weighs the same.
    metrics["unit-weight"] = 1
    if _conf(context.run_config, "weights") == "performance":
        metrics["perf-weight"] = performance_weight(model.evaluate(x_val, y_val))
    return Message(RecordDict({"arrays": ArrayRecord(model.get_weights()), "metrics": MetricRecord(metrics)}),
                   reply_to=msg)


def evaluate(msg: Message, context: Context) -> Message:
    _, (x, y) = node_data(context.run_config, context.node_config)
    model = new_model(context.run_config)
    model.set_weights(msg.content["arrays"].to_numpy_ndarrays())
    local = _float_metrics(model.evaluate(x, y))
    metrics = {f"eval_{k}": v for k, v in local.items() if k != "num_examples"}
    metrics["num-examples"] = int(len(y))
    metrics["unit-weight"] = 1
    # The strategy weighs evaluation replies by the same key as training ones.
    if _conf(context.run_config, "weights") == "performance":
        metrics["perf-weight"] = performance_weight(local)
    return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)


def _client_app(mods: list | None = None) -> ClientApp:
    app = ClientApp()
    app.train(mods=mods)(train)
    app.evaluate()(evaluate)
    return app


client_app = _client_app()
# Client-side differential privacy: each node clips its update before it leaves (Flower's mods).
client_app_fixed_clipping = _client_app([fixedclipping_mod])
client_app_adaptive_clipping = _client_app([adaptiveclipping_mod])


def client_app_for(run_config: dict) -> ClientApp:
    dp = json.loads(_conf(run_config, "dp", "{}"))
    if dp.get("mode") == "client":
        return client_app_adaptive_clipping if dp.get("clipping") == "adaptive" else client_app_fixed_clipping
    return client_app


def with_differential_privacy(strategy, dp: dict, num_nodes: int):
    """Wrap ``strategy`` in Flower's DP strategy named by ``dp`` (mode server|client, clipping
    fixed|adaptive), with an RDP accountant that reports epsilon for ``dp["delta"]``."""
    from flwr.serverapp import NeighboringRelation, PrivacyConfig, RdpAccountant, SamplingMethod

    mode, clipping = dp.get("mode", "server"), dp.get("clipping", "fixed")
    name = f"DifferentialPrivacy{'ServerSide' if mode == 'server' else 'ClientSide'}" \
           f"{'Adaptive' if clipping == 'adaptive' else 'Fixed'}Clipping"
    cls = getattr(flwr_strategies, name)
    kwargs = {"noise_multiplier": float(dp["noise_multiplier"]), "num_sampled_clients": num_nodes}
    if clipping == "adaptive":
        kwargs["initial_clipping_norm"] = float(dp.get("clipping_norm", 0.1))
    else:
        kwargs["clipping_norm"] = float(dp["clipping_norm"])
        kwargs["accountant"] = RdpAccountant(PrivacyConfig(
            target_delta=float(dp.get("delta", 1e-5)), population_size=num_nodes,
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            sampling_method=SamplingMethod.NO_AMPLIFICATION,
            max_epsilon=dp.get("max_epsilon"),
        ))
    return cls(strategy, **kwargs)


# ---- aggregation settings ----------------------------------------------------------------------
def passes_validation(metrics: dict, validation: dict) -> bool:
    """Whether held-out ``metrics`` meet ``validation``: accuracy at least the threshold, loss at
    most it. A listed metric the model does not measure is not judged."""
    threshold = float(validation.get("threshold", 0.0))
    for name in validation.get("metrics") or (["accuracy"] if "accuracy" in metrics else ["loss"]):
        value = metrics.get(name)
        if value is None:
            continue
        if (name == "accuracy" and value < threshold) or (name != "accuracy" and value > threshold):
            return False
    return True


class ValidatedAggregation(Strategy):
    """Wraps a strategy so that an aggregate failing ``check`` is rejected: the round keeps the
    global model it started from. ``outcomes`` holds each round's verdict."""

    def __init__(self, inner: Strategy, check):
        self.inner = inner
        self.check = check
        self.outcomes: dict[int, bool] = {}
        self._previous: ArrayRecord | None = None

    def __getattr__(self, name):
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def configure_train(self, server_round, arrays, config, grid):
        self._previous = arrays
        return self.inner.configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round, replies):
        arrays, metrics = self.inner.aggregate_train(server_round, replies)
        if arrays is None:
            return arrays, metrics
        passed = bool(self.check(arrays))
        self.outcomes[server_round] = passed
        if passed:
            return arrays, metrics
        # Strategies with server state (FedAvgM) continue from the model that was kept.
        if isinstance(getattr(self.inner, "current_arrays", None), ArrayRecord):
            self.inner.current_arrays = self._previous
        return self._previous, metrics

    def configure_evaluate(self, server_round, arrays, config, grid):
        return self.inner.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round, replies):
        return self.inner.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        self.inner.summary()


class NodeSubset:
    """The grid as a strategy sees it during a manual step: only the chosen nodes exist."""

    def __init__(self, grid: Grid, node_ids):
        wanted = {int(n) for n in node_ids}
        self._grid = grid
        self._node_ids = [n for n in grid.get_node_ids() if n in wanted]
        if not self._node_ids:
            # Flower's sampler would wait for them forever.
            raise ValueError(f"None of the nodes {sorted(wanted)} is in this federation")

    def get_node_ids(self):
        return list(self._node_ids)

    def __getattr__(self, name):
        return getattr(self._grid, name)


def manual_step(run_config: dict, offset: int) -> dict:
    """The manual aggregation step this run is, if any: it must start at its round."""
    step = json.loads(_conf(run_config, "manual-step", "") or "{}")
    return step if step and int(step.get("round", -1)) == offset + 1 else {}


# ---- ServerApp ---------------------------------------------------------------------------------
server_app = ServerApp()


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    run_config = context.run_config
    dataset = dataset_for(run_config)
    model = new_model(run_config)
    initial = getattr(grid, "initial_arrays", None) or ArrayRecord(model.get_weights())
    observer = getattr(grid, "observer", None)
    offset = getattr(grid, "round_offset", 0)
    per_class = getattr(model, "task", None) == "classification" and bool(dataset.n_classes)
    validation = json.loads(_conf(run_config, "validation", "") or "{}")
    step = manual_step(run_config, offset)
    last: dict = {}

    def held_out(arrays: ArrayRecord) -> dict:
        """The model ``arrays`` on the held-out test split. The validation check and the round's
        evaluation ask about the same aggregate: the last answer is kept."""
        if last.get("arrays") is arrays:
            return dict(last["metrics"])
        model.set_weights(arrays.to_numpy_ndarrays())
        metrics = {k: v for k, v in _float_metrics(model.evaluate(dataset.x_test, dataset.y_test)).items()
                   if k != "num_examples"}
        if per_class:
            metrics.update(class_scores(model, dataset.x_test, dataset.y_test, dataset.n_classes))
        last.update(arrays=arrays, metrics=metrics)
        return dict(metrics)

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round == 0:
            return None
        metrics = held_out(arrays)
        if server_round in getattr(strategy, "outcomes", {}):
            metrics["validation_passed"] = float(strategy.outcomes[server_round])
        accountant = getattr(strategy, "accountant", None)
        if accountant is not None and accountant.num_releases:
            spent = accountant.get_privacy_spent()
            metrics.update({"epsilon": float(spent.epsilon), "delta": float(spent.delta)})
        if observer is not None and hasattr(observer, "on_server_evaluation"):
            observer.on_server_evaluation(server_round + offset, arrays, metrics)
        return MetricRecord(metrics)

    strategy_grid = NodeSubset(grid, step["clients"]) if step.get("clients") else grid
    num_nodes = len(list(strategy_grid.get_node_ids()))
    dp = json.loads(_conf(run_config, "dp", "{}"))
    params = json.loads(_conf(run_config, "strategy-params", "{}"))
    if step.get("wait_for_all"):
        params["fraction_train"] = 1.0
    # Differential privacy is accounted per node, so its updates always weigh the same.
    weighted_by = "unit-weight" if dp.get("enabled") else WEIGHT_KEYS.get(_conf(run_config, "weights", "proportional"))
    strategy = build_strategy(_conf(run_config, "algorithm", "fedavg"), params,
                              num_nodes=num_nodes, min_nodes=int(_conf(run_config, "min-clients", num_nodes)),
                              weighted_by_key=weighted_by)
    if dp.get("enabled"):
        strategy = with_differential_privacy(strategy, dp, num_nodes)
    if validation.get("enabled"):
        strategy = ValidatedAggregation(strategy, lambda arrays: passes_validation(held_out(arrays), validation))
    remaining = int(_conf(run_config, "rounds", 3))
    strategy.start(
        grid=strategy_grid,
        initial_arrays=initial,
        num_rounds=1 if step else remaining,
        train_config=ConfigRecord({"lr": float(_conf(run_config, "learning-rate", 0.1))}),
        evaluate_fn=evaluate_fn,
    )
    if step and remaining > 1:
        # One round was asked for: close it, then suspend until the next trigger or resume.
        finish = getattr(grid, "finish", None)
        if finish is not None:
            finish()
        raise ExecutionInterrupted("suspend", offset + 1)


def class_scores(model, x: np.ndarray, y: np.ndarray, n_classes: int) -> dict:
    """Per-class accuracy (recall) and support on (x, y), as lists a MetricRecord carries. A class
    with no examples scores 0 with support 0."""
    y = np.asarray(y, dtype=np.int64)
    predicted = np.asarray(model.predict(x)).astype(np.int64)
    support = np.bincount(y, minlength=n_classes)
    hits = np.bincount(y[predicted == y], minlength=n_classes)
    accuracy = np.divide(hits, support, out=np.zeros(n_classes), where=support > 0)
    return {"class_accuracy": accuracy.tolist(), "class_support": support.astype(float).tolist()}
