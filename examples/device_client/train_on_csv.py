"""A device that trains a softmax (logistic) regression on its own CSV file and takes part in a
Pollen device execution through the ``wia_fl`` SDK.

    python examples/device_client/train_on_csv.py --server http://127.0.0.1:8000 \\
        --api-key pk_xxx_yyy --csv data/client_0.csv --device-id device-0

The global model is the server's built-in ``logistic`` model: a weight matrix of shape
(features, classes) and a bias of shape (classes,). Each round the device downloads the global
tensors, runs mini-batch SGD on its rows with the round's ``training_config`` (``local_epochs``,
``learning_rate``, ``batch_size``, ``proximal_mu``), reports its progress after every epoch and
sends the new tensors with its number of examples. Its data never leaves it.

Needs numpy and the SDK's libraries (httpx, websockets, cryptography); no Django.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import platform
import sys
from pathlib import Path

import numpy as np

try:
    from wia_fl import FederatedLearningClient
except ImportError:  # run from a Pollen checkout without installing the SDK
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from wia_fl import FederatedLearningClient

LABEL = "label"
L2 = 1e-4  # the server's built-in logistic model uses the same weight decay

log = logging.getLogger("device")


def load_partition(path: str | Path, label: str = LABEL) -> tuple[np.ndarray, np.ndarray]:
    """Features (float32, n x d) and integer labels from a CSV file with a header row."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        if label not in header:
            raise ValueError(f"{path} has no {label!r} column")
        target = header.index(label)
        rows = [row for row in reader if row]
    table = np.asarray(rows, dtype=np.float64)
    y = table[:, target].astype(np.int64)
    x = np.delete(table, target, axis=1).astype(np.float32)
    return x, y


