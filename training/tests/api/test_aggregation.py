"""/fl/aggregation/{executionId}/status, /configure and /trigger (seed 001 Model Aggregation), and
what those settings do to real training: weighting, validation and manual steps."""

import numpy as np
import pytest

from accounts.tests.factories import UserFactory
from accounts.tests.fixtures import assert_error, assert_success
from projects.tests.factories import ProjectFactory, ProjectMemberFactory, ProjectUploadFactory
from training.choices import ExecutionStatus
from training.engine import builtin_app
from training.engine.grid import InProcessGrid, NullObserver, server_context, server_identity
from training.models import Execution, Round, RoundClient
from training.runner import npz_to_arrays, nodes_for, run_config_for, run_execution
from training.tests.api.factories import ExecutionFactory
from training.tests.api.helpers import API, EXECUTIONS, queue_execution, run_execution as run_through_api

pytestmark = pytest.mark.django_db
AGG = f"{API}/fl/aggregation"
NON_IID = {"clients": 3, "partition": "dirichlet", "alpha": 0.3, "seed": 1}


def _url(execution, action):
    return f"{AGG}/{execution.pk}/{action}"


def _configured_run(api, project, body: dict, **config) -> Execution:
    """Queue an execution, configure its aggregation through the API, then let a worker run it."""
    execution = queue_execution(api, project, **config)
    assert_success(api.post(_url(execution, "configure"), body))
    run_execution(execution.pk)
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    return execution


def _suspended(api, project, *, rounds=4, at=0, **config) -> Execution:
    """An execution as a suspend after round ``at`` leaves it (``at`` 0: before its first round)."""
    execution = queue_execution(api, project, rounds=rounds, **config)
    Execution.objects.filter(pk=execution.pk).update(status=ExecutionStatus.SUSPENDED, current_round=at)
    execution.refresh_from_db()
    return execution


def _weights(round_obj: Round) -> list[np.ndarray]:
    with round_obj.checkpoint.open("rb") as fh:
        return npz_to_arrays(fh.read()).to_numpy_ndarrays()


# ---- status ---------------------------------------------------------------------------------------

def test_status_of_a_finished_run(owner_api, project, django_capture_on_commit_callbacks):
    execution = run_through_api(owner_api, project, django_capture_on_commit_callbacks)
    data = assert_success(owner_api.get(_url(execution, "status")))["data"]
    last_round = Round.objects.get(execution=execution, number=2)
    assert data["status"] == "completed" and data["strategy"]["name"] == "fedavg"
    assert data["strategy"]["params"] == execution.strategy_params and data["weights"] == "proportional"
    assert data["validation"] == {"enabled": False, "threshold": None, "metrics": []}
    assert data["current_round"] == {"number": 2, "status": "completed", "updates_received": 3,
                                     "updates_failed": 0, "updates_expected": 3}
    last = data["last_aggregated_round"]
    assert last["number"] == 2 and last["checksum"] == last_round.checkpoint_checksum
    assert last["metrics"]["server"]["accuracy"] == last_round.server_metrics["accuracy"]
    assert last["checkpoint_url"].endswith(f"/rounds/2/checkpoint") and last["validation_passed"] is None
    assert data["next_aggregation"]["expected"] is False and "Completed" in data["next_aggregation"]["reason"]
    assert data["manual_step"] is None


def test_status_of_a_queued_and_of_a_running_execution(owner_api, project):
    pending = queue_execution(owner_api, project)
    data = assert_success(owner_api.get(_url(pending, "status")))["data"]
    assert data["current_round"] == {"number": 1, "status": "pending", "updates_received": 0, "updates_failed": 0,
                                     "updates_expected": 3}
    assert data["next_aggregation"] == {"expected": True, "round": 1,
                                        "reason": "Queued: aggregates once a worker runs it"}
    running = ExecutionFactory(project=project, status=ExecutionStatus.RUNNING, current_round=1)
    round_obj = Round.objects.create(execution=running, number=2, status="collecting")
    RoundClient.objects.create(round=round_obj, node_id=1, phase="train")
    RoundClient.objects.create(round=round_obj, node_id=2, phase="train", error="boom")
    data = assert_success(owner_api.get(_url(running, "status")))["data"]
    assert data["current_round"]["status"] == "collecting"
    assert (data["current_round"]["updates_received"], data["current_round"]["updates_failed"]) == (1, 1)
    assert data["next_aggregation"]["expected"] is True and data["next_aggregation"]["round"] == 2
    assert data["last_aggregated_round"] is None


