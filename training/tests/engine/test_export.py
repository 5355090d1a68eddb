"""Model files: every format loads in the tool it is for and computes what the engine's model does."""

import io

import numpy as np
import onnx
import pytest
import torch
from onnx.reference import ReferenceEvaluator

from core.exceptions import ApplicationError
from training import export
from training.engine.datasets import load_dataset
from training.engine.models import build_model


def _npz(arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{f"arr_{i}": a for i, a in enumerate(arrays)})
    return buffer.getvalue()


def _trained(model_type: str, dataset_name: str, **params):
    dataset = load_dataset(dataset_name, seed=0)
    model = build_model(model_type, dataset, seed=0, **params)
    model.fit(dataset.x_train, dataset.y_train, epochs=3, learning_rate=0.05 if model_type in ("mlp", "cnn") else 0.1,
              batch_size=32, seed=0)
    return model, dataset


def _run_onnx(content: bytes, x: np.ndarray) -> np.ndarray:
    model = onnx.load_from_string(content)
    onnx.checker.check_model(model, full_check=True)
    return ReferenceEvaluator(model).run(None, {"input": x})[0]


def _state(content: bytes) -> dict:
    return torch.load(io.BytesIO(content), weights_only=True)


@pytest.mark.parametrize("model_type,dataset_name", [("logistic", "iris"), ("logistic", "digits"), ("mlp", "wine"),
                                                     ("cnn", "digits")])
def test_onnx_classifiers_predict_what_the_engine_predicts(model_type, dataset_name):
    model, dataset = _trained(model_type, dataset_name)
    exported = export.export(_npz(model.get_weights()), model_type, "onnx", name="test")
    x = dataset.x_test if model_type != "cnn" else dataset.x_test.reshape(-1, 1, 8, 8)
    probabilities = _run_onnx(exported.content, x)
    expected = model.predict_proba(dataset.x_test) if model_type == "logistic" else model._probabilities(dataset.x_test)
    assert probabilities.shape == (len(dataset.x_test), dataset.n_classes)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-4, atol=1e-5)
    assert (probabilities.argmax(axis=1) == model.predict(dataset.x_test)).all()
    # a trained model, not a constant one
    assert (model.predict(dataset.x_test) == dataset.y_test).mean() > 0.6


def test_onnx_linear_regression_predicts_what_the_engine_predicts():
    model, dataset = _trained("linear", "diabetes")
    prediction = _run_onnx(export.export(_npz(model.get_weights()), "linear", "onnx").content, dataset.x_test)
    assert prediction.shape == (len(dataset.x_test), 1)
    np.testing.assert_allclose(prediction[:, 0], model.predict(dataset.x_test), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("model_type,dataset_name,names", [("logistic", "iris", ["weight", "bias"]),
                                                           ("linear", "diabetes", ["weight", "bias"]),
                                                           ("kmeans", "iris", ["centroids"])])
def test_pt_of_numpy_models_is_named_tensors(model_type, dataset_name, names):
    model, _ = _trained(model_type, dataset_name)
    state = _state(export.export(_npz(model.get_weights()), model_type, "pt").content)
    assert list(state) == names
    for tensor, array in zip(state.values(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(tensor.numpy(), array)


@pytest.mark.parametrize("model_type,dataset_name", [("mlp", "iris"), ("cnn", "digits")])
def test_pt_of_torch_models_is_a_state_dict_the_module_loads(model_type, dataset_name):
    model, dataset = _trained(model_type, dataset_name)
    state = _state(export.export(_npz(model.get_weights()), model_type, "pt").content)
    fresh = build_model(model_type, dataset, seed=99)
    fresh.module.load_state_dict(state)
    assert (fresh.predict(dataset.x_test) == model.predict(dataset.x_test)).all()
    np.testing.assert_allclose(fresh._probabilities(dataset.x_test), model._probabilities(dataset.x_test), atol=1e-6)


def test_npz_is_the_checkpoint_as_stored_and_uploaded_apps_get_numbered_tensors():
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3, dtype=np.float32)]
    payload = _npz(arrays)
    assert export.export(payload, "flower_app", "npz").content == payload
    state = _state(export.export(payload, "flower_app", "pt").content)
    assert list(state) == ["arr_0", "arr_1"]
    np.testing.assert_array_equal(state["arr_0"].numpy(), arrays[0])


@pytest.mark.parametrize("requested,expected", [(None, "npz"), ("", "npz"), ("NPZ", "npz"), ("pytorch", "pt"),
                                                ("pt", "pt"), ("onnx", "onnx"), (" Onnx ", "onnx")])
def test_format_names(requested, expected):
    assert export.resolve_format(requested, "logistic") == expected


@pytest.mark.parametrize("requested", ["h5", "tensorflow", "savedmodel", "keras", "../../etc/passwd", "x" * 300])
def test_other_formats_are_invalid_model_format_naming_the_supported_ones(requested):
    with pytest.raises(ApplicationError) as exc:
        export.resolve_format(requested, "mlp")
    assert exc.value.code == "INVALID_MODEL_FORMAT" and exc.value.http_status == 422
    assert exc.value.details["supported"] == ["npz", "pt", "onnx"]
    assert "npz, pt, onnx" in exc.value.message


@pytest.mark.parametrize("model_type", ["kmeans", "flower_app"])
def test_models_without_an_onnx_form(model_type):
    with pytest.raises(ApplicationError) as exc:
        export.resolve_format("onnx", model_type)
    assert exc.value.code == "INVALID_MODEL_FORMAT"
    assert exc.value.details["supported"] == ["npz", "pt"]


def test_weights_that_do_not_fit_the_model_type_are_fl006():
    payload = _npz([np.zeros((4, 3), dtype=np.float32)])
    for model_type in ("logistic", "mlp", "cnn"):
        with pytest.raises(ApplicationError) as exc:
            export.export(payload, model_type, "onnx")
        assert exc.value.code == "FL006", model_type
