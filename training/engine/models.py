"""Small numpy models that Flower clients train and the server aggregates.

Each model exposes its parameters as a list of float32 arrays (``get_weights`` /
``set_weights``), which is exactly what Flower ships between server and clients, and trains
with plain mini-batch SGD so a round is cheap enough to simulate many clients on one
machine. ``fit`` accepts a FedProx proximal term so the same models serve FedAvg and FedProx.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from training.engine.datasets import Dataset
from training.engine.metrics import classification_metrics, regression_metrics

SUPPORTED_MODELS: dict[str, str] = {
    "logistic": "Multinomial logistic regression (softmax) trained with mini-batch SGD; classification datasets.",
    "linear": "Linear regression with squared loss trained with mini-batch SGD; regression datasets.",
    "kmeans": "Federated k-means: clients run Lloyd steps from the global centroids; any dataset.",
    "mlp": "PyTorch multi-layer perceptron (one hidden layer); classification datasets.",
    "cnn": "PyTorch convolutional network over single-channel images; image datasets (digits).",
}

# Scale of the random initial weights: small enough that the first softmax is near uniform.
INITIAL_WEIGHT_SCALE = 0.01


@runtime_checkable
class NumpyModel(Protocol):
    """What the engine needs from a model: weights as float32 arrays, local training, evaluation."""

    task: str

    def get_weights(self) -> list[np.ndarray]: ...

    def set_weights(self, weights: list[np.ndarray]) -> None: ...

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        epochs: int,
        learning_rate: float,
        batch_size: int,
        seed: int,
        proximal_mu: float = 0.0,
        global_weights: list[np.ndarray] | None = None,
    ) -> dict[str, float]: ...

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]: ...

    def predict(self, x: np.ndarray) -> np.ndarray: ...


class _WeightsMixin:
    """Weight storage shared by the models: copies in and out, with shape checks on the way in."""

    _weights: list[np.ndarray]
    n_features: int

    def get_weights(self) -> list[np.ndarray]:
        """Return copies, so a caller averaging or storing them cannot change the model."""
        return [w.copy() for w in self._weights]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Replace the parameters; raises ValueError when the count or any shape differs."""
        if len(weights) != len(self._weights):
            raise ValueError(f"Expected {len(self._weights)} weight arrays, got {len(weights)}.")
        for i, (new, old) in enumerate(zip(weights, self._weights, strict=True)):
            if np.shape(new) != old.shape:
                raise ValueError(f"Weight array {i} must have shape {old.shape}, got {np.shape(new)}.")
        self._weights = [np.array(w, dtype=np.float32, copy=True) for w in weights]

    def _check_features(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"x must have shape (n, {self.n_features}), got {x.shape}.")
        if len(x) == 0:
            raise ValueError("x holds no examples.")
        return x


