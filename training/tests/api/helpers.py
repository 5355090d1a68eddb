"""Request helpers for the training API tests. Real runs are tiny: iris, three nodes, two rounds."""

from training.models import Execution

API = "/api/v1"
EXECUTIONS = f"{API}/fl/executions"
LOGS = f"{API}/fl/logs"
START = f"{API}/training/start"


def tiny_config(**overrides) -> dict:
    return {"rounds": 2, "clients": 3, "model_type": "logistic", "dataset": "iris", "learning_rate": 0.1,
            "batch_size": 16, **overrides}


def start_body(project, **overrides) -> dict:
    return {"project_id": str(project.pk), "config": tiny_config(**overrides)}


def run_execution(api, project, capture, *, path: str = EXECUTIONS, **overrides) -> Execution:
    """Start an execution through the API and let its on-commit work (the eager Celery task, i.e.
    the real federated run) happen. Returns the execution as the run left it."""
    with capture(execute=True):
        response = api.post(path, start_body(project, **overrides))
    assert response.status_code == 202, response.content
    data = response.json()["data"]
    return Execution.objects.get(pk=data.get("id") or data.get("job_id"))


def queue_execution(api, project, **overrides) -> Execution:
    """Start an execution through the API without running it: it stays pending."""
    response = api.post(EXECUTIONS, start_body(project, **overrides))
    assert response.status_code == 202, response.content
    return Execution.objects.get(pk=response.json()["data"]["id"])
