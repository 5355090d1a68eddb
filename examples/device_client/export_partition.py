"""Export partitions of a scikit-learn bundled data set to CSV files, one per device.

Run from a Pollen checkout (it reuses Pollen's own loading, so the features are split and
standardised exactly as the server does when it evaluates the global model):

    python examples/device_client/export_partition.py --dataset digits --clients 3 --seed 0 --out data/

writes ``data/client_0.csv`` .. ``client_2.csv`` (the train split shared out between devices) and
``data/test.csv`` (the held-out split). Each file has one column per feature and a ``label``
column; the first line is the header. Only the exporter needs Pollen: a device reads its CSV with
numpy alone (see ``train_on_csv.py``).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
LABEL = "label"


def _write(path: Path, feature_names: list[str], x: np.ndarray, y: np.ndarray) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*feature_names, LABEL])
        for row, label in zip(x, y, strict=True):
            writer.writerow([f"{value:.6g}" for value in row] + [int(label)])


def export(dataset: str, clients: int, out: Path, *, seed: int = 0, method: str = "iid",
           alpha: float = 0.5) -> list[Path]:
    """Write ``clients`` train partitions and the test split of ``dataset`` under ``out``."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from training.engine.datasets import load_dataset, partition

    data = load_dataset(dataset, seed=seed)
    if data.task != "classification":
        raise SystemExit(f"{dataset} is a {data.task} data set; this example trains a classifier")
    out.mkdir(parents=True, exist_ok=True)
    # Feature names become CSV headers: keep them plain.
    names = [f"f{i}" for i in range(data.n_features)]
    paths = []
    for i, indices in enumerate(partition(data.y_train, clients, method=method, alpha=alpha, seed=seed)):
        path = out / f"client_{i}.csv"
        _write(path, names, data.x_train[indices], data.y_train[indices])
        paths.append(path)
    _write(out / "test.csv", names, data.x_test, data.y_test)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits", help="digits, iris, wine or breast_cancer")
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="the execution's seed (same split as the server)")
    parser.add_argument("--partition", default="iid", choices=["iid", "dirichlet", "shards"])
    parser.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration (with --partition dirichlet)")
    parser.add_argument("--out", type=Path, default=Path("data"))
    args = parser.parse_args(argv)
    for path in export(args.dataset, args.clients, args.out, seed=args.seed, method=args.partition, alpha=args.alpha):
        rows = sum(1 for _ in open(path)) - 1
        print(f"{path}: {rows} rows")
    print(f"{args.out / 'test.csv'}: held-out split")


if __name__ == "__main__":
    main()