# ---- configure ------------------------------------------------------------------------------------

def test_configure_a_queued_execution(owner_api, project):
    execution = queue_execution(owner_api, project)
    body = {"strategy": "fedprox", "strategyParams": {"proximal_mu": 0.2}, "weights": "uniform",
            "validation": {"enabled": True, "threshold": 0.5, "metrics": ["accuracy", "loss"]}}
    data = assert_success(owner_api.post(_url(execution, "configure"), body))["data"]
    assert data["strategy"]["name"] == "fedprox" and data["strategy"]["params"]["proximal_mu"] == 0.2
    assert data["weights"] == "uniform"
    assert data["validation"] == {"enabled": True, "threshold": 0.5, "metrics": ["accuracy", "loss"]}
    execution.refresh_from_db()
    assert execution.algorithm == "fedprox" and execution.strategy_params["proximal_mu"] == 0.2
    assert execution.config["aggregation"]["weights"] == "uniform" and execution.config["algorithm"] == "fedprox"
    config = run_config_for(execution)
    assert config["pollen.weights"] == "uniform" and '"threshold": 0.5' in config["pollen.validation"]
    # What is not given stays; a new strategy keeps only the parameters it takes.
    data = assert_success(owner_api.post(_url(execution, "configure"), {"strategy": "fedopt"}))["data"]
    assert data["strategy"]["name"] == "fedadam" and "proximal_mu" not in data["strategy"]["params"]
    assert data["weights"] == "uniform" and data["validation"]["enabled"] is True


def test_configure_a_suspended_execution_and_a_custom_strategy(owner_api, project):
    execution = _suspended(owner_api, project)
    body = {"strategy": "custom", "customStrategy": "krum", "strategy_params": {"num_malicious_nodes": 0}}
    data = assert_success(owner_api.post(_url(execution, "configure"), body))["data"]
    assert data["strategy"]["name"] == "krum"
    data = assert_success(owner_api.post(_url(execution, "configure"), {"validation": {"enabled": False}}))["data"]
    assert data["validation"] == {"enabled": False, "threshold": None, "metrics": ["accuracy"]}


@pytest.mark.parametrize("body,field", [
    ({"strategy": "custom"}, "customStrategy"),
    ({"strategy": "custom", "customStrategy": "mine"}, "customStrategy"),
    ({"strategy": "nope"}, "strategy"),
    ({"strategy": 12}, "strategy"),
    ({"strategy": "fedprox", "strategyParams": {"proximal_mu": "lots"}}, "strategy_params.proximal_mu"),
    ({"strategy": "fedavg", "strategyParams": {"eta": 0.1}}, "strategy_params.eta"),
    ({"strategy": "qfedavg"}, "strategy_params.client_learning_rate"),
    ({"strategyParams": "x"}, "strategyParams"),
    ({"weights": "heavy"}, "weights"),
    ({"weights": ["uniform"]}, "weights"),
    ({"validation": {"enabled": True}}, "validation.threshold"),
    ({"validation": {"enabled": True, "threshold": "high"}}, "validation.threshold"),
    ({"validation": {"enabled": True, "threshold": True}}, "validation.threshold"),
    ({"validation": {"enabled": True, "threshold": -0.1}}, "validation.threshold"),
    ({"validation": {"enabled": True, "threshold": 0.5, "metrics": ["f1"]}}, "validation.metrics.0"),
    ({"validation": {"enabled": True, "threshold": 0.5, "metrics": ["loss"] * 500}}, "validation.metrics"),
    ({"validation": {"enabled": "maybe"}}, "validation.enabled"),
    ({"validation": "on"}, "validation"),
    ({}, "body"),
])
def test_configure_refuses_bad_input_naming_the_field(owner_api, project, body, field):
    execution = queue_execution(owner_api, project)
    before = (execution.algorithm, execution.strategy_params, execution.config)
    error = assert_error(owner_api.post(_url(execution, "configure"), body), 422, "VALIDATION_ERROR")["error"]
    assert error["details"]["field"] == field, error
    execution.refresh_from_db()
    assert (execution.algorithm, execution.strategy_params, execution.config) == before


def test_configure_refuses_a_body_that_is_not_an_object(owner_api, project):
    execution = queue_execution(owner_api, project)
    assert_error(owner_api.post(_url(execution, "configure"), ["uniform"]), 422, "VALIDATION_ERROR")


