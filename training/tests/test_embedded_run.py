"""A real federated run on the embedded federation, through the service and the Celery task."""

import numpy as np
import pytest

from accounts.tests.factories import UserFactory
from core.models import Event
from projects.tests.factories import ProjectFactory
from training import services
from training.choices import ExecutionStatus
from training.models import Execution, ExecutionLog, Round, RoundClient
from training.runner import npz_to_arrays

pytestmark = pytest.mark.django_db


def _start(django_capture_on_commit_callbacks, **config):
    owner = UserFactory()
    project = ProjectFactory(owner=owner, configuration={})
    with django_capture_on_commit_callbacks(execute=True):
        execution = services.execution_start(project=project, user=owner, config=config)
    execution.refresh_from_db()
    return execution


def test_digits_across_five_nodes_gets_better_round_after_round(django_capture_on_commit_callbacks):
    execution = _start(django_capture_on_commit_callbacks, rounds=5, clients=5, model_type="logistic",
                       dataset="digits", local_epochs=2, learning_rate=0.1, batch_size=32, seed=7)
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert execution.current_round == 5
    rounds = list(Round.objects.filter(execution=execution).order_by("number"))
    assert [r.number for r in rounds] == [1, 2, 3, 4, 5]
    accuracy = [r.server_metrics["accuracy"] for r in rounds]
    assert accuracy[-1] > accuracy[0]
    assert accuracy[-1] >= 0.90, accuracy
    assert all(r.participants == 5 and r.checkpoint and len(r.checkpoint_checksum) == 64 for r in rounds)
    assert RoundClient.objects.filter(round__execution=execution, phase="train").count() == 25
    # the checkpoint is the model the server evaluated
    with rounds[-1].checkpoint.open("rb") as fh:
        weights = npz_to_arrays(fh.read()).to_numpy_ndarrays()
    assert weights[0].shape == (64, 10) and np.isfinite(weights[0]).all()
    names = set(Event.objects.values_list("event", flat=True))
    assert {"execution.started", "round.started", "client.update_received", "model.aggregated",
            "round.completed", "metrics.updated", "execution.completed", "training_update"} <= names
    assert ExecutionLog.objects.filter(execution=execution).exists()


def test_an_invalid_parameter_names_its_field(django_capture_on_commit_callbacks):
    from core.exceptions import ApplicationError

    with pytest.raises(ApplicationError) as exc:
        _start(django_capture_on_commit_callbacks, rounds=0)
    assert exc.value.http_status == 422 and exc.value.details["field"] == "rounds"
    assert not Execution.objects.exists()


def test_seed_000_cnn_request_trains_on_the_bundled_image_set(django_capture_on_commit_callbacks):
    """seed 000's example: a cnn with rounds/clients/learning_rate/batch_size on a project whose
    data set (fashion_mnist) cannot be downloaded here; digits stands in and says so."""
    owner = UserFactory()
    project = ProjectFactory(owner=owner, configuration={"model_type": "cnn", "dataset": "fashion_mnist"})
    with django_capture_on_commit_callbacks(execute=True):
        execution = services.execution_start(project=project, user=owner, config={
            "rounds": 10, "clients": 5, "model_type": "cnn", "learning_rate": 0.01, "batch_size": 32})
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert execution.dataset == "digits" and execution.config["substitutions"]
    accuracy = [r.server_metrics["accuracy"] for r in execution.rounds.order_by("number")]
    assert accuracy[-1] > accuracy[0] and accuracy[-1] >= 0.9, accuracy


@pytest.mark.parametrize("algorithm,params", [
    ("fedprox", {"proximal_mu": 0.1}), ("fedadam", {"eta": 0.05}), ("fedyogi", {"eta": 0.05}),
    ("fedadagrad", {"eta": 0.1}), ("fedavgm", {"server_momentum": 0.5}), ("fedmedian", {}),
    ("fedtrimmedavg", {"beta": 0.2}), ("krum", {"num_malicious_nodes": 1}),
    ("multikrum", {"num_malicious_nodes": 1, "num_nodes_to_select": 3}), ("bulyan", {"num_malicious_nodes": 1}),
    ("qfedavg", {"client_learning_rate": 0.1}),
])
def test_every_strategy_family_trains(django_capture_on_commit_callbacks, algorithm, params):
    owner = UserFactory()
    project = ProjectFactory(owner=owner, configuration={})
    with django_capture_on_commit_callbacks(execute=True):
        execution = services.execution_start(project=project, user=owner, algorithm=algorithm, strategy_params=params,
                                             config={"rounds": 3, "clients": 7, "model_type": "logistic",
                                                     "dataset": "iris", "local_epochs": 3, "seed": 1})
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert execution.current_round == 3
    assert execution.rounds.filter(status="completed").count() == 3