class _SGDModel(_WeightsMixin):
    """Mini-batch SGD loop shared by the linear models; subclasses supply the loss gradient."""

    task: str
    l2: float

    def _gradients(self, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        """Gradients of the batch-mean data loss with respect to each weight array."""
        raise NotImplementedError

    def _check_targets(self, y: np.ndarray, n: int) -> np.ndarray:
        raise NotImplementedError

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        raise NotImplementedError

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        epochs: int,
        learning_rate: float,
        batch_size: int,
        seed: int,
        proximal_mu: float = 0.0,
        global_weights: list[np.ndarray] | None = None,
    ) -> dict[str, float]:
        """Train in place with mini-batch SGD and return ``evaluate(x, y)`` afterwards.

        Examples are reshuffled every epoch with ``default_rng(seed + epoch)``, so a client
        given the same seed repeats its run exactly. With ``proximal_mu > 0`` the FedProx
        term ``mu/2 * ||w - w_global||²`` is added to the loss; ``global_weights`` defaults
        to the weights the model holds when ``fit`` starts, which in a federated round are
        the global ones just received. L2 weight decay applies to the weight matrix only,
        not the bias. Raises FloatingPointError if the weights stop being finite, which
        means the learning rate is too high.
        """
        x = self._check_features(x)
        y = self._check_targets(y, len(x))
        _check_training_args(epochs, learning_rate, batch_size, proximal_mu)
        anchor = self._proximal_anchor(proximal_mu, global_weights)

        n = len(x)
        for epoch in range(epochs):
            order = np.random.default_rng(seed + epoch).permutation(n)
            # Overflow is caught once per epoch below, with a message that says what to change.
            with np.errstate(over="ignore", invalid="ignore"):
                for start in range(0, n, batch_size):
                    batch = order[start : start + batch_size]
                    self._sgd_step(x[batch], y[batch], learning_rate, proximal_mu, anchor)
            if not all(np.isfinite(w).all() for w in self._weights):
                raise FloatingPointError(
                    f"Training diverged in epoch {epoch + 1} (weights became NaN or infinite); "
                    "lower the learning rate."
                )
        return self.evaluate(x, y)

    def _sgd_step(
        self,
        x: np.ndarray,
        y: np.ndarray,
        learning_rate: float,
        proximal_mu: float,
        anchor: list[np.ndarray] | None,
    ) -> None:
        gradients = self._gradients(x, y)
        gradients[0] = gradients[0] + self.l2 * self._weights[0]
        if anchor is not None:
            gradients = [
                g + proximal_mu * (w - a) for g, w, a in zip(gradients, self._weights, anchor, strict=True)
            ]
        self._weights = [
            (w - learning_rate * g).astype(np.float32) for w, g in zip(self._weights, gradients, strict=True)
        ]

    def _proximal_anchor(
        self, proximal_mu: float, global_weights: list[np.ndarray] | None
    ) -> list[np.ndarray] | None:
        if proximal_mu == 0:
            return None
        if global_weights is None:
            return self.get_weights()
        if [np.shape(w) for w in global_weights] != [w.shape for w in self._weights]:
            raise ValueError("global_weights must have the same shapes as the model's weights.")
        return [np.asarray(w, dtype=np.float32) for w in global_weights]