def test_a_regression_model_validates_on_loss_only(owner_api, project):
    execution = queue_execution(owner_api, project, model_type="linear", dataset="diabetes")
    body = {"validation": {"enabled": True, "threshold": 0.5, "metrics": ["accuracy"]}}
    error = assert_error(owner_api.post(_url(execution, "configure"), body), 422, "VALIDATION_ERROR")["error"]
    assert error["details"]["field"] == "validation.metrics"
    data = assert_success(owner_api.post(_url(execution, "configure"),
                                         {"validation": {"enabled": True, "threshold": 5000}}))["data"]
    assert data["validation"]["metrics"] == ["loss"]


@pytest.mark.parametrize("status", [ExecutionStatus.RUNNING, ExecutionStatus.COMPLETED, ExecutionStatus.FAILED,
                                    ExecutionStatus.STOPPED])
def test_configure_while_running_or_finished_is_a_conflict(owner_api, project, status):
    execution = ExecutionFactory(project=project, status=status)
    error = assert_error(owner_api.post(_url(execution, "configure"), {"weights": "uniform"}), 409,
                         "RESOURCE_CONFLICT")["error"]
    assert error["details"]["status"] == status
    execution.refresh_from_db()
    assert "aggregation" not in execution.config


# ---- trigger --------------------------------------------------------------------------------------

def test_manual_steps_run_one_round_each_then_resume_runs_the_rest(owner_api, project,
                                                                   django_capture_on_commit_callbacks):
    execution = _suspended(owner_api, project, rounds=4)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_api.post(_url(execution, "trigger"), {"round": 1, "clients": [3, 1], "waitForAll": True})
    queued = assert_success(response, 202)["data"]
    assert queued["status"] == "pending" and queued["manual_step"]["clients"] == [1, 3]
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.SUSPENDED and execution.current_round == 1, execution.error_message
    data = assert_success(owner_api.get(_url(execution, "status")))["data"]
    assert data["status"] == "suspended" and data["last_aggregated_round"]["number"] == 1
    assert data["manual_step"] is None and data["next_aggregation"]["expected"] is False
    first = Round.objects.get(execution=execution, number=1)
    assert first.participants == 2 and first.checkpoint
    assert set(first.clients.filter(phase="train").values_list("node_id", flat=True)) == {1, 3}
    assert data["current_round"]["updates_expected"] == 2 and data["current_round"]["updates_received"] == 2
    # The step was for that run only: the next one (a further attempt) does not see it.
    execution.attempt += 1
    assert run_config_for(execution)["pollen.manual-step"] == "{}"

    with django_capture_on_commit_callbacks(execute=True):
        assert_success(owner_api.post(_url(execution, "trigger"), {"round": 2}), 202)
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.SUSPENDED and execution.current_round == 2
    assert Round.objects.get(execution=execution, number=2).participants == 3

    with django_capture_on_commit_callbacks(execute=True):
        assert_success(owner_api.post(f"{EXECUTIONS}/{execution.pk}/resume"), 202)
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.COMPLETED and execution.current_round == 4
    assert list(execution.rounds.values_list("participants", flat=True)) == [2, 3, 3, 3]


