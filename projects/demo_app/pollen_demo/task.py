"""Model and data: binary logistic regression on a synthetic problem, one partition per node."""

import numpy as np

FEATURES = 8
_TRUE_WEIGHTS = np.linspace(-2.0, 2.0, FEATURES)


def load_partition(partition_id: int, num_partitions: int, n: int = 400):
    """Each node draws its own reproducible sample; later partitions are shifted (non-IID)."""
    rng = np.random.default_rng(1000 + partition_id)
    shift = (partition_id / max(num_partitions - 1, 1)) - 0.5
    x = rng.normal(loc=shift, scale=1.0, size=(n, FEATURES))
    logits = x @ _TRUE_WEIGHTS + 0.25
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logits))).astype(np.float64)
    split = int(n * 0.8)
    return (x[:split], y[:split]), (x[split:], y[split:])


def initial_weights() -> list[np.ndarray]:
    return [np.zeros(FEATURES), np.zeros(1)]


def _predict(weights, x):
    w, b = weights
    return 1.0 / (1.0 + np.exp(-(x @ w + b[0])))


def train(weights, x, y, epochs: int, lr: float):
    w, b = (arr.copy() for arr in weights)
    for _ in range(epochs):
        p = _predict([w, b], x)
        grad = p - y
        w -= lr * (x.T @ grad) / len(y)
        b -= lr * np.array([grad.mean()])
    return [w, b]


def evaluate(weights, x, y):
    p = np.clip(_predict(weights, x), 1e-7, 1 - 1e-7)
    loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    accuracy = float(np.mean((p >= 0.5) == (y == 1.0)))
    return loss, accuracy
