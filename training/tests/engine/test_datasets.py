"""Tests for training.engine.datasets: built-in and CSV loading, partitioning, partition statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from training.engine import datasets
from training.engine.datasets import BUILTIN_DATASETS, load_dataset, partition, partition_stats

EXPECTED_SHAPES = {
    # name: (rows, features, classes)
    "digits": (1797, 64, 10),
    "breast_cancer": (569, 30, 2),
    "iris": (150, 4, 3),
    "wine": (178, 13, 3),
    "diabetes": (442, 10, None),
}


# ---- built-in datasets -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILTIN_DATASETS))
def test_builtin_dataset_shapes_dtypes_and_standardisation(name: str) -> None:
    rows, features, classes = EXPECTED_SHAPES[name]
    data = load_dataset(name)

    assert data.name == name
    assert data.task == BUILTIN_DATASETS[name]
    assert len(data.x_train) + len(data.x_test) == rows
    assert len(data.x_test) == pytest.approx(0.2 * rows, abs=len(np.unique(data.y_train)) if classes else 1)
    assert data.x_train.shape[1] == data.x_test.shape[1] == data.n_features == features
    assert data.x_train.dtype == data.x_test.dtype == np.float32
    assert len(data.feature_names) == features
    assert data.n_classes == classes

    varying = data.x_train.std(axis=0) > 0
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(data.x_train.std(axis=0)[varying], 1.0, atol=1e-4)

    if classes is None:
        assert data.y_train.dtype == data.y_test.dtype == np.float32
    else:
        assert data.y_train.dtype == data.y_test.dtype == np.int64
        assert set(np.unique(data.y_train)) == set(range(classes))


def test_digits_has_image_shape_and_others_do_not() -> None:
    assert load_dataset("digits").image_shape == (8, 8)
    assert load_dataset("iris").image_shape is None


def test_classification_split_is_stratified() -> None:
    data = load_dataset("breast_cancer", test_fraction=0.3)
    train_share = np.bincount(data.y_train) / len(data.y_train)
    test_share = np.bincount(data.y_test) / len(data.y_test)
    np.testing.assert_allclose(train_share, test_share, atol=0.01)


def test_regression_targets_stay_in_original_units() -> None:
    data = load_dataset("diabetes")
    # The diabetes progression score runs from 25 to 346; standardising it would centre it on 0.
    assert data.y_train.min() >= 25 and data.y_train.max() <= 346
    assert data.y_train.mean() > 100


def test_split_is_reproducible_and_depends_on_seed() -> None:
    first, again, other = load_dataset("wine", seed=3), load_dataset("wine", seed=3), load_dataset("wine", seed=4)
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(first.y_test, again.y_test)
    assert not np.array_equal(first.x_test, other.x_test)


def test_test_fraction_is_honoured_and_validated() -> None:
    assert len(load_dataset("iris", test_fraction=0.5).y_test) == 75
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="test_fraction"):
            load_dataset("iris", test_fraction=bad)


def test_unknown_dataset_lists_the_known_ones() -> None:
    with pytest.raises(ValueError) as error:
        load_dataset("mnist")
    for name in [*BUILTIN_DATASETS, "csv"]:
        assert name in str(error.value)


def test_builtin_dataset_rejects_a_conflicting_task() -> None:
    with pytest.raises(ValueError, match="regression"):
        load_dataset("diabetes", task="classification")


# ---- CSV files ---------------------------------------------------------------------------------


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> str:
    lines = [",".join(header)] + [",".join(str(value) for value in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_csv_classification_with_integer_labels(tmp_path: Path) -> None:
    rows = [[i, i * 0.5, [3, 7, 9][i % 3]] for i in range(30)]
    path = write_csv(tmp_path / "data.csv", ["a", "b", "label"], rows)

    data = load_dataset("csv", csv_path=path, target_column="label", test_fraction=0.2)

    assert data.task == "classification"
    assert data.n_classes == 3
    assert data.feature_names == ["a", "b"]
    assert data.n_features == 2
    assert len(data.y_train) + len(data.y_test) == 30
    assert data.y_train.dtype == np.int64 and data.x_train.dtype == np.float32
    # Labels 3, 7, 9 become 0, 1, 2 in sorted order. Column a is the row number, so its rank
    # recovers which raw row each example came from.
    all_a = np.concatenate([data.x_train, data.x_test])[:, 0]
    all_y = np.concatenate([data.y_train, data.y_test])
    row = np.argsort(np.argsort(all_a))
    np.testing.assert_array_equal(all_y, row % 3)


def test_csv_target_can_sit_in_any_column_and_text_labels_are_classes(tmp_path: Path) -> None:
    rows = [[["spam", "ham"][i % 2], i, -i] for i in range(20)]
    path = write_csv(tmp_path / "data.csv", ["kind", "x1", "x2"], rows)

    data = load_dataset("csv", csv_path=path, target_column="kind")

    assert data.task == "classification"
    assert data.n_classes == 2
    assert data.feature_names == ["x1", "x2"]
    # "ham" sorts before "spam", and ham rows have odd x1.
    all_x = np.concatenate([data.x_train, data.x_test])[:, 0]
    all_y = np.concatenate([data.y_train, data.y_test])
    ranks = np.argsort(np.argsort(all_x))
    assert np.all(all_y[ranks % 2 == 1] == 0)


def test_csv_infers_regression_for_fractional_or_many_valued_targets(tmp_path: Path) -> None:
    fractional = write_csv(tmp_path / "f.csv", ["x", "y"], [[i, i + 0.5] for i in range(20)])
    many = write_csv(tmp_path / "m.csv", ["x", "y"], [[i, i] for i in range(60)])
    few = write_csv(tmp_path / "few.csv", ["x", "y"], [[i, i % 50] for i in range(60)])

    assert load_dataset("csv", csv_path=fractional, target_column="y").task == "regression"
    assert load_dataset("csv", csv_path=many, target_column="y").task == "regression"
    assert load_dataset("csv", csv_path=few, target_column="y").task == "classification"

    data = load_dataset("csv", csv_path=fractional, target_column="y")
    assert data.n_classes is None and data.y_train.dtype == np.float32
    assert np.all(data.y_train % 1 == 0.5)


def test_csv_task_can_be_forced(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", ["x", "y"], [[i, i % 3] for i in range(20)])
    data = load_dataset("csv", csv_path=path, target_column="y", task="regression")
    assert data.task == "regression" and data.y_train.dtype == np.float32


def test_csv_standardises_with_train_statistics_only(tmp_path: Path) -> None:
    # The target is a unique row id, so y tells which raw rows landed in each split.
    ids = np.arange(40) + 0.5
    path = write_csv(tmp_path / "data.csv", ["f", "id"], [[row_id**2, row_id] for row_id in ids])

    data = load_dataset("csv", csv_path=path, target_column="id", seed=1)

    raw_train, raw_test = data.y_train.astype(np.float64) ** 2, data.y_test.astype(np.float64) ** 2
    mean, std = raw_train.mean(), raw_train.std()
    np.testing.assert_allclose(data.x_train[:, 0], (raw_train - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(data.x_test[:, 0], (raw_test - mean) / std, rtol=1e-5, atol=1e-5)


def test_csv_skips_blank_lines_and_a_byte_order_mark(tmp_path: Path) -> None:
    body = "\ufeffx,y\n" + "".join(f"{i},{i % 2}\n\n" for i in range(12))
    path = tmp_path / "data.csv"
    path.write_text(body, encoding="utf-8")
    data = load_dataset("csv", csv_path=str(path), target_column="y")
    assert data.feature_names == ["x"]
    assert len(data.y_train) + len(data.y_test) == 12


GOOD_ROWS = [[i, i * 2, i % 2] for i in range(12)]


def with_row(index: int, row: list[object]) -> list[list[object]]:
    """GOOD_ROWS with the row at 0-based ``index`` (data row ``index + 1``) replaced."""
    return [*GOOD_ROWS[:index], row, *GOOD_ROWS[index + 1 :]]


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        pytest.param(["a", "b", "y"], GOOD_ROWS[:9], "at least 10", id="too-few-rows"),
        pytest.param(["a", "b", "y"], [], "at least 10", id="header-only"),
        pytest.param(["a", "b", "z"], GOOD_ROWS, "'y' is not in the CSV header", id="missing-target"),
        pytest.param(["a", "b", "y"], with_row(4, [4, "abc", 0]), "'b', row 5", id="text"),
        pytest.param(["a", "b", "y"], with_row(2, ["", 1, 0]), "'a', row 3", id="empty"),
        pytest.param(["a", "b", "y"], with_row(6, [6, "nan", 0]), "'b', row 7.*NaN", id="nan"),
        pytest.param(["a", "b", "y"], with_row(1, ["inf", 1, 0]), "'a', row 2.*infinity", id="inf"),
        pytest.param(["a", "b", "y"], with_row(3, [3, 6, "nan"]), "'y', row 4", id="nan-target"),
        pytest.param(["a", "b", "y"], with_row(3, [3, 6]), "row 4 has 2 values", id="short-row"),
        pytest.param(["a", "a", "y"], GOOD_ROWS, "repeats column names: a", id="duplicate-column"),
        pytest.param(["y"], [[i % 2] for i in range(12)], "no feature columns", id="target-only"),
        pytest.param(["a", "b", "y"], [[i, i, 1] for i in range(12)], "single class", id="one-class"),
    ],
)
def test_bad_csv_is_rejected_with_a_clear_message(
    tmp_path: Path, header: list[str], rows: list[list[object]], message: str
) -> None:
    path = write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(ValueError, match=message):
        load_dataset("csv", csv_path=path, target_column="y")


def test_empty_csv_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_dataset("csv", csv_path=str(path), target_column="y")


def test_text_target_cannot_be_forced_to_regression(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", ["x", "y"], [[i, "abc"[i % 3]] for i in range(12)])
    with pytest.raises(ValueError, match="'y', row 1.*regression"):
        load_dataset("csv", csv_path=path, target_column="y", task="regression")


def test_csv_row_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "CSV_MAX_ROWS", 15)
    path = write_csv(tmp_path / "big.csv", ["x", "y"], [[i, i % 2] for i in range(16)])
    with pytest.raises(ValueError, match="more than 15 data rows"):
        load_dataset("csv", csv_path=path, target_column="y")
    exactly = write_csv(tmp_path / "ok.csv", ["x", "y"], [[i, i % 2] for i in range(15)])
    assert load_dataset("csv", csv_path=exactly, target_column="y").n_features == 1


def test_csv_dataset_needs_path_and_target() -> None:
    with pytest.raises(ValueError, match="csv_path and target_column"):
        load_dataset("csv", csv_path="whatever.csv")


# ---- partitioning ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_labels() -> np.ndarray:
    return load_dataset("digits").y_train


METHODS = ["iid", "dirichlet", "shards"]


@pytest.mark.parametrize("method", METHODS)
def test_partitions_use_every_index_exactly_once(digits_labels: np.ndarray, method: str) -> None:
    parts = partition(digits_labels, 7, method=method, seed=2)
    assert len(parts) == 7
    joined = np.concatenate(parts)
    assert len(joined) == len(digits_labels)
    np.testing.assert_array_equal(np.sort(joined), np.arange(len(digits_labels)))


@pytest.mark.parametrize("method", METHODS)
def test_partitions_are_reproducible_and_seeded(digits_labels: np.ndarray, method: str) -> None:
    first = partition(digits_labels, 5, method=method, seed=11)
    again = partition(digits_labels, 5, method=method, seed=11)
    other = partition(digits_labels, 5, method=method, seed=12)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_iid_partitions_are_even(digits_labels: np.ndarray) -> None:
    sizes = [len(part) for part in partition(digits_labels, 6)]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("method", METHODS)
def test_min_size_is_respected(method: str) -> None:
    y = np.repeat(np.arange(4), 25)
    for seed in range(5):
        parts = partition(y, 20, method=method, alpha=0.05, shards_per_partition=3, seed=seed, min_size=4)
        assert min(len(part) for part in parts) >= 4
        np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(100))


def test_dirichlet_falls_back_to_moving_examples_when_redraws_fail() -> None:
    # Exactly 10 examples per partition can only come out of the fallback, not a lucky draw.
    y = np.repeat(np.arange(2), 50)
    parts = partition(y, 10, method="dirichlet", alpha=0.01, min_size=10)
    assert [len(part) for part in parts] == [10] * 10
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(100))


def test_small_alpha_dirichlet_is_more_heterogeneous_than_iid(digits_labels: np.ndarray) -> None:
    iid = partition_stats(partition(digits_labels, 10, method="iid"), digits_labels, 10)
    skewed = partition_stats(partition(digits_labels, 10, method="dirichlet", alpha=0.1), digits_labels, 10)
    assert iid["heterogeneity"] < 0.05
    assert skewed["heterogeneity"] > 0.3
    assert skewed["heterogeneity"] > 5 * iid["heterogeneity"]


def test_shards_give_each_partition_few_labels(digits_labels: np.ndarray) -> None:
    parts = partition(digits_labels, 10, method="shards", shards_per_partition=2)
    labels_per_partition = [len(np.unique(digits_labels[part])) for part in parts]
    # Two shards of sorted labels, each at most straddling one label boundary.
    assert max(labels_per_partition) <= 4
    assert np.mean(labels_per_partition) <= 3
    iid_labels = [len(np.unique(digits_labels[part])) for part in partition(digits_labels, 10)]
    assert min(iid_labels) == 10


def test_dirichlet_bins_regression_targets() -> None:
    y = load_dataset("diabetes").y_train
    parts = partition(y, 5, method="dirichlet", alpha=0.1, seed=1)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(len(y)))
    # Label skew over target bins shows up as partitions with very different target means.
    means = [float(y[part].mean()) for part in parts if len(part) > 5]
    assert max(means) - min(means) > 40


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_partitions": 0}, "num_partitions"),
        ({"num_partitions": 3, "method": "dirichlet", "alpha": 0.0}, "alpha"),
        ({"num_partitions": 3, "method": "dirichlet", "alpha": -1.0}, "alpha"),
        ({"num_partitions": 3, "method": "pathological"}, "iid, dirichlet, shards"),
        ({"num_partitions": 3, "method": "shards", "shards_per_partition": 0}, "shards_per_partition"),
        ({"num_partitions": 11, "min_size": 10}, "at least 10 examples"),
    ],
)
def test_bad_partition_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        partition(np.repeat(np.arange(2), 50), **kwargs)


# ---- partition statistics ----------------------------------------------------------------------


def test_partition_stats_counts_and_imbalance() -> None:
    y = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    parts = [np.array([0, 1, 2]), np.array([3, 4, 5, 6, 7])]
    stats = partition_stats(parts, y, 3)
    assert stats["sizes"] == [3, 5]
    assert stats["label_distribution"] == [[2, 1, 0], [1, 2, 2]]
    assert stats["imbalance"] == pytest.approx(5 / 3)


def test_heterogeneity_is_mean_jensen_shannon_divergence_in_bits() -> None:
    y = np.array([0] * 6 + [1] * 2 + [2] * 4)
    parts = [np.arange(0, 6), np.arange(6, 9), np.arange(9, 12)]
    overall = np.array([6, 2, 4]) / 12
    expected = np.mean(
        [jensenshannon(np.bincount(y[part], minlength=3) / len(part), overall, base=2) ** 2 for part in parts]
    )
    assert partition_stats(parts, y, 3)["heterogeneity"] == pytest.approx(expected)


def test_heterogeneity_is_zero_for_identical_distributions_and_at_most_one() -> None:
    y = np.array([0, 1, 0, 1])
    assert partition_stats([np.array([0, 1]), np.array([2, 3])], y, 2)["heterogeneity"] == pytest.approx(0.0)
    disjoint = partition_stats([np.array([0, 2]), np.array([1, 3])], y, 2)["heterogeneity"]
    assert 0 < disjoint <= 1


def test_partition_stats_for_regression() -> None:
    y = np.linspace(0, 1, 9, dtype=np.float32)
    stats = partition_stats([np.arange(3), np.arange(3, 9)], y, None)
    assert stats == {"sizes": [3, 6], "label_distribution": None, "heterogeneity": 0.0, "imbalance": 2.0}


def test_partition_stats_with_an_empty_partition() -> None:
    stats = partition_stats([np.array([0, 1]), np.array([], dtype=np.int64)], np.array([0, 1]), 2)
    assert stats["imbalance"] is None
    assert stats["heterogeneity"] == pytest.approx(0.0)
