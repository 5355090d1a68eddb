"""Flower's Message-API strategies by name, with their parameters checked before a run starts.

``build_strategy("fedadam", {"eta": 0.05}, num_nodes=5)`` returns a ready ``flwr`` strategy. Every
parameter is validated against a declared type and range; an unknown name or a bad value raises
``StrategyConfigError`` naming the field, which the API turns into 422.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flwr.serverapp import strategy as flwr_strategies


class StrategyConfigError(ValueError):
    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class Param:
    kind: type
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple | None = None
    exclusive_minimum: bool = False

    def check(self, field: str, value: Any) -> Any:
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.kind) or isinstance(value, bool) and self.kind is not bool:
            raise StrategyConfigError(field, f"{field} must be a {self.kind.__name__}")
        if self.choices is not None and value not in self.choices:
            raise StrategyConfigError(field, f"{field} must be one of {list(self.choices)}")
        if self.minimum is not None and (value < self.minimum or (self.exclusive_minimum and value == self.minimum)):
            bound = ">" if self.exclusive_minimum else ">="
            raise StrategyConfigError(field, f"{field} must be {bound} {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise StrategyConfigError(field, f"{field} must be <= {self.maximum}")
        return value


FRACTION = Param(float, 0.0, 1.0)
COUNT = Param(int, 1, 10_000)
POSITIVE = Param(float, 0.0, exclusive_minimum=True)
COMMON = {
    "fraction_train": FRACTION,
    "fraction_evaluate": FRACTION,
    "min_train_nodes": COUNT,
    "min_evaluate_nodes": COUNT,
    "min_available_nodes": COUNT,
}
FEDOPT = {"eta": POSITIVE, "eta_l": POSITIVE, "beta_1": Param(float, 0.0, 1.0), "beta_2": Param(float, 0.0, 1.0),
          "tau": POSITIVE}


@dataclass(frozen=True)
class StrategySpec:
    cls_name: str
    params: dict[str, Param]
    description: str
    required: tuple[str, ...] = ()


STRATEGIES: dict[str, StrategySpec] = {
    "fedavg": StrategySpec("FedAvg", COMMON, "Federated averaging weighted by examples"),
    "fedprox": StrategySpec("FedProx", {**COMMON, "proximal_mu": Param(float, 0.0)},
                            "FedAvg with a proximal term on the clients"),
    "fedadam": StrategySpec("FedAdam", {**COMMON, **FEDOPT}, "Adaptive server optimiser (Adam)"),
    "fedyogi": StrategySpec("FedYogi", {**COMMON, **FEDOPT}, "Adaptive server optimiser (Yogi)"),
    "fedadagrad": StrategySpec("FedAdagrad", {**COMMON, "eta": POSITIVE, "eta_l": POSITIVE, "tau": POSITIVE},
                               "Adaptive server optimiser (Adagrad)"),
    "fedavgm": StrategySpec("FedAvgM", {**COMMON, "server_learning_rate": POSITIVE,
                                        "server_momentum": Param(float, 0.0, 1.0)}, "FedAvg with server momentum"),
    "fedmedian": StrategySpec("FedMedian", COMMON, "Coordinate-wise median (robust)"),
    "fedtrimmedavg": StrategySpec("FedTrimmedAvg", {**COMMON, "beta": Param(float, 0.0, 0.5)},
                                  "Trimmed mean (robust)"),
    "krum": StrategySpec("Krum", {**COMMON, "num_malicious_nodes": Param(int, 0, 10_000)},
                         "Krum: the update closest to its neighbours (robust)"),
    "multikrum": StrategySpec("MultiKrum", {**COMMON, "num_malicious_nodes": Param(int, 0, 10_000),
                                            "num_nodes_to_select": COUNT}, "Average of the Krum-best updates"),
    "bulyan": StrategySpec("Bulyan", {**COMMON, "num_malicious_nodes": Param(int, 0, 10_000)},
                           "Bulyan: Krum selection then trimmed mean (robust)"),
    "qfedavg": StrategySpec("QFedAvg", {**COMMON, "client_learning_rate": POSITIVE, "q": Param(float, 0.0)},
                            "q-fair federated averaging", required=("client_learning_rate",)),
}
ALIASES = {"fedopt": "fedadam"}


def resolve(name: str) -> str:
    key = ALIASES.get(name, name)
    if key not in STRATEGIES:
        known = sorted([*STRATEGIES, *ALIASES])
        raise StrategyConfigError("algorithm", f"Unknown algorithm {name!r}; known: {', '.join(known)}")
    return key


def validate_params(name: str, params: dict | None) -> dict:
    """Checked and normalised parameters for ``name``; raises StrategyConfigError."""
    spec = STRATEGIES[resolve(name)]
    params = dict(params or {})
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise StrategyConfigError(f"strategy_params.{unknown[0]}",
                                  f"{unknown[0]!r} is not a parameter of {name}; it takes {sorted(spec.params)}")
    missing = [p for p in spec.required if p not in params]
    if missing:
        raise StrategyConfigError(f"strategy_params.{missing[0]}", f"{name} needs {missing[0]}")
    return {key: spec.params[key].check(f"strategy_params.{key}", value) for key, value in params.items()}


def build_strategy(name: str, params: dict | None, *, num_nodes: int, min_nodes: int | None = None,
                   weighted_by_key: str | None = None):
    """A flwr strategy for ``num_nodes`` nodes. ``min_nodes`` (default: all of them) sets the
    minimum nodes needed to train and evaluate unless the params say otherwise."""
    key = resolve(name)
    spec = STRATEGIES[key]
    checked = validate_params(key, params)
    floor = min(min_nodes or num_nodes, num_nodes)
    defaults = {"min_train_nodes": floor, "min_evaluate_nodes": floor, "min_available_nodes": floor}
    cls = getattr(flwr_strategies, spec.cls_name)
    if weighted_by_key is not None:
        defaults["weighted_by_key"] = weighted_by_key
    return cls(**{**defaults, **checked})
