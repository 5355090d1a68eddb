"""Pollen's own Flower app: the models and data sets that ship with the platform.

A ServerApp and a ClientApp written against Flower's Message API, as any Flower app is. What to
train comes from the run config (flat ``pollen.*`` keys, set by the runner from the execution);
which part of the data a node holds comes from its node config (``partition-id``,
``num-partitions``). Each node trains only on its own partition; the server evaluates the global
model on the held-out test split after every round.
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

from training.engine.datasets import load_dataset, partition
from training.engine.models import build_model
from training.engine.strategies import build_strategy

LOCAL_VALIDATION_FRACTION = 0.2


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


# ---- ClientApp ---------------------------------------------------------------------------------
def train(msg: Message, context: Context) -> Message:
    (x, y), _ = node_data(context.run_config, context.node_config)
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
    return Message(RecordDict({"arrays": ArrayRecord(model.get_weights()), "metrics": MetricRecord(metrics)}),
                   reply_to=msg)


def evaluate(msg: Message, context: Context) -> Message:
    _, (x, y) = node_data(context.run_config, context.node_config)
    model = new_model(context.run_config)
    model.set_weights(msg.content["arrays"].to_numpy_ndarrays())
    metrics = {f"eval_{k}": v for k, v in _float_metrics(model.evaluate(x, y)).items() if k != "num_examples"}
    metrics["num-examples"] = int(len(y))
    metrics["unit-weight"] = 1
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

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round == 0:
            return None
        model.set_weights(arrays.to_numpy_ndarrays())
        metrics = {k: v for k, v in _float_metrics(model.evaluate(dataset.x_test, dataset.y_test)).items()
                   if k != "num_examples"}
        accountant = getattr(strategy, "accountant", None)
        if accountant is not None and accountant.num_releases:
            spent = accountant.get_privacy_spent()
            metrics.update({"epsilon": float(spent.epsilon), "delta": float(spent.delta)})
        if observer is not None and hasattr(observer, "on_server_evaluation"):
            observer.on_server_evaluation(server_round + offset, arrays, metrics)
        return MetricRecord(metrics)

    num_nodes = len(list(grid.get_node_ids()))
    dp = json.loads(_conf(run_config, "dp", "{}"))
    strategy = build_strategy(_conf(run_config, "algorithm", "fedavg"),
                              json.loads(_conf(run_config, "strategy-params", "{}")),
                              num_nodes=num_nodes, min_nodes=int(_conf(run_config, "min-clients", num_nodes)),
                              weighted_by_key="unit-weight" if dp.get("enabled") else None)
    if dp.get("enabled"):
        strategy = with_differential_privacy(strategy, dp, num_nodes)
    strategy.start(
        grid=grid,
        initial_arrays=initial,
        num_rounds=int(_conf(run_config, "rounds", 3)),
        train_config=ConfigRecord({"lr": float(_conf(run_config, "learning-rate", 0.1))}),
        evaluate_fn=evaluate_fn,
    )
