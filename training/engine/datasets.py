"""Datasets for the training engine: loading, train/test splitting and client partitioning.

Data comes only from scikit-learn's bundled datasets (shipped inside the package, so no
network is needed) or from a user-supplied CSV file. Every dataset is returned as a
``Dataset`` with float32 features standardised on the train split only, so that no
statistic of the test split leaks into training.

``partition`` then divides a train split between simulated clients, either IID or with
controlled label skew (Dirichlet or shards), and ``partition_stats`` measures how skewed a
partitioning turned out to be.
"""

from __future__ import annotations

import codecs
import csv
import os
from array import array
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
from sklearn import datasets as sk_datasets

BUILTIN_DATASETS: dict[str, str] = {
    "digits": "classification",
    "breast_cancer": "classification",
    "iris": "classification",
    "wine": "classification",
    "diabetes": "regression",
}

TASKS = ("classification", "regression")
PARTITION_METHODS = ("iid", "dirichlet", "shards")

CSV_MAX_ROWS = 1_000_000
CSV_MAX_COLUMNS = 1_000
CSV_MIN_ROWS = 10
CSV_MAX_NAME_LENGTH = 200
CSV_MAX_CLASSES = 1_000
# What a spreadsheet would run as a formula. Such a cell must still parse as a plain number
# (+1.5, -2); otherwise it is rejected, never stored as a label.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# A target with more distinct integer values than this is more likely a count or an amount
# than a class label, so it is treated as regression unless the caller says otherwise.
CSV_MAX_INFERRED_CLASSES = 50
# Regression targets are binned into this many quantile bins before a Dirichlet split,
# so that "label skew" still means something for continuous targets.
REGRESSION_BINS = 10
DIRICHLET_MAX_DRAWS = 100

_SKLEARN_LOADERS: dict[str, Callable[..., Any]] = {
    "digits": sk_datasets.load_digits,
    "breast_cancer": sk_datasets.load_breast_cancer,
    "iris": sk_datasets.load_iris,
    "wine": sk_datasets.load_wine,
    "diabetes": sk_datasets.load_diabetes,
}


# eq=False: the generated __eq__ would compare numpy arrays and raise on truth testing.
@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split ready for the models in ``training.engine.models``.

    Features are float32 of shape (n, d), standardised with the train split's mean and
    standard deviation. Classification labels are int64 in 0..k-1; regression targets are
    float32 in their original units.
    """

    name: str
    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_features: int
    n_classes: int | None
    feature_names: list[str]
    image_shape: tuple[int, int] | None


def load_dataset(
    name: str,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    csv_path: str | None = None,
    target_column: str | None = None,
    task: str | None = None,
) -> Dataset:
    """Load a built-in dataset, or a CSV file (``name`` "csv" or ``csv_dataset_name``), split and
    standardised.

    The split is stratified by class for classification and a plain shuffle for regression,
    both drawn from ``seed`` so the same arguments always give the same split. ``task`` may
    be given to override the inference for a CSV file; for a built-in dataset it must agree
    with the dataset's own task. Raises ``ValueError`` for an unknown name or bad input.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}.")
    if task is not None and task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; expected one of: {', '.join(TASKS)}.")

    named_task = _csv_name_task(name)
    if named_task is not None:
        if not csv_path or not target_column:
            raise ValueError('The "csv" dataset needs both csv_path and target_column.')
        if named_task and task is not None and task != named_task:
            raise ValueError(f"Dataset {name!r} is a {named_task} dataset, not {task}.")
        table = read_csv_table(csv_path, target_column=target_column, task=task or named_task or None)
        x, y, task, feature_names = table.x, table.y, table.task, table.feature_names
        image_shape = None
    elif name in BUILTIN_DATASETS:
        if csv_path is not None or target_column is not None:
            raise ValueError(f"csv_path and target_column apply only to the \"csv\" dataset, not {name!r}.")
        builtin_task = BUILTIN_DATASETS[name]
        if task is not None and task != builtin_task:
            raise ValueError(f"Dataset {name!r} is a {builtin_task} dataset, not {task}.")
        task = builtin_task
        bunch = _SKLEARN_LOADERS[name]()
        x = np.asarray(bunch.data, dtype=np.float64)
        feature_names = [str(feature) for feature in bunch.feature_names]
        image_shape = (8, 8) if name == "digits" else None
        if task == "classification":
            y = np.asarray(bunch.target, dtype=np.int64)
        else:
            y = np.asarray(bunch.target, dtype=np.float32)
    else:
        known = ", ".join([*BUILTIN_DATASETS, "csv"])
        raise ValueError(f"Unknown dataset {name!r}; known datasets: {known}.")

    rng = np.random.default_rng(seed)
    if task == "classification":
        train_idx, test_idx = _stratified_split(y, test_fraction, rng)
        n_classes: int | None = int(y.max()) + 1
    else:
        train_idx, test_idx = _shuffled_split(len(y), test_fraction, rng)
        n_classes = None
    if len(test_idx) == 0 or len(train_idx) == 0:
        raise ValueError(f"Too few rows ({len(y)}) for a train/test split with test_fraction={test_fraction}.")

    x_train, x_test = _standardise(x[train_idx], x[test_idx])
    return Dataset(
        name=name,
        task=task,
        x_train=x_train,
        y_train=y[train_idx],
        x_test=x_test,
        y_test=y[test_idx],
        n_features=x.shape[1],
        n_classes=n_classes,
        feature_names=feature_names,
        image_shape=image_shape,
    )


