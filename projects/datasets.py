"""Validation of an uploaded CSV data set, treated as hostile input.

Nothing in the file is evaluated: it is read once to hash it, then parsed by the training engine's
own CSV parser (``training.engine.datasets.read_csv_table``), so a file accepted here is read
exactly the same way when an execution trains on it. Every problem answers 422 naming the field
(``file``, ``target_column`` or ``task``) and, where there is one, the row, line and column.
"""

import hashlib
from dataclasses import dataclass
from itertools import islice
from typing import IO

import numpy as np
from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

from core.exceptions import ValidationFailed
from projects.choices import ColumnType, DatasetTask
from training.engine.datasets import CsvError, csv_records, read_csv_table

READ_CHUNK = 64 * 1024
PREVIEW_ROWS = 20
# Problems with the target go back to the field that named it; everything else is the file's.
REASON_FIELDS = {"unknown_target": "target_column", "single_class": "target_column", "bad_task": "task",
                 "text_target": "task", "too_many_classes": "task", "single_rows": "task"}


@dataclass
class DatasetReport:
    size: int
    sha256: str
    rows: int
    columns: list[str]
    column_types: dict[str, str]
    column_stats: dict[str, dict[str, float]]
    target_column: str
    task: str
    num_classes: int | None
    class_counts: dict[str, int]


def _reject(message: str, reason: str, field: str = "file", **extra) -> ValidationFailed:
    details = {"field": field, "reason": reason, **{k: v for k, v in extra.items() if v is not None}}
    return ValidationFailed(message, details=details, http_status=422)


def validate_csv_dataset(fileobj: IO[bytes], *, target_column: str | None = None,
                         task: str | None = None) -> DatasetReport:
    """Check an uploaded CSV file and describe it, or raise ``ValidationFailed`` (422)."""
    limit = settings.PROJECT_DATASET_MAX_BYTES
    fileobj.seek(0, 2)
    size = fileobj.tell()
    fileobj.seek(0)
    if size == 0:
        raise _reject("The uploaded file is empty", "empty_file")
    if size > limit:
        raise _reject(f"The file is {size} bytes; the limit is {limit}", "too_large", limit=limit)
    if task is not None and task not in DatasetTask.values:
        raise _reject(f"task must be one of {DatasetTask.values}", "bad_task", field="task")
    digest = hashlib.sha256()
    for chunk in iter(lambda: fileobj.read(READ_CHUNK), b""):
        digest.update(chunk)
    fileobj.seek(0)

    try:
        table = read_csv_table(fileobj, target_column=target_column, task=task,
                               max_rows=settings.PROJECT_DATASET_MAX_ROWS,
                               max_columns=settings.PROJECT_DATASET_MAX_COLUMNS)
    except CsvError as exc:
        raise _reject(str(exc), exc.reason, REASON_FIELDS.get(exc.reason, "file"), row=exc.row, line=exc.line,
                      column=exc.column)
    finally:
        fileobj.seek(0)

    features = table.feature_names
    stats = {name: _stats(table.x[:, i]) for i, name in enumerate(features)}
    types = {name: ColumnType.NUMERIC for name in features}
    class_counts: dict[str, int] = {}
    if table.task == DatasetTask.CLASSIFICATION:
        types[table.target_column] = ColumnType.CATEGORICAL
        counts = np.bincount(table.y, minlength=len(table.classes))
        class_counts = {label: int(n) for label, n in zip(table.classes, counts, strict=True)}
    else:
        types[table.target_column] = ColumnType.NUMERIC
        stats[table.target_column] = _stats(table.y.astype(np.float64))
    return DatasetReport(
        size=size, sha256=digest.hexdigest(), rows=len(table.y), columns=table.columns,
        column_types={name: str(types[name]) for name in table.columns},
        column_stats={name: stats[name] for name in table.columns if name in stats},
        target_column=table.target_column, task=table.task,
        num_classes=len(table.classes) if table.classes else None, class_counts=class_counts,
    )


def _stats(values: np.ndarray) -> dict[str, float]:
    return {"min": float(values.min()), "max": float(values.max()), "mean": float(values.mean()),
            "std": float(values.std())}


def preview_rows(fileobj: IO[bytes], column_types: dict[str, str], limit: int = PREVIEW_ROWS) -> list[list]:
    """The first ``limit`` data rows of a stored (already validated) file: numbers for numeric
    columns, text for a categorical target."""
    records = csv_records(fileobj)
    header = [cell.strip() for cell in next(records)[1]]
    numeric = [column_types.get(name) == ColumnType.NUMERIC for name in header]
    rows = []
    for _, record in islice(records, limit):
        rows.append([float(cell) if is_number else cell.strip() for cell, is_number in zip(record, numeric,
                                                                                           strict=True)])
    records.close()
    return rows


class DatasetSizeCap(FileUploadHandler):
    """First of a request's upload handlers: stops reading a multipart body once a file in it
    passes ``limit`` bytes, whether or not the client declared a length. The view asks
    ``exceeded`` after parsing and refuses the request."""

    def __init__(self, request, limit: int):
        super().__init__(request)
        self.limit = limit
        self.exceeded = False

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > self.limit:
            self.exceeded = True
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size):
        return None


def install_size_cap(request) -> DatasetSizeCap:
    """Put a ``DatasetSizeCap`` in front of ``request``'s upload handlers; call before its body is read."""
    cap = DatasetSizeCap(request, settings.PROJECT_DATASET_MAX_BYTES)
    request.upload_handlers.insert(0, cap)
    return cap


def too_large_error() -> ValidationFailed:
    limit = settings.PROJECT_DATASET_MAX_BYTES
    return _reject(f"The file is larger than the limit of {limit} bytes", "too_large", limit=limit)