class LogisticRegression(_SGDModel):
    """Multinomial (softmax) logistic regression with weights ``[W (d, k), b (k,)]``.

    The loss is mean cross-entropy plus ``l2/2 * ||W||²``; the small default weight decay
    keeps weights bounded on separable data such as digits.
    """

    task = "classification"

    def __init__(self, n_features: int, n_classes: int, *, l2: float = 1e-4, seed: int = 0) -> None:
        if n_features < 1 or n_classes < 2:
            raise ValueError("LogisticRegression needs n_features >= 1 and n_classes >= 2.")
        if l2 < 0:
            raise ValueError(f"l2 must not be negative, got {l2}.")
        self.n_features = n_features
        self.n_classes = n_classes
        self.l2 = l2
        rng = np.random.default_rng(seed)
        self._weights = [
            (rng.standard_normal((n_features, n_classes)) * INITIAL_WEIGHT_SCALE).astype(np.float32),
            np.zeros(n_classes, dtype=np.float32),
        ]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, n_classes)."""
        return _softmax(self._logits(self._check_features(x)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Most probable class per example, int64."""
        return np.argmax(self._logits(self._check_features(x)), axis=1).astype(np.int64)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Classification metrics (with cross-entropy ``loss``) on (x, y), plus ``num_examples``."""
        x = self._check_features(x)
        y = self._check_targets(y, len(x))
        probabilities = _softmax(self._logits(x))
        metrics: dict[str, Any] = classification_metrics(
            y, np.argmax(probabilities, axis=1), self.n_classes, probabilities
        )
        metrics["num_examples"] = len(x)
        return metrics

    def _logits(self, x: np.ndarray) -> np.ndarray:
        weight, bias = self._weights
        return x @ weight + bias

    def _gradients(self, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        error = _softmax(self._logits(x))
        error[np.arange(len(y)), y] -= 1.0
        error /= len(y)
        return [x.T @ error, error.sum(axis=0)]

    def _check_targets(self, y: np.ndarray, n: int) -> np.ndarray:
        y = np.asarray(y).reshape(-1)
        if len(y) != n:
            raise ValueError(f"y has {len(y)} labels for {n} examples.")
        if not np.issubdtype(y.dtype, np.integer):
            if not np.all(y == np.round(y)):
                raise ValueError("Classification labels must be integers.")
        y = y.astype(np.int64)
        if y.min() < 0 or y.max() >= self.n_classes:
            raise ValueError(f"Labels must lie in 0..{self.n_classes - 1}.")
        return y


class LinearRegression(_SGDModel):
    """Linear regression with weights ``[w (d, 1), b (1,)]`` and loss ``mean((xw + b - y)²) / 2``.

    The halved squared loss keeps the gradient free of a factor 2, so learning rates mean
    the same thing as for logistic regression.
    """

    task = "regression"

    def __init__(self, n_features: int, *, l2: float = 0.0, seed: int = 0) -> None:
        if n_features < 1:
            raise ValueError("LinearRegression needs n_features >= 1.")
        if l2 < 0:
            raise ValueError(f"l2 must not be negative, got {l2}.")
        self.n_features = n_features
        self.l2 = l2
        rng = np.random.default_rng(seed)
        self._weights = [
            (rng.standard_normal((n_features, 1)) * INITIAL_WEIGHT_SCALE).astype(np.float32),
            np.zeros(1, dtype=np.float32),
        ]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted targets, float32 of shape (n,)."""
        weight, bias = self._weights
        return (self._check_features(x) @ weight + bias).reshape(-1)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Regression metrics on (x, y), plus ``num_examples``."""
        y = self._check_targets(y, len(np.asarray(x)))
        metrics: dict[str, Any] = regression_metrics(y, self.predict(x))
        metrics["num_examples"] = len(y)
        return metrics

    def _gradients(self, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        weight, bias = self._weights
        residual = (x @ weight + bias) - y.reshape(-1, 1)
        residual /= len(y)
        return [x.T @ residual, residual.sum(axis=0)]

    def _check_targets(self, y: np.ndarray, n: int) -> np.ndarray:
        y = np.asarray(y, dtype=np.float32).reshape(-1)
        if len(y) != n:
            raise ValueError(f"y has {len(y)} targets for {n} examples.")
        return y


class KMeans(_WeightsMixin):
    """Federated k-means with weights ``[centroids (k, d)]``.

    ``fit`` runs ``epochs`` Lloyd steps on local data starting from the current centroids,
    so averaging the clients' centroids weighted by ``num_examples`` approximates a global
    Lloyd step. Labels are ignored: the model is unsupervised and works on any dataset.
    """

    task = "clustering"

    def __init__(self, n_features: int, n_clusters: int, *, seed: int = 0) -> None:
        if n_features < 1 or n_clusters < 1:
            raise ValueError("KMeans needs n_features >= 1 and n_clusters >= 1.")
        self.n_features = n_features
        self.n_clusters = n_clusters
        # Features are standardised, so a standard normal draw lands centroids in the data's range.
        rng = np.random.default_rng(seed)
        self._weights = [rng.standard_normal((n_clusters, n_features)).astype(np.float32)]

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray | None = None,
        *,
        epochs: int,
        learning_rate: float = 0.0,
        batch_size: int = 0,
        seed: int = 0,
        proximal_mu: float = 0.0,
        global_weights: list[np.ndarray] | None = None,
    ) -> dict[str, float]:
        """Run ``epochs`` full-batch Lloyd steps on ``x`` and return ``evaluate(x)``.

        A cluster that receives no local example keeps its previous centroid. ``y``,
        ``learning_rate``, ``batch_size``, ``seed``, ``proximal_mu`` and ``global_weights``
        are accepted for interface compatibility and ignored: Lloyd steps are deterministic
        and move each centroid straight to its cluster mean.
        """
        x = self._check_features(x)
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}.")
        for _ in range(epochs):
            centroids = self._weights[0]
            nearest = self._nearest(x)
            counts = np.bincount(nearest, minlength=self.n_clusters)
            sums = np.zeros_like(centroids, dtype=np.float64)
            np.add.at(sums, nearest, x)
            filled = counts > 0
            updated = centroids.copy()
            updated[filled] = (sums[filled] / counts[filled, None]).astype(np.float32)
            self._weights = [updated]
        return self.evaluate(x)

    def evaluate(self, x: np.ndarray, y: np.ndarray | None = None) -> dict[str, float]:
        """``inertia`` (mean squared distance to the nearest centroid), again as ``loss``, and ``num_examples``."""
        x = self._check_features(x)
        inertia = float(self._squared_distances(x).min(axis=1).mean())
        return {"inertia": inertia, "loss": inertia, "num_examples": len(x)}

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Index of the nearest centroid per example, int64."""
        return self._nearest(self._check_features(x))

    def _nearest(self, x: np.ndarray) -> np.ndarray:
        return np.argmin(self._squared_distances(x), axis=1).astype(np.int64)

    def _squared_distances(self, x: np.ndarray) -> np.ndarray:
        """(n, k) squared distances via ||x||² - 2x·c + ||c||², which avoids an (n, k, d) array."""
        centroids = self._weights[0].astype(np.float64)
        x64 = x.astype(np.float64)
        distances = (x64**2).sum(axis=1)[:, None] - 2 * x64 @ centroids.T + (centroids**2).sum(axis=1)[None, :]
        # The expansion can dip slightly below zero through cancellation.
        return np.maximum(distances, 0.0)


