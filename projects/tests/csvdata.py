"""CSV files for the data-set tests: small hand-made ones and scikit-learn's bundled sets."""

import numpy as np
from sklearn import datasets as sk_datasets

HEADER = ["a", "b", "y"]
GOOD_ROWS = [[i, i * 2, i % 2] for i in range(12)]


def csv_bytes(header: list[str], rows: list[list[object]], *, newline: str = "\n") -> bytes:
    lines = [",".join(header)] + [",".join(str(value) for value in row) for row in rows]
    return (newline.join(lines) + newline).encode()


def with_row(index: int, row: list[object], rows=None) -> list[list[object]]:
    """``rows`` (GOOD_ROWS) with the row at 0-based ``index`` (data row ``index + 1``) replaced."""
    rows = GOOD_ROWS if rows is None else rows
    return [*rows[:index], row, *rows[index + 1:]]


def sklearn_csv(name: str, target: str = "target") -> bytes:
    """One of scikit-learn's bundled data sets as a CSV file, its target in the last column."""
    bunch = getattr(sk_datasets, f"load_{name}")()
    columns = [str(f).replace(" ", "_") for f in bunch.feature_names]
    target_values = bunch.target.astype(np.int64) if name != "diabetes" else bunch.target
    rows = [[*(repr(float(v)) for v in x), str(t)] for x, t in zip(bunch.data, target_values, strict=True)]
    return csv_bytes([*columns, target], rows)


# name -> (content, field, reason, text the message must hold)
BAD_FILES = {
    "empty": (b"", "file", "empty_file", "empty"),
    "latin-1": (csv_bytes(HEADER, GOOD_ROWS) + "caf\xe9,1,0\n".encode("latin-1"), "file", "not_utf8", "Line 14"),
    "utf-16": ("a,b,y\n1,2,0\n".encode("utf-16"), "file", "not_utf8", "UTF-16"),
    "zip": (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(256)), "file", "binary", "binary"),
    "png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "file", "not_utf8", "Line 1"),
    "nul-inside": (csv_bytes(HEADER, with_row(3, [3, "6\x00", 1])), "file", "binary", "Line 5"),
    "no-header": (csv_bytes(["1", "2", "0"], GOOD_ROWS), "file", "no_header", "header row"),
    "one-column": (csv_bytes(["y"], [[i % 2] for i in range(12)]), "file", "too_few_columns", "no feature"),
    "nine-rows": (csv_bytes(HEADER, GOOD_ROWS[:9]), "file", "too_few_rows", "at least 10"),
    "text-cell": (csv_bytes(HEADER, with_row(4, [4, "abc", 0])), "file", "not_numeric", "Column 'b', row 5 (line 6)"),
    "empty-cell": (csv_bytes(HEADER, with_row(2, ["", 1, 0])), "file", "not_numeric", "Column 'a', row 3"),
    "nan": (csv_bytes(HEADER, with_row(6, [6, "nan", 0])), "file", "not_finite", "Column 'b', row 7"),
    "inf": (csv_bytes(HEADER, with_row(1, ["-inf", 1, 0])), "file", "not_finite", "Column 'a', row 2"),
    "overflow": (csv_bytes(HEADER, with_row(1, ["1e999", 1, 0])), "file", "not_finite", "Column 'a', row 2"),
    "nan-target": (csv_bytes(HEADER, with_row(3, [3, 6, "NaN"])), "file", "not_finite", "Column 'y', row 4"),
    "ragged": (csv_bytes(HEADER, with_row(3, [3, 6])), "file", "ragged_row", "row 4 has 2 values"),
    "too-long-row": (csv_bytes(HEADER, with_row(8, [1, 2, 3, 4])), "file", "ragged_row", "(line 10)"),
    "formula-feature": (csv_bytes(HEADER, with_row(5, ["=1+2", 1, 0])), "file", "not_numeric", "formula"),
    "at-feature": (csv_bytes(HEADER, with_row(5, ["@SUM(A1)", 1, 0])), "file", "not_numeric", "Column 'a', row 6"),
    "formula-label": (csv_bytes(HEADER, with_row(2, [2, 4, "=cmd|' /C calc'!A0"])), "file", "formula", "row 3"),
    "empty-label": (csv_bytes(HEADER, with_row(2, [2, 4, " "])), "file", "missing_target", "row 3"),
    "open-quote": (csv_bytes(HEADER, GOOD_ROWS) + b'1,2,"unterminated\n', "file", "bad_csv", "not valid CSV"),
    "duplicate-column": (csv_bytes(["a", "a", "y"], GOOD_ROWS), "file", "duplicate_column", "repeats"),
    "nameless-column": (csv_bytes(["a", " ", "y"], GOOD_ROWS), "file", "bad_header", "Column 2"),
    "single-class": (csv_bytes(HEADER, [[i, i, 1] for i in range(12)]), "target_column", "single_class", "'y'"),
}