def _standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale both splits with the train split's statistics and return them as float32."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    # Constant columns (the border pixels of digits) would divide by zero; leave them at 0.
    std[std == 0] = 1.0
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def _shuffled_split(n: int, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    n_test = int(round(n * test_fraction))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _stratified_split(
    y: np.ndarray, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split so each class keeps its share in both parts, with at least one example of every class in train.

    The test size is shared out over classes by largest remainder rather than rounded per
    class, because with many small classes per-class rounding can leave the test split empty.
    """
    classes, counts = np.unique(y, return_counts=True)
    n_test = int(round(len(y) * test_fraction))
    ideal = counts * n_test / len(y)
    allocated = np.floor(ideal).astype(int)
    # Random tie-breaking, then the largest fractional parts take the leftover test slots.
    shuffled = rng.permutation(len(classes))
    by_remainder = shuffled[np.argsort(-(ideal - allocated)[shuffled], kind="stable")]
    allocated[by_remainder[: n_test - allocated.sum()]] += 1
    allocated = np.minimum(allocated, counts - 1)

    train_parts, test_parts = [], []
    for label, n_class_test in zip(classes, allocated, strict=True):
        members = rng.permutation(np.flatnonzero(y == label))
        test_parts.append(members[:n_class_test])
        train_parts.append(members[n_class_test:])
    return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(test_parts))


class CsvError(ValueError):
    """A CSV file that cannot be trained on, with where the problem is: ``reason`` (a short code),
    the data ``row`` (1-based, blank lines not counted), the file ``line`` and the ``column``."""

    def __init__(self, message: str, *, reason: str, row: int | None = None, line: int | None = None,
                 column: str | None = None) -> None:
        super().__init__(message)
        self.reason, self.row, self.line, self.column = reason, row, line, column


# eq=False: the generated __eq__ would compare numpy arrays and raise on truth testing.
@dataclass(frozen=True, eq=False)
class CsvTable:
    """A parsed CSV file: float64 features (rows, columns - 1), the encoded target and its task.

    ``classes`` names each label 0..k-1 of a classification target, as written in the file
    (integer-valued numbers without a decimal point); ``line_numbers`` maps data rows to lines.
    """

    columns: list[str]
    target_column: str
    x: np.ndarray
    y: np.ndarray
    task: str
    classes: list[str] | None
    line_numbers: np.ndarray

    @property
    def feature_names(self) -> list[str]:
        return [column for column in self.columns if column != self.target_column]


def csv_lines(stream: BinaryIO) -> Iterator[str]:
    """The lines of a byte stream as text: UTF-8 (a byte order mark is dropped), and no NUL byte,
    which no text file holds. Raises ``CsvError`` naming the line otherwise."""
    for number, raw in enumerate(iter(stream.readline, b""), start=1):
        if number == 1:
            if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                raise CsvError("The file is UTF-16 text; save it as UTF-8 CSV.", reason="not_utf8", line=1)
            if raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
        if b"\x00" in raw:
            raise CsvError(f"Line {number} holds a NUL byte: this is a binary file, not CSV text.",
                           reason="binary", line=number)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CsvError(f"Line {number} is not UTF-8 text (byte {exc.start + 1} of the line); "
                           "save the file as UTF-8 CSV.", reason="not_utf8", line=number) from None


@contextmanager
def _binary(source: str | os.PathLike | BinaryIO) -> Iterator[BinaryIO]:
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as handle:
            yield handle
    else:
        yield source


def csv_records(source: str | os.PathLike | BinaryIO) -> Iterator[tuple[int, list[str]]]:
    """``(line number, cells)`` of each non-blank record, header first. Nothing is evaluated: a
    cell is text until a caller converts it."""
    with _binary(source) as stream:
        reader = csv.reader(csv_lines(stream), strict=True)
        try:
            for record in reader:
                if any(cell.strip() for cell in record):
                    yield reader.line_num, record
        except csv.Error as exc:
            line = max(reader.line_num, 1)
            raise CsvError(f"Line {line} is not valid CSV: {exc}.", reason="bad_csv", line=line) from None


def read_csv_table(
    source: str | os.PathLike | BinaryIO,
    *,
    target_column: str | None = None,
    task: str | None = None,
    max_rows: int | None = None,
    max_columns: int | None = None,
) -> CsvTable:
    """Parse a CSV file with a header row into finite numeric features and a target.

    The one parser for CSV data: the upload validator and the training engine both call it, so a
    file that validates is a file that trains. ``target_column`` defaults to the last column;
    ``task`` defaults to the inference of ``_encode_target``. The target may be text (class names);
    every other cell must be a finite number. Raises ``CsvError`` (a ValueError) naming the row,
    line and column of the first problem.
    """
    if task is not None and task not in TASKS:
        raise CsvError(f"Unknown task {task!r}; expected one of: {', '.join(TASKS)}.", reason="bad_task")
    max_rows = CSV_MAX_ROWS if max_rows is None else max_rows
    max_columns = CSV_MAX_COLUMNS if max_columns is None else max_columns
    with closing(csv_records(source)) as records:
        return _parse_records(records, target_column, task, max_rows, max_columns)


def _parse_records(records: Iterator[tuple[int, list[str]]], target_column: str | None, task: str | None,
                   max_rows: int, max_columns: int) -> CsvTable:
    header_line, header = next(records, (None, None))
    if header is None:
        raise CsvError(f"The CSV file is empty; it needs a header row and at least {CSV_MIN_ROWS} data rows.",
                       reason="empty")
    columns = _check_header([cell.strip() for cell in header], header_line, max_columns)
    target_column = columns[-1] if target_column is None else target_column.strip()
    if target_column not in columns:
        raise CsvError(f"Target column {target_column!r} is not in the CSV header; columns are: "
                       f"{', '.join(columns)}.", reason="unknown_target", column=target_column)
    if len(columns) < 2:
        raise CsvError("The CSV file has no feature columns besides the target.", reason="too_few_columns")
    target_at = columns.index(target_column)
    feature_names = [column for column in columns if column != target_column]

    values = array("d")
    lines = array("q")
    targets: list[str] = []
    labels: dict[str, str] = {}  # one string object per distinct label, however many rows repeat it
    for line, record in records:
        row = len(lines) + 1
        if row > max_rows:
            raise CsvError(f"The CSV file has more than {max_rows:,} data rows.", reason="too_many_rows",
                           row=row, line=line)
        if len(record) != len(columns):
            raise CsvError(f"CSV row {row} has {len(record)} values but the header has {len(columns)} "
                           f"columns (line {line}).", reason="ragged_row", row=row, line=line)
        target = record.pop(target_at).strip()
        try:
            numbers = [float(cell) for cell in record]
        except ValueError:
            raise _not_a_number(record, feature_names, row, line) from None
        if not target:
            raise CsvError(f"Column {target_column!r}, row {row} (line {line}): the target is empty.",
                           reason="missing_target", row=row, line=line, column=target_column)
        if target.startswith(FORMULA_PREFIXES) and not _is_number(target):
            raise CsvError(f"Column {target_column!r}, row {row} (line {line}): {target!r} looks like a "
                           "spreadsheet formula; class names may not start with = + - @.",
                           reason="formula", row=row, line=line, column=target_column)
        values.extend(numbers)
        lines.append(line)
        targets.append(labels.setdefault(target, target) if len(labels) <= CSV_MAX_CLASSES else target)

    if len(lines) < CSV_MIN_ROWS:
        raise CsvError(f"The CSV file has {len(lines)} data rows; at least {CSV_MIN_ROWS} are needed.",
                       reason="too_few_rows")
    line_numbers = np.frombuffer(lines, dtype=np.int64)
    x = np.frombuffer(values, dtype=np.float64).reshape(len(lines), len(feature_names))
    finite = np.isfinite(x)
    if not finite.all():
        row, col = (int(i) for i in np.argwhere(~finite)[0])
        raise CsvError(f"Column {feature_names[col]!r}, row {row + 1} (line {line_numbers[row]}): "
                       f"{x[row, col]!r} is not a finite number (NaN or infinity).", reason="not_finite",
                       row=row + 1, line=int(line_numbers[row]), column=feature_names[col])
    y, task, classes = _encode_target(targets, target_column, task, line_numbers)
    return CsvTable(columns=columns, target_column=target_column, x=x, y=y, task=task, classes=classes,
                    line_numbers=line_numbers)


def _check_header(columns: list[str], line: int, max_columns: int) -> list[str]:
    if len(columns) > max_columns:
        raise CsvError(f"The CSV header has {len(columns)} columns; at most {max_columns:,} are allowed.",
                       reason="too_many_columns", line=line)
    for i, column in enumerate(columns, start=1):
        if not column:
            raise CsvError(f"Column {i} of the CSV header (line {line}) has no name.", reason="bad_header",
                           line=line)
        if len(column) > CSV_MAX_NAME_LENGTH:
            raise CsvError(f"Column {i} of the CSV header has a name longer than {CSV_MAX_NAME_LENGTH} characters.",
                           reason="bad_header", line=line)
    duplicates = sorted({column for column in columns if columns.count(column) > 1})
    if duplicates:
        raise CsvError(f"CSV header repeats column names: {', '.join(duplicates)}.", reason="duplicate_column",
                       line=line)
    if all(_is_number(column) for column in columns):
        raise CsvError(f"The first row (line {line}) holds only numbers; the file needs a header row naming "
                       "its columns.", reason="no_header", line=line)
    return columns


def _not_a_number(cells: list[str], names: list[str], row: int, line: int) -> CsvError:
    col, text = next((i, cell.strip()) for i, cell in enumerate(cells) if not _is_number(cell))
    if not text:
        shown = "an empty value"
    elif text.startswith(FORMULA_PREFIXES):
        shown = f"{text!r} (a formula or text, not a plain number)"
    else:
        shown = repr(text)
    return CsvError(f"Column {names[col]!r}, row {row} (line {line}): {shown} is not a number.",
                    reason="not_numeric", row=row, line=line, column=names[col])


def _encode_target(
    targets: list[str], column: str, task: str | None, line_numbers: np.ndarray
) -> tuple[np.ndarray, str, list[str] | None]:
    """Turn the raw target strings into int64 labels 0..k-1 (with their names) or float32 values.

    Without a ``task``: an integer-valued target with at most ``CSV_MAX_INFERRED_CLASSES``
    distinct values is a classification target, any other number a regression one, and text
    labels ("setosa", "spam") are classes.
    """
    numbers: list[float] | None = []
    for text in targets:
        try:
            numbers.append(float(text))
        except ValueError:
            numbers = None
            break

    def where(row: int) -> str:
        return f"Column {column!r}, row {row} (line {line_numbers[row - 1]})"

    if numbers is None:
        if task == "regression":
            bad_row = next(i for i, text in enumerate(targets, start=1) if not _is_number(text))
            raise CsvError(f"{where(bad_row)}: {targets[bad_row - 1]!r} is not a number, so the target cannot "
                           "be used for regression.", reason="text_target", row=bad_row,
                           line=int(line_numbers[bad_row - 1]), column=column)
        task = "classification"
        raw_labels: np.ndarray = np.asarray(targets)
    else:
        raw_labels = np.asarray(numbers, dtype=np.float64)
        finite = np.isfinite(raw_labels)
        if not finite.all():
            bad_row = int(np.argmin(finite)) + 1
            raise CsvError(f"{where(bad_row)}: {targets[bad_row - 1]!r} is not a finite number (NaN or infinity).",
                           reason="not_finite", row=bad_row, line=int(line_numbers[bad_row - 1]), column=column)
        if task is None:
            all_integers = bool(np.all(raw_labels == np.round(raw_labels)))
            few_values = len(np.unique(raw_labels)) <= CSV_MAX_INFERRED_CLASSES
            task = "classification" if all_integers and few_values else "regression"
        if task == "regression":
            return raw_labels.astype(np.float32), task, None

    classes, labels = np.unique(raw_labels, return_inverse=True)
    if len(classes) < 2:
        raise CsvError(f"Target column {column!r} has a single class; classification needs at least two.",
                       reason="single_class", column=column)
    if len(classes) > CSV_MAX_CLASSES:
        raise CsvError(f"Target column {column!r} has {len(classes):,} distinct values; classification allows at "
                       f"most {CSV_MAX_CLASSES:,} classes (is it a regression target?).", reason="too_many_classes",
                       column=column)
    if len(classes) == len(raw_labels):
        raise CsvError(f"Every value of the target column {column!r} is different, so no class has rows to hold out "
                       "for testing; is it a regression target?", reason="single_rows", column=column)
    names = [_label_name(value) for value in classes.tolist()]
    return labels.astype(np.int64).reshape(-1), task, names


def _label_name(value: float | str) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_dataset_name(dataset_id: str, task: str) -> str:
    """The engine's name of a stored CSV data set: ``csv:<id>:<task>``. The task travels in the
    name so that a task chosen at upload (over the inferred one) is the one the run trains on."""
    return f"csv:{dataset_id}:{task}"


def _csv_name_task(name: str) -> str | None:
    """``None`` if ``name`` is no CSV name; else the task it names ("" when it names none)."""
    parts = name.split(":")
    if parts[0] != "csv":
        return None
    return parts[-1] if len(parts) > 1 and parts[-1] in TASKS else ""


def partition(
    y: np.ndarray,
    num_partitions: int,
    *,
    method: str = "iid",
    alpha: float = 0.5,
    shards_per_partition: int = 2,
    seed: int = 0,
    min_size: int = 1,
) -> list[np.ndarray]:
    """Divide the examples of ``y`` between ``num_partitions`` simulated clients.

    Returns one sorted int64 array of indices into ``y`` per partition; together they use
    every index exactly once. Integer ``y`` is read as class labels; float ``y`` as a
    regression target, binned into quantiles where a method needs labels.

    - ``"iid"``: a random permutation cut into near-equal parts.
    - ``"dirichlet"``: each class is spread over partitions in proportions drawn from
      Dirichlet(``alpha``); smaller ``alpha`` means stronger label skew.
    - ``"shards"``: examples sorted by label are cut into ``num_partitions *
      shards_per_partition`` shards and each partition receives ``shards_per_partition`` of
      them at random, so it sees only a few labels.

    Every partition gets at least ``min_size`` examples: a Dirichlet split is re-drawn up to
    ``DIRICHLET_MAX_DRAWS`` times, and any shortfall left after that (or after a shard split)
    is filled by moving examples from the largest partition. The output depends only on the
    arguments, so the same ``seed`` reproduces it exactly.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be one-dimensional, got shape {y.shape}.")
    if num_partitions < 1:
        raise ValueError(f"num_partitions must be at least 1, got {num_partitions}.")
    if min_size < 0:
        raise ValueError(f"min_size must not be negative, got {min_size}.")
    if method not in PARTITION_METHODS:
        raise ValueError(f"Unknown partition method {method!r}; expected one of: {', '.join(PARTITION_METHODS)}.")
    if method == "dirichlet" and not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}.")
    if method == "shards" and shards_per_partition < 1:
        raise ValueError(f"shards_per_partition must be at least 1, got {shards_per_partition}.")
    if num_partitions * min_size > len(y):
        raise ValueError(
            f"Cannot give {num_partitions} partitions at least {min_size} examples each from {len(y)} examples."
        )

    rng = np.random.default_rng(seed)
    if method == "iid":
        parts = np.array_split(rng.permutation(len(y)), num_partitions)
    elif method == "dirichlet":
        parts = _dirichlet_parts(_label_groups(y), num_partitions, alpha, min_size, rng)
    else:
        parts = _shard_parts(y, num_partitions, shards_per_partition, rng)

    parts = _fill_to_min_size([np.asarray(part, dtype=np.int64) for part in parts], min_size, rng)
    return [np.sort(part) for part in parts]


def _label_groups(y: np.ndarray) -> np.ndarray:
    """Class labels for integer ``y``; quantile bin numbers for a float regression target."""
    if np.issubdtype(y.dtype, np.integer) or y.dtype == bool:
        return y
    cut_points = np.quantile(y, np.linspace(0.0, 1.0, REGRESSION_BINS + 1)[1:-1])
    return np.searchsorted(cut_points, y, side="right")


def _dirichlet_parts(
    labels: np.ndarray, num_partitions: int, alpha: float, min_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    parts: list[np.ndarray] = []
    for _ in range(DIRICHLET_MAX_DRAWS):
        buckets: list[list[np.ndarray]] = [[] for _ in range(num_partitions)]
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            shares = rng.dirichlet(np.full(num_partitions, alpha))
            cut_points = (np.cumsum(shares)[:-1] * len(members)).astype(int)
            for bucket, piece in zip(buckets, np.split(members, cut_points), strict=True):
                bucket.append(piece)
        parts = [np.concatenate(bucket) for bucket in buckets]
        if min(len(part) for part in parts) >= min_size:
            break
    return parts


def _shard_parts(
    y: np.ndarray, num_partitions: int, shards_per_partition: int, rng: np.random.Generator
) -> list[np.ndarray]:
    # Shuffle before the stable sort so each shard holds a random subset of its label.
    shuffled = rng.permutation(len(y))
    by_label = shuffled[np.argsort(y[shuffled], kind="stable")]
    shards = np.array_split(by_label, num_partitions * shards_per_partition)
    shard_order = rng.permutation(len(shards))
    return [
        np.concatenate([shards[s] for s in shard_order[i * shards_per_partition : (i + 1) * shards_per_partition]])
        for i in range(num_partitions)
    ]


def _fill_to_min_size(parts: list[np.ndarray], min_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Move random examples from the largest partition to each one below ``min_size``.

    Precondition: ``len(parts) * min_size`` does not exceed the number of examples, so the
    largest partition always has an example to spare.
    """
    for i in range(len(parts)):
        while len(parts[i]) < min_size:
            donor = int(np.argmax([len(part) for part in parts]))
            spare = len(parts[donor]) - min_size
            moved = min(min_size - len(parts[i]), spare)
            taken = rng.choice(len(parts[donor]), size=moved, replace=False)
            parts[i] = np.concatenate([parts[i], parts[donor][taken]])
            parts[donor] = np.delete(parts[donor], taken)
    return parts


def partition_stats(partitions: list[np.ndarray], y: np.ndarray, n_classes: int | None) -> dict[str, Any]:
    """Summarise a partitioning: sizes, per-partition label counts, heterogeneity and imbalance.

    ``heterogeneity`` is the mean Jensen-Shannon divergence (base 2, so in [0, 1]) between
    each partition's label distribution and the distribution over all partitions; it is 0
    for regression (``n_classes`` None) and for identical distributions. Empty partitions
    are left out of that mean. ``imbalance`` is largest size / smallest size, or None when a
    partition is empty and the ratio is undefined.
    """
    if not partitions:
        raise ValueError("partition_stats needs at least one partition.")
    y = np.asarray(y)
    sizes = [int(len(part)) for part in partitions]

    label_distribution: list[list[int]] | None = None
    heterogeneity = 0.0
    if n_classes is not None:
        counts = np.stack([np.bincount(y[part].astype(np.int64), minlength=n_classes) for part in partitions])
        label_distribution = counts.tolist()
        overall = counts.sum(axis=0) / max(counts.sum(), 1)
        divergences = [
            _jensen_shannon(row / row.sum(), overall) for row in counts if row.sum() > 0
        ]
        heterogeneity = float(np.mean(divergences)) if divergences else 0.0

    smallest = min(sizes)
    return {
        "sizes": sizes,
        "label_distribution": label_distribution,
        "heterogeneity": heterogeneity,
        "imbalance": max(sizes) / smallest if smallest > 0 else None,
    }


def _jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits between two probability vectors."""
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        # Terms with a == 0 contribute nothing; where a > 0, m > 0 too.
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    # Rounding can take the value a hair outside [0, 1].
    return min(max((kl(p, m) + kl(q, m)) / 2, 0.0), 1.0)