_MODEL_PARAMS: dict[str, set[str]] = {
    "logistic": {"l2"},
    "linear": {"l2"},
    "kmeans": {"n_clusters"},
    "mlp": {"hidden"},
    "cnn": {"channels"},
}
DEFAULT_CLUSTERS = 8


def build_model(model_type: str, dataset: Dataset, *, seed: int = 0, **params: Any) -> NumpyModel:
    """Create a freshly initialised model of ``model_type`` sized for ``dataset``.

    Raises ValueError for an unknown type, a type that does not fit the dataset's task
    (logistic needs classification, linear needs regression) or an unknown parameter.
    """
    if model_type not in SUPPORTED_MODELS:
        raise ValueError(f"Unknown model type {model_type!r}; supported: {', '.join(SUPPORTED_MODELS)}.")
    unknown = sorted(set(params) - _MODEL_PARAMS[model_type])
    if unknown:
        allowed = ", ".join(sorted(_MODEL_PARAMS[model_type])) or "none"
        raise ValueError(f"Unknown parameter(s) for {model_type!r}: {', '.join(unknown)}; allowed: {allowed}.")

    if model_type == "logistic":
        if dataset.task != "classification" or dataset.n_classes is None:
            raise ValueError(
                f"Model 'logistic' needs a classification dataset; {dataset.name!r} is {dataset.task}. "
                "Use 'linear' or 'kmeans'."
            )
        return LogisticRegression(dataset.n_features, dataset.n_classes, seed=seed, **params)
    if model_type == "linear":
        if dataset.task != "regression":
            raise ValueError(
                f"Model 'linear' needs a regression dataset; {dataset.name!r} is {dataset.task}. "
                "Use 'logistic' or 'kmeans'."
            )
        return LinearRegression(dataset.n_features, seed=seed, **params)
    if model_type in ("mlp", "cnn"):
        if dataset.task != "classification" or dataset.n_classes is None:
            raise ValueError(f"Model {model_type!r} needs a classification dataset; {dataset.name!r} is {dataset.task}.")
        from training.engine import torch_models  # torch is imported only when a torch model is used

        if model_type == "mlp":
            return torch_models.MLP(dataset.n_features, dataset.n_classes, seed=seed, **params)
        if dataset.image_shape is None:
            raise ValueError(f"Model 'cnn' needs an image dataset (digits); {dataset.name!r} has no image shape.")
        return torch_models.SmallCNN(dataset.image_shape, dataset.n_classes, seed=seed, **params)
    n_clusters = params.get("n_clusters") or dataset.n_classes or DEFAULT_CLUSTERS
    return KMeans(dataset.n_features, int(n_clusters), seed=seed)


def _softmax(logits: np.ndarray) -> np.ndarray:
    # Subtracting the row maximum keeps exp() from overflowing without changing the result.
    shifted = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def _check_training_args(epochs: int, learning_rate: float, batch_size: int, proximal_mu: float) -> None:
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    if proximal_mu < 0:
        raise ValueError(f"proximal_mu must not be negative, got {proximal_mu}.")
