import logging

from celery import shared_task

from training.choices import ExecutionStatus
from training.models import Execution

logger = logging.getLogger("pollen.training")


@shared_task(name="training.tasks.execution_run", acks_late=True)
def execution_run(execution_id: str) -> str | None:
    """Run a pending execution in this worker process (one at a time per process)."""
    from training.runner import run_execution

    return run_execution(execution_id)


@shared_task(name="training.tasks.executions_reap")
def executions_reap() -> int:
    """Fail running executions whose worker stopped sending heartbeats; they can be resumed."""
    from training.runner import finish_execution, stale_cutoff

    reaped = 0
    for execution_id in Execution.objects.filter(status=ExecutionStatus.RUNNING,
                                                 heartbeat_at__lt=stale_cutoff()).values_list("pk", flat=True):
        finish_execution(execution_id, ExecutionStatus.FAILED, error_code="FL003",
                         error_message="The worker running this execution stopped responding (no heartbeat); "
                                       "resume it to continue from its last checkpoint")
        reaped += 1
    if reaped:
        logger.warning("Reaped %d executions whose worker was lost", reaped)
    return reaped


@shared_task(name="training.tasks.model_evaluate", acks_late=True)
def model_evaluate(evaluation_id: str) -> str | None:
    """Evaluate a registered model's version on a data set's held-out split (a pending evaluation)."""
    from training.registry.services import evaluation_run

    return evaluation_run(evaluation_id=evaluation_id)
