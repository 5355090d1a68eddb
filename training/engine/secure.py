"""Secure aggregation with Flower's SecAgg+ for Pollen's built-in models.

In flwr 1.41 SecAgg+ runs on the legacy path: the ServerApp drives a ``DefaultWorkflow`` whose fit
step is ``SecAggPlusWorkflow`` over a legacy strategy (FedAvg family), and each ClientApp carries
``secaggplus_mod``, which quantises, masks and secret-shares its update. The server only ever holds
masked vectors and key shares; it learns the sum of the updates once enough shares are back, never
a single node's update. Robust strategies (median, Krum, ...) need the individual updates, so they
cannot run under SecAgg+.

``server_app_for``/``client_app_for`` pick this app or the Message-API one of ``builtin_app`` from
the run config, for the embedded federation and the deployed FAB alike.
"""

from __future__ import annotations

import inspect
import json

from flwr.app import ArrayRecord, Context
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import ndarrays_to_parameters
from flwr.server import LegacyContext, ServerApp, ServerConfig
from flwr.server import strategy as legacy
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid

from training.engine import builtin_app
from training.engine.builtin_app import _conf, _float_metrics, dataset_for, new_model, node_data

# Strategies whose aggregate is a function of the (weighted) sum of updates.
LEGACY_STRATEGIES = {
    "fedavg": legacy.FedAvg, "fedprox": legacy.FedProx, "fedavgm": legacy.FedAvgM,
    "fedadam": legacy.FedAdam, "fedyogi": legacy.FedYogi, "fedadagrad": legacy.FedAdagrad,
}
# Message-API parameter names that the legacy strategies spell differently.
RENAMED = {"fraction_train": "fraction_fit", "min_train_nodes": "min_fit_clients",
           "min_evaluate_nodes": "min_evaluate_clients", "min_available_nodes": "min_available_clients"}
SECAGG_DEFAULTS = {"num_shares": 1.0, "reconstruction_threshold": 0.67, "clipping_range": 8.0,
                   "quantization_range": 4194304}


def secagg_settings(run_config: dict) -> dict | None:
    settings = json.loads(_conf(run_config, "secagg", "{}") or "{}")
    return {**SECAGG_DEFAULTS, **settings} if settings.get("enabled") else None


# ---- ClientApp ---------------------------------------------------------------------------------
class _Node(NumPyClient):
    """A node of the built-in app in the NumPyClient shape that SecAgg+'s legacy path needs."""

    def __init__(self, context: Context):
        self.context = context
        self.model = new_model(context.run_config)
        (self.x, self.y), (self.x_val, self.y_val) = node_data(context.run_config, context.node_config)

    def fit(self, parameters, config):
        run_config = self.context.run_config
        self.model.set_weights(parameters)
        server_round = int(config.get("server-round", 1)) + int(_conf(run_config, "round-offset", 0))
        metrics = self.model.fit(
            self.x, self.y, epochs=int(_conf(run_config, "local-epochs", 1)),
            learning_rate=float(config.get("lr", _conf(run_config, "learning-rate", 0.1))),
            batch_size=int(_conf(run_config, "batch-size", 32)),
            seed=int(_conf(run_config, "seed", 0)) * 1000 + server_round * 100 + int(self.context.node_config["partition-id"]),
            proximal_mu=float(config.get("proximal_mu", 0.0)), global_weights=parameters,
        )
        metrics = {f"train_{k}": v for k, v in _float_metrics(metrics).items() if k != "num_examples"}
        return self.model.get_weights(), int(len(self.y)), metrics

    def evaluate(self, parameters, config):
        self.model.set_weights(parameters)
        metrics = {k: v for k, v in _float_metrics(self.model.evaluate(self.x_val, self.y_val)).items()
                   if k != "num_examples"}
        loss = float(metrics.get("loss", metrics.get("mse", 0.0)))
        return loss, int(len(self.y_val)), {f"eval_{k}": v for k, v in metrics.items()}


secagg_client_app = ClientApp(client_fn=lambda context: _Node(context).to_client(), mods=[secaggplus_mod])


def client_app_for(run_config: dict) -> ClientApp:
    return secagg_client_app if secagg_settings(run_config) else builtin_app.client_app_for(run_config)


# ---- ServerApp ---------------------------------------------------------------------------------
def _legacy_strategy(run_config: dict, num_nodes: int, evaluate_fn, initial):
    name = _conf(run_config, "algorithm", "fedavg")
    cls = LEGACY_STRATEGIES[name]
    params = {RENAMED.get(k, k): v for k, v in json.loads(_conf(run_config, "strategy-params", "{}")).items()}
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in params.items() if k in accepted}
    minimum = int(_conf(run_config, "min-clients", num_nodes))
    kwargs.update(min_fit_clients=minimum, min_available_clients=minimum,
                  min_evaluate_clients=min(minimum, kwargs.get("min_evaluate_clients", minimum)),
                  evaluate_fn=evaluate_fn, initial_parameters=ndarrays_to_parameters(initial),
                  on_fit_config_fn=lambda server_round: {
                      "server-round": server_round, "lr": float(_conf(run_config, "learning-rate", 0.1)),
                      "proximal_mu": float(params.get("proximal_mu", 0.0))})
    return cls(**kwargs)


secagg_server_app = ServerApp()


@secagg_server_app.main()
def secagg_main(grid: Grid, context: Context) -> None:
    run_config = context.run_config
    settings = secagg_settings(run_config)
    dataset = dataset_for(run_config)
    model = new_model(run_config)
    initial = getattr(grid, "initial_arrays", None)
    initial = initial.to_numpy_ndarrays() if initial is not None else model.get_weights()
    observer = getattr(grid, "observer", None)
    offset = getattr(grid, "round_offset", 0)

    def evaluate_fn(server_round, ndarrays, config):
        if server_round == 0:
            return None
        model.set_weights(ndarrays)
        metrics = {k: v for k, v in _float_metrics(model.evaluate(dataset.x_test, dataset.y_test)).items()
                   if k != "num_examples"}
        if observer is not None and hasattr(observer, "on_server_evaluation"):
            observer.on_server_evaluation(server_round + offset, ArrayRecord(ndarrays), metrics)
        return float(metrics.get("loss", metrics.get("mse", 0.0))), metrics

    num_nodes = len(list(grid.get_node_ids()))
    strategy = _legacy_strategy(run_config, num_nodes, evaluate_fn, initial)
    legacy_context = LegacyContext(context=context, config=ServerConfig(num_rounds=int(_conf(run_config, "rounds", 3))),
                                   strategy=strategy)
    workflow = DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(
        num_shares=settings["num_shares"], reconstruction_threshold=settings["reconstruction_threshold"],
        clipping_range=float(settings["clipping_range"]), quantization_range=int(settings["quantization_range"])))
    workflow(grid, legacy_context)


def server_app_for(run_config: dict) -> ServerApp:
    return secagg_server_app if secagg_settings(run_config) else builtin_app.server_app
