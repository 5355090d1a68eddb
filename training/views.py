"""The dashboard pages for training: the execution list, the start form, an execution's page and
its stop / suspend / resume buttons. The same selectors, services and FilterSet as the API: a user
sees the executions of projects they own or are a member of, and changes those they may write."""

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from core.exceptions import ApplicationError, ValidationFailed
from core.permissions import has_permission
from projects import selectors as project_selectors
from projects.choices import MemberAccess
from projects.models import ProjectMember
from training import selectors, services
from training.choices import ControlRequest, ExecutionStatus, RoundStatus
from training.filters import ExecutionFilterSet
from training.forms import TrainingStartForm, algorithm_catalogue
from training.models import Execution

PAGE_SIZE = 20
LOG_LINES = 50
# Any one of each tuple is enough (seed 000 names first, seed 004 names second).
READ = ("read:projects", "execution:read")
START = ("start:training", "execution:create")
CONTROL = ("start:training", "execution:update")
# Which buttons an execution in each status offers; the services still have the last word.
ACTIONS = {
    ExecutionStatus.PENDING: ("stop",),
    ExecutionStatus.RUNNING: ("suspend", "stop"),
    ExecutionStatus.SUSPENDED: ("resume", "stop"),
    ExecutionStatus.FAILED: ("resume",),
    ExecutionStatus.STOPPED: ("resume",),
    ExecutionStatus.COMPLETED: (),
}


# ---- permissions and lookups ---------------------------------------------------------------------

def _may(request, permissions: tuple[str, ...]) -> bool:
    # permission_strings reads the roles each time: once per request is enough.
    if not hasattr(request, "_pollen_permissions"):
        request._pollen_permissions = request.user.permission_strings
    return any(has_permission(request._pollen_permissions, p) for p in permissions)


def _require(request, permissions: tuple[str, ...]) -> None:
    if not _may(request, permissions):
        raise PermissionDenied(f"You need one of the permissions {', '.join(permissions)}")


def _writable_projects(user):
    projects = project_selectors.project_list(user=user)
    if not user.has_wildcard_permission():
        writable = ProjectMember.objects.filter(user=user, access=MemberAccess.WRITE).values("project_id")
        projects = projects.filter(Q(owner=user) | Q(pk__in=writable))
    return projects.order_by("name")


def _execution_or_404(request, pk, *, for_write: bool = False) -> Execution:
    try:
        return selectors.execution_get(user=request.user, execution_id=pk, for_write=for_write)
    except ApplicationError as exc:
        if exc.http_status == 404:
            raise Http404("Execution not found")
        raise PermissionDenied(exc.message)


def _project_or_404(request, pk):
    try:
        return project_selectors.project_get(user=request.user, project_id=pk, for_write=True)
    except ApplicationError as exc:
        if exc.code == "RESOURCE_NOT_FOUND":
            raise Http404("Project not found")
        raise PermissionDenied(exc.message)


def _headline(metrics: dict, name: str):
    """The server-side value of ``name`` (accuracy, loss), else the clients' evaluation of it."""
    metrics = metrics or {}
    value = metrics.get(name, metrics.get(f"eval_{name}"))
    return value if isinstance(value, (int, float)) else None


# ---- list ----------------------------------------------------------------------------------------

@login_required
def execution_list(request):
    _require(request, READ)
    executions = selectors.execution_list(user=request.user)
    filterset = ExecutionFilterSet(request.GET, queryset=executions)
    executions = filterset.qs if filterset.is_valid() else executions.none()
    page = Paginator(executions, PAGE_SIZE).get_page(request.GET.get("page"))
    for execution in page:
        execution.accuracy = _headline(execution.metrics, "accuracy")
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "training/list.html", {
        "filterset": filterset, "page": page, "query": query.urlencode(),
        "statuses": ExecutionStatus.choices,
        "projects": project_selectors.project_list(user=request.user).order_by("name").values("pk", "name"),
        "can_start": _may(request, START),
    })


# ---- start ---------------------------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def execution_start(request, pk=None):
    _require(request, START)
    project = _project_or_404(request, pk) if pk else None
    projects = _writable_projects(request.user)
    if project:
        initial = TrainingStartForm.initial_for(project)
    else:
        only = list(projects[:2])
        initial = {"project": only[0].pk} if len(only) == 1 else {}
    form = TrainingStartForm(request.POST or None, initial=initial, projects=projects)
    if request.method == "POST" and form.is_valid():
        try:
            execution = services.execution_start(user=request.user, **form.service_kwargs())
        except ApplicationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, f"Training “{execution}” queued.")
            return redirect("execution-detail", pk=execution.pk)
    return render(request, "training/start.html", {
        "form": form, "project": project, "algorithms": algorithm_catalogue(),
    })