def test_a_run_whose_worker_died_is_reaped_and_resumes_from_its_last_checkpoint(django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from training.tasks import executions_reap

    execution = _start(django_capture_on_commit_callbacks, rounds=4, clients=3, model_type="logistic",
                       dataset="iris", seed=3)
    assert execution.status == ExecutionStatus.COMPLETED
    # Make it look like a worker died after round 2: running, silent, rounds 3-4 never happened.
    Round.objects.filter(execution=execution, number__gt=2).delete()
    Execution.objects.filter(pk=execution.pk).update(status=ExecutionStatus.RUNNING, current_round=2,
                                                     finished_at=None,
                                                     heartbeat_at=timezone.now() - timedelta(minutes=10))
    assert executions_reap() == 1
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.FAILED and execution.error_code == "FL003"
    assert "heartbeat" in execution.error_message
    with django_capture_on_commit_callbacks(execute=True):
        services.execution_resume(execution=execution)
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert list(execution.rounds.order_by("number").values_list("number", flat=True)) == [1, 2, 3, 4]
    assert execution.attempt == 2


def test_resuming_gives_the_same_model_as_an_uninterrupted_run(django_capture_on_commit_callbacks):
    config = dict(rounds=4, clients=3, model_type="logistic", dataset="wine", seed=11, local_epochs=2)
    whole = _start(django_capture_on_commit_callbacks, **config)
    interrupted = _start(django_capture_on_commit_callbacks, **config)
    Round.objects.filter(execution=interrupted, number__gt=2).delete()
    Execution.objects.filter(pk=interrupted.pk).update(status=ExecutionStatus.STOPPED, current_round=2)
    interrupted.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        services.execution_resume(execution=interrupted, from_round=2)
    interrupted.refresh_from_db()
    assert interrupted.status == ExecutionStatus.COMPLETED

    def final_weights(execution):
        with execution.rounds.get(number=4).checkpoint.open("rb") as fh:
            return npz_to_arrays(fh.read()).to_numpy_ndarrays()

    for a, b in zip(final_weights(whole), final_weights(interrupted)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode,clipping", [("server", "fixed"), ("client", "fixed"), ("server", "adaptive"),
                                           ("client", "adaptive")])
def test_differential_privacy_trains_and_reports_the_privacy_spent(django_capture_on_commit_callbacks, mode,
                                                                   clipping):
    owner = UserFactory()
    project = ProjectFactory(owner=owner, configuration={})
    with django_capture_on_commit_callbacks(execute=True):
        execution = services.execution_start(
            project=project, user=owner,
            config={"rounds": 4, "clients": 5, "model_type": "logistic", "dataset": "digits", "seed": 2},
            privacy={"differential_privacy": True, "mode": mode, "clipping": clipping, "noise_multiplier": 0.1,
                     "clipping_norm": 2.0, "delta": 1e-5},
        )
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert execution.privacy["differential_privacy"]["enabled"] is True
    rounds = list(execution.rounds.order_by("number"))
    assert rounds[-1].server_metrics["accuracy"] > 0.5
    if clipping == "fixed":
        epsilons = [r.server_metrics["epsilon"] for r in rounds]
        assert all(b > a for a, b in zip(epsilons, epsilons[1:])), epsilons  # spent grows each round
        assert all(r.server_metrics["delta"] == pytest.approx(1e-5) for r in rounds)


def test_an_epsilon_budget_is_refused_from_the_start_when_invalid(django_capture_on_commit_callbacks):
    from core.exceptions import ApplicationError

    owner = UserFactory()
    project = ProjectFactory(owner=owner, configuration={})
    with pytest.raises(ApplicationError) as exc:
        services.execution_start(project=project, user=owner, config={"dataset": "iris"},
                                 privacy={"differential_privacy": True, "noise_multiplier": -1})
    assert exc.value.details["field"] == "privacy_config.noise_multiplier"
    with pytest.raises(ApplicationError) as exc:
        services.execution_start(project=project, user=owner, config={"dataset": "iris"},
                                 privacy={"secure_aggregation": True, "differential_privacy": True,
                                          "noise_multiplier": 1.0, "clipping_norm": 1.0})
    assert exc.value.details["field"] == "privacy_config.secure_aggregation"  # one or the other


def test_a_reached_target_accuracy_ends_the_run_early(django_capture_on_commit_callbacks):
    execution = _start(django_capture_on_commit_callbacks, rounds=10, clients=3, model_type="logistic",
                       dataset="iris", seed=1, target_accuracy=0.6)
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert execution.current_round < 10
    assert execution.metrics["accuracy"] >= 0.6
    assert ExecutionLog.objects.filter(execution=execution, message__contains="Target accuracy").exists()


def test_a_target_not_reached_fails_with_fl008(django_capture_on_commit_callbacks):
    execution = _start(django_capture_on_commit_callbacks, rounds=1, clients=3, model_type="logistic",
                       dataset="digits", seed=1, learning_rate=0.001, target_accuracy=0.99)
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_code == "FL008" and "below the target 0.99" in execution.error_message
    assert execution.current_round == 1  # the rounds it did are kept


def test_a_round_in_which_every_node_fails_ends_the_run_with_fl004(django_capture_on_commit_callbacks, monkeypatch):
    from training.engine import builtin_app

    def broken_fit(*args, **kwargs):
        raise MemoryError("the node ran out of memory")

    monkeypatch.setattr(builtin_app, "train", lambda msg, context: broken_fit())
    monkeypatch.setattr(builtin_app, "client_app", builtin_app._client_app())
    execution = _start(django_capture_on_commit_callbacks, rounds=3, clients=3, model_type="logistic",
                       dataset="iris")
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_code == "FL004" and "No node returned an update in round 1" in execution.error_message
    assert "out of memory" in execution.error_message
    assert ExecutionLog.objects.filter(execution=execution, level="WARNING", message__contains="failed in train").count() == 3
