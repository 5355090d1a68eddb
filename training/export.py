"""Model files in the formats other tools load: NumPy ``.npz``, PyTorch ``.pt`` and ONNX.

The ``.npz`` checkpoint a round leaves is the canonical weights (arrays ``arr_0``, ``arr_1``, ...);
every other format is converted from it here. The built-in models are rebuilt from the shapes of
their weights, so no data set has to be loaded to export them:

- ``pt``: the ``state_dict`` of the PyTorch MLP/CNN; for the numpy models (and uploaded apps,
  whose architecture Pollen does not know) a dict of named tensors. Loads with
  ``torch.load(..., weights_only=True)``.
- ``onnx``: the PyTorch models through ``torch.onnx.export``; logistic and linear regression as a
  graph built by hand (MatMul, Add, Softmax). Input ``input``: standardised features, float32,
  ``(batch, features)`` (``(batch, 1, height, width)`` for the CNN). Output ``probabilities`` for
  classifiers, ``prediction`` for linear regression. k-means and uploaded apps have no ONNX form.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from dataclasses import dataclass

import numpy as np

from core.exceptions import ApplicationError

ALWAYS = ("npz", "pt")
ONNX_MODELS = {"logistic", "linear", "mlp", "cnn"}
TORCH_MODELS = {"mlp", "cnn"}
ALIASES = {"pytorch": "pt", "torch": "pt", "pth": "pt", "numpy": "npz"}
# Names of the arrays of the numpy models, in checkpoint order.
ARRAY_NAMES = {"logistic": ("weight", "bias"), "linear": ("weight", "bias"), "kmeans": ("centroids",)}
ONNX_OPSET = 17


@dataclass(frozen=True)
class ModelFile:
    content: bytes
    format: str
    content_type: str = "application/octet-stream"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def supported_formats(model_type: str) -> list[str]:
    return [*ALWAYS, "onnx"] if model_type in ONNX_MODELS else list(ALWAYS)


def resolve_format(requested: str | None, model_type: str) -> str:
    """The canonical name of ``requested`` (default ``npz``), or 422 ``INVALID_MODEL_FORMAT`` naming
    the formats this model can be had in."""
    supported = supported_formats(model_type)
    wanted = (requested or "npz").strip().lower()
    wanted = ALIASES.get(wanted, wanted)
    if wanted in supported:
        return wanted
    if wanted == "onnx":
        reason = (f"A {model_type} model has no ONNX form" if model_type != "flower_app" else
                  "An uploaded Flower app's architecture is unknown to Pollen, so it cannot be converted to ONNX")
    else:
        reason = f"Format {requested[:40]!r} is not supported"
    raise ApplicationError("INVALID_MODEL_FORMAT", f"{reason}; this model downloads as {', '.join(supported)}",
                           details={"field": "format", "requested": (requested or "")[:40], "supported": supported})


def read_npz(data: bytes) -> list[np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return [npz[f"arr_{i}"] for i in range(len(npz.files))]


def export(npz_bytes: bytes, model_type: str, fmt: str, *, name: str = "") -> ModelFile:
    """``npz_bytes`` (a checkpoint) converted to ``fmt``; call ``resolve_format`` first. Weights
    that do not fit ``model_type`` answer 422 ``FL006``."""
    if fmt == "npz":
        return ModelFile(npz_bytes, "npz")
    arrays = read_npz(npz_bytes)
    if fmt == "pt":
        return ModelFile(_torch_file(arrays, model_type), "pt")
    if fmt == "onnx":
        return ModelFile(_onnx_file(arrays, model_type, name), "onnx")
    raise ValueError(f"Unknown format {fmt!r}")


def _incompatible(model_type: str, error: Exception) -> ApplicationError:
    return ApplicationError("FL006", f"The stored weights do not fit a {model_type} model: {error}",
                            details={"model_type": model_type})


def torch_model(arrays: list[np.ndarray], model_type: str):
    """The PyTorch MLP or CNN of ``training.engine.torch_models`` sized from the weights and holding them."""
    from training.engine import torch_models

    try:
        if model_type == "mlp":
            hidden, n_features = arrays[0].shape
            model = torch_models.MLP(int(n_features), int(arrays[2].shape[0]), hidden=int(hidden))
        else:
            channels = int(arrays[0].shape[0])
            # Two 2x2-pooled feature maps of 2 * channels feed the first linear layer; images are square.
            side = 2 * round(math.sqrt(arrays[4].shape[1] / (2 * channels)))
            model = torch_models.SmallCNN((side, side), int(arrays[-1].shape[0]), channels=channels)
        model.set_weights(arrays)
    except (ValueError, IndexError, ZeroDivisionError) as exc:
        raise _incompatible(model_type, exc) from exc
    return model


def named_arrays(arrays: list[np.ndarray], model_type: str) -> dict[str, np.ndarray]:
    names = ARRAY_NAMES.get(model_type)
    if names is None or len(names) != len(arrays):
        names = tuple(f"arr_{i}" for i in range(len(arrays)))
    return dict(zip(names, arrays, strict=True))


def _torch_file(arrays: list[np.ndarray], model_type: str) -> bytes:
    import torch

    if model_type in TORCH_MODELS:
        state = torch_model(arrays, model_type).module.state_dict()
    else:
        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in named_arrays(arrays, model_type).items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _onnx_file(arrays: list[np.ndarray], model_type: str, name: str) -> bytes:
    if model_type in TORCH_MODELS:
        return _torch_onnx(arrays, model_type)
    if model_type not in ("logistic", "linear") or len(arrays) != 2 or arrays[0].ndim != 2:
        raise _incompatible(model_type, ValueError("expected a weight matrix and a bias"))
    return _linear_onnx(arrays, model_type, name)


def _linear_onnx(arrays: list[np.ndarray], model_type: str, name: str) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight, bias = (np.asarray(a, dtype=np.float32) for a in arrays)
    n_features, n_outputs = weight.shape
    nodes = [helper.make_node("MatMul", ["input", "weight"], ["scores"]),
             helper.make_node("Add", ["scores", "bias"], ["logits" if model_type == "logistic" else "prediction"])]
    if model_type == "logistic":
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    output = "probabilities" if model_type == "logistic" else "prediction"
    graph = helper.make_graph(
        nodes, name or model_type,
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", n_features])],
        outputs=[helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", n_outputs])],
        initializer=[numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, producer_name="pollen", opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                              doc_string=f"{model_type} regression over standardised features")
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _torch_onnx(arrays: list[np.ndarray], model_type: str) -> bytes:
    import torch
    from torch import nn

    model = torch_model(arrays, model_type)
    module = nn.Sequential(model.module, nn.Softmax(dim=1)).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is the one that needs nothing but ``onnx``; it warns that it is legacy.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, *model.input_shape),), buffer, dynamo=False,
                          input_names=["input"], output_names=["probabilities"], opset_version=ONNX_OPSET,
                          dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}})
    return buffer.getvalue()