# ---- one execution -------------------------------------------------------------------------------

def _rounds_api(execution) -> str:
    # The API's route (training/api), written by hand: the page must not fail while it is absent.
    return f"/api/v1/fl/executions/{execution.pk}/rounds/"


def _round_value(round_, name: str):
    value = _headline(round_.server_metrics, name)
    return value if value is not None else _headline(round_.evaluate_metrics, name)


def _chart_points(rounds) -> list[dict]:
    return [{"round": r.number, "accuracy": _round_value(r, "accuracy"), "loss": _round_value(r, "loss"),
             "train_loss": _headline(r.train_metrics, "train_loss")}
            for r in rounds if r.status == RoundStatus.COMPLETED]


@login_required
def execution_detail(request, pk):
    _require(request, READ)
    execution = _execution_or_404(request, pk)
    rounds = list(selectors.execution_rounds(execution=execution))
    logs = list(selectors.execution_logs(execution=execution).reverse()[:LOG_LINES])
    can_control = _may(request, CONTROL) and project_selectors.can_write(request.user, execution.project)
    actions = ACTIONS.get(execution.status, ())
    if execution.control in (ControlRequest.STOP, ControlRequest.SUSPEND):
        actions = ()  # already asked: it happens between rounds
    return render(request, "training/detail.html", {
        "execution": execution,
        "rounds": rounds,
        "logs": logs[::-1],
        "chart": {"rounds": _chart_points(rounds), "total_rounds": execution.total_rounds},
        "live": {"executionId": str(execution.pk), "status": execution.status,
                 "roundsUrl": _rounds_api(execution),
                 "renderedAt": timezone.now().isoformat()},
        "actions": actions if can_control else (),
        # shown by execution.js when the worker picks a pending run up, without a reload
        "actions_when_running": ("suspend",) if can_control and actions and execution.status == ExecutionStatus.PENDING else (),
        "rounds_api": _rounds_api(execution),
        "checkpoint_rounds": [r.number for r in rounds if r.checkpoint],
        "accuracy": _headline(execution.metrics, "accuracy"),
        "loss": _headline(execution.metrics, "loss"),
        **_model_context(execution),
    })


def _model_context(execution: Execution) -> dict:
    """The execution's registered model and the formats its current version downloads in."""
    from training import export
    from training.registry import selectors as registry_selectors
    from training.registry.services import UPLOADED_APP

    model = registry_selectors.execution_model(execution=execution)
    if model is None or model.current_version is None:
        return {"model": model, "model_formats": []}
    formats = export.supported_formats(UPLOADED_APP if execution.upload_id else model.model_type)
    return {"model": model, "model_formats": formats}




def _control(request, pk, act: Callable[[Execution], str]):
    """Run ``act`` (one service call, returning what to tell the user) on an execution the user
    may change; a refused transition comes back as a message on the execution's page."""
    _require(request, CONTROL)
    execution = _execution_or_404(request, pk, for_write=True)
    try:
        done = act(execution)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("execution-detail", pk=execution.pk)


@login_required
@require_POST
def execution_stop(request, pk):
    def stop(execution):
        execution = services.execution_stop(execution=execution, reason="Stopped from the dashboard")
        if execution.status == ExecutionStatus.STOPPED:
            return "Stopped."
        return "Stop requested: the execution stops after its current round."

    return _control(request, pk, stop)


@login_required
@require_POST
def execution_suspend(request, pk):
    def suspend(execution):
        services.execution_suspend(execution=execution, reason="Suspended from the dashboard")
        return "Suspend requested: the execution pauses after its current round."

    return _control(request, pk, suspend)


@login_required
@require_POST
def execution_resume(request, pk):
    def resume(execution):
        raw = request.POST.get("from_round", "").strip()
        if raw and not raw.isdigit():
            raise ValidationFailed("Choose a round to resume from", field="from_round")
        execution = services.execution_resume(execution=execution, from_round=int(raw) if raw else None)
        start = f"round {execution.resume_from_round}" if execution.resume_from_round else "the beginning"
        return f"Resumed from {start}: the execution is queued again."

    return _control(request, pk, resume)
