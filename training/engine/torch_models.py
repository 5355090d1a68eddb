"""PyTorch models for the engine: a small MLP and a small CNN, behind the same interface as the
numpy models (weights travel as float32 numpy arrays, ``fit``/``evaluate`` return metric dicts).

Imported only when a torch model is asked for, so the platform runs without torch installed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from training.engine.metrics import classification_metrics

# One thread per worker process: a federation of simulated nodes is already parallel work, and
# CPU threads fighting over two cores make rounds slower and results irreproducible.
torch.set_num_threads(1)


class _TorchClassifier:
    task = "classification"

    def __init__(self, module: nn.Module, n_classes: int, *, input_shape: tuple[int, ...], seed: int):
        self.module = module
        self.n_classes = n_classes
        self.input_shape = input_shape
        self.seed = seed

    # ---- weights --------------------------------------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        return [t.detach().cpu().numpy().astype(np.float32, copy=True) for t in self.module.state_dict().values()]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        keys = list(self.module.state_dict().keys())
        if len(weights) != len(keys):
            raise ValueError(f"Expected {len(keys)} weight arrays, got {len(weights)}")
        state = {}
        for key, value, current in zip(keys, weights, self.module.state_dict().values()):
            if tuple(value.shape) != tuple(current.shape):
                raise ValueError(f"Weight {key} has shape {tuple(value.shape)}; expected {tuple(current.shape)}")
            state[key] = torch.from_numpy(np.asarray(value, dtype=np.float32).copy())
        self.module.load_state_dict(state)

    # ---- training ---------------------------------------------------------------------------------
    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(x, dtype=np.float32)).reshape(-1, *self.input_shape)

    def fit(self, x, y, *, epochs: int, learning_rate: float, batch_size: int, seed: int,
            proximal_mu: float = 0.0, global_weights: list[np.ndarray] | None = None) -> dict[str, float]:
        torch.manual_seed(seed)
        inputs, labels = self._tensor(x), torch.from_numpy(np.asarray(y, dtype=np.int64))
        optimiser = torch.optim.Adam(self.module.parameters(), lr=learning_rate)
        anchors = None
        if proximal_mu > 0 and global_weights is not None:
            anchors = [torch.from_numpy(np.asarray(w, dtype=np.float32)) for w in global_weights]
        loss_fn = nn.CrossEntropyLoss()
        self.module.train()
        generator = np.random.default_rng(seed)
        for _ in range(epochs):
            order = torch.from_numpy(generator.permutation(len(labels)))
            for start in range(0, len(labels), batch_size):
                batch = order[start:start + batch_size]
                optimiser.zero_grad()
                loss = loss_fn(self.module(inputs[batch]), labels[batch])
                if anchors is not None:
                    loss = loss + proximal_mu / 2 * sum(((p - a) ** 2).sum() for p, a in
                                                         zip(self.module.parameters(), anchors))
                loss.backward()
                optimiser.step()
        return self.evaluate(x, y)

    @torch.no_grad()
    def _probabilities(self, x) -> np.ndarray:
        self.module.eval()
        return torch.softmax(self.module(self._tensor(x)), dim=1).numpy()

    def predict(self, x) -> np.ndarray:
        return self._probabilities(x).argmax(axis=1)

    def evaluate(self, x, y) -> dict[str, float]:
        probabilities = self._probabilities(x)
        metrics = classification_metrics(np.asarray(y), probabilities.argmax(axis=1), self.n_classes,
                                         probabilities=probabilities)
        return {**metrics, "num_examples": int(len(y))}


class MLP(_TorchClassifier):
    def __init__(self, n_features: int, n_classes: int, *, hidden: int = 64, seed: int = 0):
        torch.manual_seed(seed)
        module = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))
        super().__init__(module, n_classes, input_shape=(n_features,), seed=seed)


class SmallCNN(_TorchClassifier):
    """Two 3x3 convolutions and a max-pool over single-channel images (digits: 8x8)."""

    def __init__(self, image_shape: tuple[int, int], n_classes: int, *, channels: int = 16, seed: int = 0):
        torch.manual_seed(seed)
        height, width = image_shape
        module = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels * 2, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(channels * 2 * (height // 2) * (width // 2), 64), nn.ReLU(),
            nn.Linear(64, n_classes),
        )
        super().__init__(module, n_classes, input_shape=(1, height, width), seed=seed)