def split_model(arrays: dict[str, np.ndarray]) -> tuple[str, str]:
    """The names of the weight matrix (d, k) and the bias (k,) of a logistic model."""
    matrices = [n for n, a in arrays.items() if a.ndim == 2]
    vectors = [n for n, a in arrays.items() if a.ndim == 1]
    if len(arrays) != 2 or len(matrices) != 1 or len(vectors) != 1 \
            or arrays[matrices[0]].shape[1] != arrays[vectors[0]].shape[0]:
        shapes = {n: list(a.shape) for n, a in arrays.items()}
        raise ValueError(f"This example trains a logistic model (a (d, k) matrix and a (k,) bias), got {shapes}")
    return matrices[0], vectors[0]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def evaluate(arrays: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Cross-entropy loss and accuracy of the model on (x, y)."""
    w_name, b_name = split_model(arrays)
    p = _softmax(x @ arrays[w_name] + arrays[b_name])
    loss = float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))
    return {"loss": loss, "accuracy": float(np.mean(np.argmax(p, axis=1) == y))}


def train_epoch(arrays: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, *, learning_rate: float,
                batch_size: int, seed: int, proximal_mu: float = 0.0,
                anchor: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """One epoch of mini-batch SGD on cross-entropy + ``L2/2 ||W||²`` (+ FedProx's proximal term)."""
    w_name, b_name = split_model(arrays)
    w = arrays[w_name].astype(np.float32, copy=True)
    b = arrays[b_name].astype(np.float32, copy=True)
    if y.min() < 0 or y.max() >= w.shape[1]:
        raise ValueError(f"Labels must lie in 0..{w.shape[1] - 1} for this model")
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"The CSV has {x.shape[1]} features, the model {w.shape[0]}")
    order = np.random.default_rng(seed).permutation(len(x))
    for start in range(0, len(x), batch_size):
        batch = order[start:start + batch_size]
        error = _softmax(x[batch] @ w + b)
        error[np.arange(len(batch)), y[batch]] -= 1.0
        error /= len(batch)
        grad_w = x[batch].T @ error + L2 * w
        grad_b = error.sum(axis=0)
        if proximal_mu and anchor is not None:
            grad_w += proximal_mu * (w - anchor[w_name])
            grad_b += proximal_mu * (b - anchor[b_name])
        w = (w - learning_rate * grad_w).astype(np.float32)
        b = (b - learning_rate * grad_b).astype(np.float32)
    if not (np.isfinite(w).all() and np.isfinite(b).all()):
        raise FloatingPointError("Training diverged: lower the learning rate")
    return {w_name: w, b_name: b}


def build_client(server: str, api_key: str, csv_path: str | Path, device_id: str, *,
                 state_path: str | Path | None = None, project_id: str | None = None,
                 test_csv: str | Path | None = None, **client_options) -> FederatedLearningClient:
    """A registered client whose invitation handler trains on ``csv_path`` (not started yet)."""
    x, y = load_partition(csv_path)
    test = load_partition(test_csv) if test_csv else None
    client = FederatedLearningClient(server_url=server, api_key=api_key, state_path=state_path,
                                     project_id=project_id, **client_options)
    client.register(device_id=device_id, platform=_platform(),
                    capabilities={"max_model_size_mb": 50, "supported_frameworks": ["numpy"],
                                  "compute_capability": "low", "examples": int(len(x))})

    @client.on_training_invitation
    async def train(round_info):
        config = round_info.training_config
        epochs = int(config.get("local_epochs", 1))
        learning_rate = float(config.get("learning_rate", 0.1))
        batch_size = int(config.get("batch_size", 32))
        proximal_mu = float(config.get("proximal_mu", 0.0) or 0.0)
        seed = int(config.get("seed", 0)) + round_info.round_number * 1000

        global_arrays = await client.download_model(round_info.model_url)
        arrays = global_arrays
        for epoch in range(epochs):
            # numpy releases the GIL; off the event loop the WebSocket keeps answering pings.
            arrays = await asyncio.to_thread(train_epoch, arrays, x, y, learning_rate=learning_rate,
                                             batch_size=batch_size, seed=seed + epoch, proximal_mu=proximal_mu,
                                             anchor=global_arrays)
            await client.report_progress(100.0 * (epoch + 1) / epochs)
        metrics = {f"train_{k}": v for k, v in evaluate(arrays, x, y).items()}
        if test is not None:
            metrics.update({f"test_{k}": v for k, v in evaluate(arrays, *test).items()})
        receipt = await client.submit_update(arrays, num_examples=int(len(x)), metrics=metrics)
        log.info("%s: round %s sent (update %s), train accuracy %.3f", device_id, round_info.round_number,
                 receipt.update_id, metrics["train_accuracy"])

    return client


def _platform() -> str:
    system = platform.system().lower()
    return {"darwin": "macos"}.get(system, system or "linux")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train on a local CSV partition in a Pollen device execution")
    parser.add_argument("--server", required=True, help="Pollen's URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--api-key", required=True, help="an API key with the client:register scope")
    parser.add_argument("--csv", required=True, help="this device's training rows (see export_partition.py)")
    parser.add_argument("--device-id", required=True)
    parser.add_argument("--state", help="file keeping this device's key and token between runs")
    parser.add_argument("--project-id", help="the project whose device executions this device joins")
    parser.add_argument("--test-csv", help="optional held-out rows, to report a local test accuracy")
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--no-websocket", action="store_true", help="poll GET /rounds/current only")
    parser.add_argument("--keep-running", action="store_true", help="do not stop when the execution finishes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    client = build_client(args.server, args.api_key, args.csv, args.device_id, state_path=args.state,
                          project_id=args.project_id, test_csv=args.test_csv, poll_interval=args.poll_interval,
                          use_websocket=not args.no_websocket, stop_when_complete=not args.keep_running)
    log.info("Registered %s as client %s; waiting for training invitations", args.device_id, client.client_id)
    client.start()
    handled = [r.round_number for r in client.rounds_handled]
    log.info("Done: trained in rounds %s", handled)


if __name__ == "__main__":
    main()
