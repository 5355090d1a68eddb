"""Tests for training.engine.metrics, checked against scikit-learn's implementations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from training.engine.metrics import classification_metrics, per_class_accuracy, regression_metrics


def random_probabilities(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    logits = rng.normal(scale=2.0, size=(n, k))
    exponentials = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("n", "k"), [(200, 2), (300, 5), (40, 10)])
def test_classification_metrics_match_sklearn(seed: int, n: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, size=n)
    probabilities = random_probabilities(rng, n, k)
    y_pred = probabilities.argmax(axis=1)

    result = classification_metrics(y_true, y_pred, k, probabilities)

    precision, recall, f1, _ = sk.precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    assert result["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert result["precision"] == pytest.approx(precision)
    assert result["recall"] == pytest.approx(recall)
    assert result["f1"] == pytest.approx(f1)
    assert result["loss"] == pytest.approx(sk.log_loss(y_true, probabilities, labels=list(range(k))))
    assert all(isinstance(value, float) for value in result.values())


def test_macro_average_covers_classes_in_truth_or_prediction_only() -> None:
    # Class 3 appears only in predictions, class 4 only in truth, class 5 nowhere.
    y_true = np.array([0, 0, 1, 1, 2, 4])
    y_pred = np.array([0, 1, 1, 3, 2, 2])

    result = classification_metrics(y_true, y_pred, 6)

    precision, recall, f1, _ = sk.precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    assert result["precision"] == pytest.approx(precision)
    assert result["recall"] == pytest.approx(recall)
    assert result["f1"] == pytest.approx(f1)
    # Per-class recall is 1/2, 1/2, 1, 0, 0 over classes 0-4; averaging over all six would give 2/6.
    assert result["recall"] == pytest.approx(2 / 5)


def test_loss_is_only_reported_with_probabilities() -> None:
    assert "loss" not in classification_metrics(np.array([0, 1]), np.array([0, 1]), 2)


def test_cross_entropy_clips_zero_probabilities() -> None:
    probabilities = np.array([[1.0, 0.0], [0.0, 1.0]])
    result = classification_metrics(np.array([1, 1]), np.array([0, 1]), 2, probabilities)
    assert result["loss"] == pytest.approx(-np.log(1e-12) / 2)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "n_classes", "probabilities", "message"),
    [
        ([0, 1], [0], 2, None, "2 values but y_pred has 1"),
        ([], [], 2, None, "zero examples"),
        ([0, 2], [0, 1], 2, None, "y_true holds labels outside 0..1"),
        ([0, 1], [0, -1], 2, None, "y_pred holds labels outside"),
        ([0, 1], [0, 1], 2, np.full((2, 3), 1 / 3), r"shape \(2, 2\)"),
    ],
)
def test_classification_metrics_reject_bad_input(
    y_true: list[int], y_pred: list[int], n_classes: int, probabilities: np.ndarray | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        classification_metrics(
            np.array(y_true, dtype=np.int64), np.array(y_pred, dtype=np.int64), n_classes, probabilities
        )


@pytest.mark.parametrize("seed", range(5))
def test_regression_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.normal(loc=100, scale=30, size=150).astype(np.float32)
    y_pred = (y_true + rng.normal(scale=15, size=150)).astype(np.float32)

    result = regression_metrics(y_true, y_pred)

    mse = sk.mean_squared_error(y_true.astype(np.float64), y_pred.astype(np.float64))
    assert result["mse"] == pytest.approx(mse)
    assert result["loss"] == result["mse"]
    assert result["rmse"] == pytest.approx(np.sqrt(mse))
    assert result["mae"] == pytest.approx(sk.mean_absolute_error(y_true, y_pred))
    assert result["r2"] == pytest.approx(sk.r2_score(y_true.astype(np.float64), y_pred.astype(np.float64)))


def test_regression_metrics_accept_column_predictions() -> None:
    y_true = np.array([1.0, 2.0, 4.0])
    result = regression_metrics(y_true, y_true.reshape(-1, 1) + 1)
    assert result["mse"] == pytest.approx(1.0)
    assert result["r2"] < 1


def test_r2_is_zero_for_constant_targets() -> None:
    assert regression_metrics(np.full(5, 3.0), np.array([1.0, 2.0, 3.0, 4.0, 5.0]))["r2"] == 0.0
    assert regression_metrics(np.full(5, 3.0), np.full(5, 3.0))["r2"] == 0.0


def test_per_class_accuracy_matches_per_class_recall() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, size=100)
    y_pred = np.where(rng.random(100) < 0.7, y_true, rng.integers(0, 4, size=100))

    result = per_class_accuracy(y_true, y_pred, 6)

    recall = sk.recall_score(y_true, y_pred, labels=[0, 1, 2, 3], average=None)
    assert result[:4] == pytest.approx(list(recall))
    assert result[4:] == [None, None]