def test_a_manual_step_of_the_last_round_completes_the_execution(owner_api, project,
                                                                  django_capture_on_commit_callbacks):
    execution = _suspended(owner_api, project, rounds=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert_success(owner_api.post(_url(execution, "trigger"), {"round": 1, "clients": [2]}), 202)
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert list(RoundClient.objects.filter(round__execution=execution, phase="train")
                .values_list("node_id", flat=True)) == [2]


def test_a_queued_step_is_shown_until_its_run(owner_api, project):
    execution = _suspended(owner_api, project, rounds=3)
    data = assert_success(owner_api.post(_url(execution, "trigger"), {"round": 1, "clients": [2, 2, 1],
                                                                       "wait_for_all": False}), 202)["data"]
    assert data["status"] == "pending"
    assert {k: data["manual_step"][k] for k in ("round", "clients", "wait_for_all")} == {
        "round": 1, "clients": [1, 2], "wait_for_all": False}
    assert data["next_aggregation"]["expected"] is True and "manual step" in data["next_aggregation"]["reason"]
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.PENDING
    # The worker's run (the next attempt) is the one that sees it.
    assert run_config_for(execution)["pollen.manual-step"] == "{}"
    execution.attempt += 1
    assert '"clients": [1, 2]' in run_config_for(execution)["pollen.manual-step"]


@pytest.mark.parametrize("status,words", [(ExecutionStatus.RUNNING, "suspend it first"),
                                          (ExecutionStatus.PENDING, "suspend it first"),
                                          (ExecutionStatus.COMPLETED, "nothing to aggregate"),
                                          (ExecutionStatus.STOPPED, "nothing to aggregate"),
                                          (ExecutionStatus.FAILED, "nothing to aggregate")])
def test_trigger_outside_a_suspension_is_a_conflict(owner_api, project, status, words):
    execution = ExecutionFactory(project=project, status=status, current_round=1)
    error = assert_error(owner_api.post(_url(execution, "trigger"), {"round": 2}), 409, "RESOURCE_CONFLICT")["error"]
    assert words in error["message"]
    execution.refresh_from_db()
    assert execution.status == status and "manual_step" not in execution.config


@pytest.mark.parametrize("body,field", [
    ({"round": 3}, "round"), ({"round": 1}, "round"), ({"round": 0}, "round"), ({"round": -2}, "round"),
    ({"round": "two"}, "round"), ({"round": 2.5}, "round"), ({"round": True}, "round"), ({}, "round"),
    ({"round": 10 ** 30}, "round"),
    ({"round": 2, "clients": [99]}, "clients"), ({"round": 2, "clients": ["a"]}, "clients.0"),
    ({"round": 2, "clients": [0]}, "clients.0"), ({"round": 2, "clients": "1,2"}, "clients"),
    ({"round": 2, "clients": list(range(1, 10_000))}, "clients"),
    ({"round": 2, "waitForAll": "maybe"}, "waitForAll"),
])
def test_trigger_refuses_bad_input_naming_the_field(owner_api, project, body, field):
    execution = _suspended(owner_api, project, at=1)
    error = assert_error(owner_api.post(_url(execution, "trigger"), body), 422, "VALIDATION_ERROR")["error"]
    assert error["details"]["field"] == field, error
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.SUSPENDED and "manual_step" not in execution.config


def test_trigger_needs_as_many_nodes_as_the_strategy_waits_for(owner_api, project):
    execution = _suspended(owner_api, project, at=0)
    assert_success(owner_api.post(_url(execution, "configure"), {"strategyParams": {"min_train_nodes": 3}}))
    error = assert_error(owner_api.post(_url(execution, "trigger"), {"round": 1, "clients": [1]}), 409,
                         "FL002")["error"]
    assert error["details"]["field"] == "clients"


def test_an_uploaded_app_has_its_own_aggregation(owner_api, project):
    execution = ExecutionFactory(project=project, status=ExecutionStatus.SUSPENDED, model_type="flower_app",
                                 algorithm="app", upload=_upload(project))
    assert_error(owner_api.post(_url(execution, "configure"), {"weights": "uniform"}), 422, "VALIDATION_ERROR")
    assert_error(owner_api.post(_url(execution, "trigger"), {"round": 1}), 422, "VALIDATION_ERROR")
    assert assert_success(owner_api.get(_url(execution, "status")))["data"]["strategy"]["name"] == "app"


def _upload(project):
    return ProjectUploadFactory(project=project)


# ---- who may -------------------------------------------------------------------------------------

def test_unknown_and_someone_elses_executions_are_fl001(owner_api):
    theirs = ExecutionFactory(project=ProjectFactory(owner=UserFactory(), configuration={}),
                              status=ExecutionStatus.SUSPENDED)
    for execution_id in (theirs.pk, "not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        base = f"{AGG}/{execution_id}"
        assert_error(owner_api.get(f"{base}/status"), 404, "FL001")
        assert_error(owner_api.post(f"{base}/configure", {"weights": "uniform"}), 404, "FL001")
        assert_error(owner_api.post(f"{base}/trigger", {"round": 1}), 404, "FL001")
    theirs.refresh_from_db()
    assert theirs.status == ExecutionStatus.SUSPENDED and "aggregation" not in theirs.config


def test_a_viewer_reads_the_status_but_cannot_configure_or_trigger(api_for):
    viewer = UserFactory(roles=["viewer"])
    execution = ExecutionFactory(project=ProjectFactory(owner=viewer, configuration={}),
                                 status=ExecutionStatus.SUSPENDED)
    api = api_for(viewer)
    assert_success(api.get(_url(execution, "status")))
    for action, body in (("configure", {"weights": "uniform"}), ("trigger", {"round": 1})):
        error = assert_error(api.post(_url(execution, action), body), 403, "AUTHORIZATION_FAILED")["error"]
        assert "start:training" in error["message"]


def test_a_read_member_reads_and_an_ml_engineer_controls(api_for, owner):
    execution = ExecutionFactory(project=ProjectFactory(owner=owner, configuration={}),
                                 status=ExecutionStatus.PENDING)
    reader = UserFactory(roles=["user"])
    ProjectMemberFactory(project=execution.project, user=reader, access="read")
    assert_success(api_for(reader).get(_url(execution, "status")))
    assert_error(api_for(reader).post(_url(execution, "configure"), {"weights": "uniform"}), 403,
                 "AUTHORIZATION_FAILED")
    engineer = UserFactory(roles=["ml_engineer"])
    ProjectMemberFactory(project=execution.project, user=engineer, access="write")
    assert_success(api_for(engineer).get(_url(execution, "status")))
    assert_success(api_for(engineer).post(_url(execution, "configure"), {"weights": "performance"}))
    analyst = UserFactory(roles=["analyst"])
    ProjectMemberFactory(project=execution.project, user=analyst, access="read")
    assert_error(api_for(analyst).get(_url(execution, "status")), 403, "AUTHORIZATION_FAILED")


def test_anonymous_callers_are_refused(api, owner):
    execution = ExecutionFactory(project=ProjectFactory(owner=owner, configuration={}))
    assert_error(api.get(_url(execution, "status")), 401, "AUTHENTICATION_FAILED")
    assert_error(api.post(_url(execution, "trigger"), {"round": 1}), 401, "AUTHENTICATION_FAILED")


# ---- what the settings do to training --------------------------------------------------------------

class _Probe(NullObserver):
    def __init__(self):
        self.arrays = {}

    def on_server_evaluation(self, round_number, arrays, metrics):
        self.arrays[round_number] = arrays.to_numpy_ndarrays()


def _one_round(weights: str):
    """One round of the builtin app on a non-IID federation: each node's update and the aggregate."""
    execution = Execution(algorithm="fedavg", strategy_params={}, model_type="logistic", dataset="iris",
                          total_rounds=1, min_clients=3, privacy={}, config={**NON_IID, "aggregation": {
                              "weights": weights}})
    config = run_config_for(execution)
    replies = []

    def client_app(message, context):
        reply = builtin_app.client_app(message, context)
        if message.metadata.message_type.startswith("train"):
            replies.append(reply)
        return reply

    probe = _Probe()
    grid = InProcessGrid(client_app=client_app, nodes=nodes_for(execution), run_config=config, observer=probe)
    grid.initial_arrays = None
    server_identity(grid.run.run_id)
    builtin_app.server_app(grid, server_context(grid.run.run_id, config))
    updates = [r.content["arrays"].to_numpy_ndarrays() for r in replies]
    metrics = [dict(r.content["metrics"]) for r in replies]
    return updates, metrics, probe.arrays[1]


@pytest.mark.parametrize("weights,key", [("uniform", "unit-weight"), ("proportional", "num-examples"),
                                         ("performance", "perf-weight")])
def test_each_weighting_averages_the_updates_by_its_weight(weights, key):
    updates, metrics, aggregate = _one_round(weights)
    factors = np.array([m[key] for m in metrics], dtype=float)
    for i, layer in enumerate(aggregate):
        expected = np.average(np.stack([u[i] for u in updates]), axis=0, weights=factors)
        np.testing.assert_allclose(layer, expected, atol=1e-6)
    if weights == "performance":
        assert all(0 < f <= 1 for f in factors)


def test_uniform_and_proportional_weights_give_different_models_on_non_iid_data(owner_api, project):
    sizes = {m["num-examples"] for m in _one_round("uniform")[1]}
    assert len(sizes) > 1  # the federation is non-IID: nodes hold different amounts of data
    models = {}
    for weights in ("uniform", "proportional", "performance"):
        execution = _configured_run(owner_api, project, {"weights": weights}, rounds=1, **NON_IID)
        models[weights] = _weights(execution.rounds.get(number=1))
        train = RoundClient.objects.filter(round__execution=execution, phase="train")
        assert all(("perf-weight" in c.metrics) == (weights == "performance") for c in train)
    assert not np.allclose(models["uniform"][0], models["proportional"][0])
    assert not np.allclose(models["performance"][0], models["proportional"][0])


def test_an_unreachable_validation_threshold_keeps_the_initial_model(owner_api, project):
    body = {"validation": {"enabled": True, "threshold": 1.01, "metrics": ["accuracy"]}}
    execution = _configured_run(owner_api, project, body, rounds=3)
    rounds = list(execution.rounds.order_by("number"))
    assert [r.server_metrics["validation_passed"] for r in rounds] == [0.0, 0.0, 0.0]
    assert len({r.server_metrics["accuracy"] for r in rounds}) == 1
    initial = builtin_app.new_model(run_config_for(execution)).get_weights()
    for round_obj in rounds:
        for kept, first in zip(_weights(round_obj), initial):
            np.testing.assert_array_equal(kept, first)
    assert assert_success(owner_api.get(_url(execution, "status")))["data"]["last_aggregated_round"][
        "validation_passed"] is False


def test_a_zero_threshold_accepts_every_round(owner_api, project):
    body = {"validation": {"enabled": True, "threshold": 0.0, "metrics": ["accuracy"]}}
    execution = _configured_run(owner_api, project, body, rounds=3)
    rounds = list(execution.rounds.order_by("number"))
    assert [r.server_metrics["validation_passed"] for r in rounds] == [1.0, 1.0, 1.0]
    initial = builtin_app.new_model(run_config_for(execution)).get_weights()
    assert not np.allclose(_weights(rounds[0])[0], initial[0])
    assert not np.allclose(_weights(rounds[0])[0], _weights(rounds[-1])[0])


def test_a_loss_threshold_judges_regression_models(owner_api, project):
    body = {"validation": {"enabled": True, "threshold": 0.0}}
    execution = _configured_run(owner_api, project, body, rounds=2, model_type="linear", dataset="diabetes")
    assert [r.server_metrics["validation_passed"] for r in execution.rounds.order_by("number")] == [0.0, 0.0]


# ---- model -----------------------------------------------------------------------------------------

def test_the_aggregated_model_downloads_by_round_and_format(owner_api, project, django_capture_on_commit_callbacks):
    import hashlib
    import io

    import onnx

    execution = run_through_api(owner_api, project, django_capture_on_commit_callbacks)
    first = Round.objects.get(execution=execution, number=1)
    response = owner_api.get(_url(execution, "model") + "?round=1")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    with first.checkpoint.open("rb") as fh:
        assert body == fh.read()
    assert response["X-Checksum-SHA256"] == hashlib.sha256(body).hexdigest() and response["X-Model-Version"] == "1"
    latest = owner_api.get(_url(execution, "model") + "?format=onnx")
    assert latest.status_code == 200 and latest["X-Model-Version"] == "2"
    onnx.checker.check_model(onnx.load_from_string(latest.content))
    again = owner_api.get(_url(execution, "model") + "?format=onnx", headers={"If-None-Match": latest["ETag"]})
    assert again.status_code == 304


@pytest.mark.parametrize("query, code, field", [
    ("?format=h5", "INVALID_MODEL_FORMAT", "format"),
    ("?format=tensorflow", "INVALID_MODEL_FORMAT", "format"),
    ("?round=9", "VALIDATION_ERROR", "round"),
    ("?round=-1", "VALIDATION_ERROR", "round"),
    ("?round=１", "VALIDATION_ERROR", "round"),
    ("?round=99999999999999", "VALIDATION_ERROR", "round"),
])
def test_the_aggregated_model_refuses_what_it_cannot_give(owner_api, project, django_capture_on_commit_callbacks,
                                                          query, code, field):
    execution = run_through_api(owner_api, project, django_capture_on_commit_callbacks)
    error = assert_error(owner_api.get(_url(execution, "model") + query), 422, code)["error"]
    assert error["details"]["field"] == field
    if code == "INVALID_MODEL_FORMAT":
        assert "npz" in error["details"]["supported"] and "onnx" in error["message"]


def test_someone_elses_aggregated_model_is_not_found(api_for, project, django_capture_on_commit_callbacks, owner_api):
    execution = run_through_api(owner_api, project, django_capture_on_commit_callbacks)
    stranger = api_for(UserFactory(roles=["user"]))
    assert_error(stranger.get(_url(execution, "model")), 404, "FL001")
