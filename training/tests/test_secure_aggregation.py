"""Flower's SecAgg+ on the embedded federation: the model trains, and the server never holds a
single node's update, only masked vectors whose sum it can unmask."""

import numpy as np
import pytest
from flwr.common import bytes_to_ndarray

from accounts.tests.factories import UserFactory
from core.exceptions import ApplicationError
from projects.tests.factories import ProjectFactory
from training import services
from training.choices import ExecutionStatus
from training.engine import secure
from training.engine.grid import InProcessGrid
from training.models import Round, RoundClient
from training.runner import npz_to_arrays

pytestmark = pytest.mark.django_db


def _start(capture, privacy, **config):
    owner = UserFactory()
    project = ProjectFactory(owner=owner, configuration={})
    with capture(execute=True):
        execution = services.execution_start(project=project, user=owner, config=config, privacy=privacy)
    execution.refresh_from_db()
    return execution


def test_secagg_plus_trains_digits(django_capture_on_commit_callbacks):
    execution = _start(django_capture_on_commit_callbacks, {"secure_aggregation": True}, rounds=3, clients=4,
                       model_type="logistic", dataset="digits", local_epochs=2, seed=5)
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert execution.privacy["secure_aggregation"] is True
    accuracy = [r.server_metrics["accuracy"] for r in Round.objects.filter(execution=execution).order_by("number")]
    assert len(accuracy) == 3 and accuracy[-1] >= 0.85, accuracy
    # each node's result is on the record once per round, key-exchange stages are not
    assert RoundClient.objects.filter(round__execution=execution, phase="train").count() == 12
    assert all(n > 0 for n in RoundClient.objects.filter(round__execution=execution, phase="train")
               .values_list("num_examples", flat=True))


def test_the_server_never_sees_an_individual_update(django_capture_on_commit_callbacks, monkeypatch):
    updates, replies = [], []
    real_fit, real_deliver = secure._Node.fit, InProcessGrid._deliver

    def spy_fit(self, parameters, config):
        weights, n, metrics = real_fit(self, parameters, config)
        updates.append(([w.copy() for w in weights], n))
        return weights, n, metrics

    def spy_deliver(self, message):
        reply, result = real_deliver(self, message)
        if message.metadata.message_type.startswith("train"):
            replies.append(reply)
        return reply, result

    monkeypatch.setattr(secure._Node, "fit", spy_fit)
    monkeypatch.setattr(InProcessGrid, "_deliver", spy_deliver)
    execution = _start(django_capture_on_commit_callbacks, {"secure_aggregation": True}, rounds=1, clients=4,
                       model_type="logistic", dataset="digits", local_epochs=1, seed=11,
                       fraction_evaluate=0.0)
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert len(updates) == 4

    # Everything any node sent the server, as arrays: array records and byte-encoded arrays.
    seen = []
    for reply in replies:
        for record in reply.content.array_records.values():
            seen.extend(record.to_numpy_ndarrays())
        for record in reply.content.config_records.values():
            for value in record.values():
                if isinstance(value, list) and value and isinstance(value[0], bytes):
                    for item in value:
                        try:
                            seen.append(bytes_to_ndarray(item))
                        except Exception:  # a key or a share, not an array
                            pass
    assert seen, "the spy saw no traffic"
    for weights, _ in updates:
        for layer in weights:
            for array in seen:
                if array.shape == layer.shape:
                    assert not np.allclose(array.astype(float), layer, atol=1e-3)

    # ... and yet the aggregate is the weighted mean of those updates (up to quantisation).
    total = sum(n for _, n in updates)
    expected = [sum(w[i] * n for w, n in updates) / total for i in range(len(updates[0][0]))]
    with Round.objects.get(execution=execution, number=1).checkpoint.open("rb") as fh:
        aggregated = npz_to_arrays(fh.read()).to_numpy_ndarrays()
    for got, want in zip(aggregated, expected):
        assert np.allclose(got, want, atol=1e-3)


@pytest.mark.parametrize("privacy, config, field", [
    ({"secure_aggregation": True}, {"clients": 2}, "clients"),
    ({"secure_aggregation": True}, {"algorithm": "krum", "clients": 5}, "algorithm"),
    ({"secure_aggregation": True, "differential_privacy": True, "noise_multiplier": 1.0, "clipping_norm": 1.0},
     {"clients": 4}, "privacy_config.secure_aggregation"),
    ({"secure_aggregation": True, "num_shares": 2}, {"clients": 4}, "privacy_config.num_shares"),
    ({"secure_aggregation": True, "num_shares": 3, "reconstruction_threshold": 3}, {"clients": 4},
     "privacy_config.reconstruction_threshold"),
    ({"secure_aggregation": "yes please"}, {"clients": 4}, "privacy_config.secure_aggregation"),
])
def test_secagg_settings_that_cannot_work_are_refused(django_capture_on_commit_callbacks, privacy, config, field):
    with pytest.raises(ApplicationError) as exc:
        _start(django_capture_on_commit_callbacks, privacy, model_type="logistic", dataset="digits", **config)
    assert exc.value.http_status == 422 and exc.value.details["field"] == field
