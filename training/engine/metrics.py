"""Evaluation metrics for the training engine, in plain numpy.

These run inside every simulated client on every round, so they avoid scikit-learn's
input validation overhead; the tests check them against ``sklearn.metrics``. All values
are returned as Python floats so they can be stored as JSON and sent through Flower.
"""

from __future__ import annotations

import numpy as np

PROBABILITY_FLOOR = 1e-12


def classification_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_classes: int,
    probabilities: np.ndarray | None = None,
) -> dict[str, float]:
    """Accuracy and macro precision, recall and F1; plus cross-entropy ``loss`` given probabilities.

    The macro average runs over the classes present in ``y_true`` or ``y_pred`` (as
    scikit-learn does), and a class with no predicted or no true examples scores 0 for the
    undefined ratio. ``probabilities`` has shape (n, n_classes); each true-class probability
    is floored at 1e-12 before the log so a confident mistake costs a large finite loss.
    """
    y_true, y_pred = _paired(y_true, y_pred)
    y_true = y_true.astype(np.int64)
    y_pred = y_pred.astype(np.int64)
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        if labels.min() < 0 or labels.max() >= n_classes:
            raise ValueError(f"{name} holds labels outside 0..{n_classes - 1}.")

    true_counts = np.bincount(y_true, minlength=n_classes)
    pred_counts = np.bincount(y_pred, minlength=n_classes)
    hits = np.bincount(y_true[y_true == y_pred], minlength=n_classes)
    present = (true_counts > 0) | (pred_counts > 0)

    precision = _safe_ratio(hits, pred_counts)
    recall = _safe_ratio(hits, true_counts)
    f1 = _safe_ratio(2 * precision * recall, precision + recall)

    result = {
        "accuracy": float(np.mean(y_true == y_pred)),
        "precision": float(precision[present].mean()),
        "recall": float(recall[present].mean()),
        "f1": float(f1[present].mean()),
    }
    if probabilities is not None:
        probabilities = np.asarray(probabilities, dtype=np.float64)
        if probabilities.shape != (len(y_true), n_classes):
            raise ValueError(
                f"probabilities must have shape ({len(y_true)}, {n_classes}), got {probabilities.shape}."
            )
        true_class_probability = probabilities[np.arange(len(y_true)), y_true]
        result["loss"] = float(-np.mean(np.log(np.clip(true_class_probability, PROBABILITY_FLOOR, 1.0))))
    return result


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Mean squared error, mean absolute error, RMSE and R²; ``loss`` repeats the MSE.

    R² is reported as 0.0 when ``y_true`` is constant, where it is otherwise undefined.
    """
    y_true, y_pred = _paired(y_true, y_pred)
    y_true = y_true.astype(np.float64)
    residual = y_true - y_pred.astype(np.float64)
    mse = float(np.mean(residual**2))
    total = float(np.sum((y_true - y_true.mean()) ** 2))
    return {
        "mse": mse,
        "mae": float(np.mean(np.abs(residual))),
        "rmse": float(np.sqrt(mse)),
        "r2": 1.0 - float(np.sum(residual**2)) / total if total > 0 else 0.0,
        "loss": mse,
    }


def per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> list[float | None]:
    """For each class 0..n_classes-1, the share of its examples predicted correctly (its recall).

    A class with no examples in ``y_true`` gets None rather than a misleading 0.
    """
    y_true, y_pred = _paired(y_true, y_pred)
    result: list[float | None] = []
    for label in range(n_classes):
        members = y_true == label
        result.append(float(np.mean(y_pred[members] == label)) if members.any() else None)
    return result


def _paired(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten both arrays and check that they hold the same, non-zero number of values."""
    y_true = np.asarray(y_true).reshape(-1)
    y_pred = np.asarray(y_pred).reshape(-1)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} values but y_pred has {len(y_pred)}.")
    if len(y_true) == 0:
        raise ValueError("Cannot compute metrics on zero examples.")
    return y_true, y_pred


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise ratio that is 0 where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out
