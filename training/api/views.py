"""The training API: seed 001/004 executions, rounds and logs under ``/fl/``, and seed 000's
training jobs under ``/training/`` (the same executions in seed 000's shapes).

Views are thin: they check input, fetch through ``training.selectors`` (which apply project
visibility: someone else's execution is 404 ``FL001``) and change state through
``training.services`` (which own transitions: an impossible one is 409).
"""

from django.http import FileResponse, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action

from core.api.envelope import respond
from core.api.permissions import RequiresPermission
from core.api.throttles import GeneralRateThrottle, TrainingRateThrottle
from core.exceptions import NotFound, ValidationFailed
from projects import selectors as project_selectors
from training import metrics as metric_reads
from training import selectors, services
from training.api import serializers as s
from training.api.aggregation_serializers import BiasReportSerializer, ValidationScoresSerializer
from training.choices import ExecutionStatus
from training.filters import ExecutionFilterSet, ExecutionLogFilterSet, has_filter_parameters
from training.models import Execution, ExecutionLog, Round, RoundClient

# Either the seed 000 string or the seed 004 one (``ml_engineer`` holds ``execution:*``).
READ = ("read:projects", "execution:read")
START = ("start:training", "execution:create")
CONTROL = ("start:training", "execution:update")
# Operators and analysts hold ``log:read`` / ``metric:read`` (seed 004) without reading projects.
LOG_READ = (*READ, "log:read")
METRICS_READ = (*READ, "view:metrics", "metric:read")

EXECUTION_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Execution id")
ROUND_NUMBER = OpenApiParameter("number", OpenApiTypes.INT, OpenApiParameter.PATH, description="Round number")
ROUND_ID = OpenApiParameter("round_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="Round id")
JOB_ID = OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Job (execution) id")
TRAINING_ID = OpenApiParameter("training_id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                               description="Execution id")
CHECKSUM_HEADER = OpenApiParameter("X-Checksum-SHA256", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[200],
                                   description="SHA-256 of the file, hex")
ACCEPTED = "Accepted: a worker acts on it (202)"
_ERROR = {"$ref": "#/components/schemas/ErrorEnvelope"}
CONFLICT = {409: OpenApiResponse(_ERROR, description="Not possible in the execution's status (RESOURCE_CONFLICT)")}
UNPROCESSABLE = {422: OpenApiResponse(_ERROR, description="A parameter cannot be used; details.field names it "
                                                          "(VALIDATION_ERROR, FL002, FL006)")}
STOP_RESPONSES = {200: s.ExecutionSerializer, 202: OpenApiResponse(s.ExecutionSerializer, description=ACCEPTED),
                  **CONFLICT, **UNPROCESSABLE}




def _stop_status(execution: Execution) -> int:
    """200 when the execution stopped at once, 202 when its worker has yet to stop it."""
    return status.HTTP_200_OK if execution.status == ExecutionStatus.STOPPED else status.HTTP_202_ACCEPTED


class _TrainingViewSet(viewsets.GenericViewSet):
    permission_classes = [RequiresPermission]
    training_actions: tuple[str, ...] = ()

    def get_throttles(self):
        if self.action in self.training_actions:
            return [TrainingRateThrottle(), GeneralRateThrottle()]
        return super().get_throttles()

    def filter_queryset(self, queryset):
        filterset_class = getattr(self, "filterset_class", None)
        if filterset_class is None or not has_filter_parameters(filterset_class, self.request.query_params):
            return queryset
        return super().filter_queryset(queryset)

    def _page(self, queryset, serializer_class):
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(serializer_class(page, many=True).data)

    def _execution(self, execution_id, *, for_write: bool = False) -> Execution:
        return selectors.execution_get(user=self.request.user, execution_id=execution_id, for_write=for_write)

    def _start(self, request) -> Execution:
        data = s.validated_input(s.ExecutionStartInputSerializer, request.data)
        project = project_selectors.project_get(user=request.user, project_id=data["project_id"], for_write=True)
        execution = services.execution_start(project=project, user=request.user, config=data["config"],
                                             name=data.get("name", ""), algorithm=data.get("algorithm"),
                                             strategy_params=data.get("strategy_params"),
                                             privacy=data.get("privacy_config"))
        # Where Celery runs eagerly the run may be over already: answer with what is true now.
        return self._execution(execution.pk)

    def _stop(self, execution: Execution, data: dict) -> Execution:
        execution = services.execution_stop(execution=execution, reason=data.get("reason", ""),
                                            save_checkpoint=data.get("save_checkpoint", True))
        return self._execution(execution.pk)


# ---- /fl/executions --------------------------------------------------------------------------------

class ExecutionViewSet(_TrainingViewSet):
    """seed 001 Training Execution Management and Training Rounds; seed 004 Federated Learning
    Executions and their logs."""

    serializer_class = s.ExecutionSerializer
    filterset_class = ExecutionFilterSet
    lookup_value_regex = "[^/]+"
    training_actions = ("create", "resume")
    required_permissions = {
        "list": READ, "retrieve": READ, "rounds": READ, "round_detail": READ, "round_metrics": METRICS_READ,
        "round_checkpoint": READ, "round_clients": READ, "round_by_id": READ, "round_by_id_clients": READ,
        "metrics": METRICS_READ, "logs": LOG_READ,
        "create": START,
        "update": CONTROL, "partial_update": CONTROL, "destroy": CONTROL, "change_status": CONTROL,
        "stop": CONTROL, "suspend": CONTROL, "resume": CONTROL,
    }
    # The model each action lists, for the schema (its filters and path parameter types).
    _action_models = {"logs": ExecutionLog, "rounds": Round, "round_clients": RoundClient,
                      "round_by_id_clients": RoundClient}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self._action_models.get(self.action, Execution).objects.none()
        return selectors.execution_list(user=self.request.user)

    def perform_content_negotiation(self, request, force=False):
        # A checkpoint is answered as a file whatever the client says it accepts.
        return super().perform_content_negotiation(request, force=force or self.action == "round_checkpoint")

    # ---- executions ------------------------------------------------------------------------------
    @extend_schema(responses={200: s.ExecutionSerializer(many=True)})
    def list(self, request):
        return self._page(self.filter_queryset(self.get_queryset()), s.ExecutionSerializer)

    @extend_schema(request=s.ExecutionStartInputSerializer,
                   responses={202: OpenApiResponse(s.ExecutionSerializer, description=ACCEPTED), **UNPROCESSABLE})
    def create(self, request):
        execution = self._start(request)
        return respond(s.ExecutionSerializer(execution).data, message="Training execution queued",
                        status_code=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=[EXECUTION_ID])
    def retrieve(self, request, pk=None):
        return respond(s.ExecutionSerializer(self._execution(pk)).data, message="Training execution")

    @extend_schema(parameters=[EXECUTION_ID], request=s.ExecutionUpdateInputSerializer,
                   responses={200: s.ExecutionSerializer, **UNPROCESSABLE})
    def update(self, request, pk=None):
        return self._rename(request, pk)

    @extend_schema(parameters=[EXECUTION_ID], request=s.ExecutionUpdateInputSerializer,
                   responses={200: s.ExecutionSerializer, **UNPROCESSABLE})
    def partial_update(self, request, pk=None):
        return self._rename(request, pk)

    def _rename(self, request, pk):
        execution = self._execution(pk, for_write=True)
        data = s.validated_input(s.ExecutionUpdateInputSerializer, request.data)
        execution = services.execution_update(execution=execution, name=data["name"])
        return respond(s.ExecutionSerializer(self._execution(execution.pk)).data, message="Training execution updated")

    @extend_schema(parameters=[EXECUTION_ID], request=None, responses=STOP_RESPONSES,
                   summary="Cancel (stop) an execution",
                   description="seed 004 ``DELETE`` cancels: the record and its rounds stay. 200 when it stopped "
                               "at once (it was pending or suspended), 202 when its worker stops it after the "
                               "current round.")
    def destroy(self, request, pk=None):
        execution = self._stop(self._execution(pk, for_write=True), {"reason": "cancelled"})
        return respond(s.ExecutionSerializer(execution).data, message="Training execution cancelled",
                        status_code=_stop_status(execution))

    @extend_schema(parameters=[EXECUTION_ID], request=s.ExecutionStatusInputSerializer, responses=STOP_RESPONSES,
                   summary="Change an execution's status",
                   description="``stopped`` stops, ``suspended`` pauses between rounds, ``running`` resumes a "
                               "suspended, stopped or failed execution (with ``from_round``/``adjust_config``).")
    @action(detail=True, methods=["patch"], url_path="status")
    def change_status(self, request, pk=None):
        execution = self._execution(pk, for_write=True)
        data = s.validated_input(s.ExecutionStatusInputSerializer, request.data)
        wanted = data["status"]
        if wanted == ExecutionStatus.STOPPED:
            execution = self._stop(execution, data)
            return respond(s.ExecutionSerializer(execution).data, message="Stop requested",
                            status_code=_stop_status(execution))
        if wanted == ExecutionStatus.SUSPENDED:
            execution = services.execution_suspend(execution=execution, reason=data.get("reason", ""))
            message = "Suspend requested"
        else:
            execution = services.execution_resume(execution=execution, from_round=data.get("from_round"),
                                                  adjust_config=data.get("adjust_config"))
            message = "Training execution resumed"
        return respond(s.ExecutionSerializer(self._execution(execution.pk)).data, message=message,
                        status_code=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=[EXECUTION_ID], request=s.ExecutionStopInputSerializer, responses=STOP_RESPONSES,
                   description="A pending or suspended execution stops at once (200); a running one stops after "
                               "its current round, saving that round's checkpoint unless ``saveCheckpoint`` is "
                               "false (202).")
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        execution = self._execution(pk, for_write=True)
        execution = self._stop(execution, s.validated_input(s.ExecutionStopInputSerializer, request.data))
        return respond(s.ExecutionSerializer(execution).data, message="Stop requested",
                        status_code=_stop_status(execution))

    @extend_schema(parameters=[EXECUTION_ID], request=s.ExecutionSuspendInputSerializer,
                   responses={202: OpenApiResponse(s.ExecutionSerializer, description=ACCEPTED), **CONFLICT,
                              **UNPROCESSABLE},
                   description="A running execution pauses after its current round; resume continues it.")
    @action(detail=True, methods=["post"])
    def suspend(self, request, pk=None):
        execution = self._execution(pk, for_write=True)
        data = s.validated_input(s.ExecutionSuspendInputSerializer, request.data)
        execution = services.execution_suspend(execution=execution, reason=data.get("reason", ""))
        return respond(s.ExecutionSerializer(self._execution(execution.pk)).data, message="Suspend requested",
                        status_code=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=[EXECUTION_ID], request=s.ExecutionResumeInputSerializer,
                   responses={202: OpenApiResponse(s.ExecutionSerializer, description=ACCEPTED), **CONFLICT,
                              **UNPROCESSABLE},
                   description="Queues a suspended, stopped or failed execution again, continuing from the "
                               "checkpoint of ``fromRound`` (default: the last one), with ``adjustConfig`` "
                               "changes (e.g. more ``rounds``).")
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        execution = self._execution(pk, for_write=True)
        data = s.validated_input(s.ExecutionResumeInputSerializer, request.data)
        execution = services.execution_resume(execution=execution, from_round=data.get("from_round"),
                                              adjust_config=data.get("adjust_config"))
        return respond(s.ExecutionSerializer(self._execution(execution.pk)).data, message="Training execution "
                        "resumed", status_code=status.HTTP_202_ACCEPTED)

    # ---- rounds ----------------------------------------------------------------------------------
    @extend_schema(parameters=[EXECUTION_ID], responses={200: s.RoundSerializer(many=True)})
    @action(detail=True, methods=["get"], filterset_class=None)
    def rounds(self, request, pk=None):
        return self._page(selectors.execution_rounds(execution=self._execution(pk)), s.RoundSerializer)

    @extend_schema(parameters=[EXECUTION_ID, ROUND_NUMBER], responses={200: s.RoundSerializer})
    @action(detail=True, methods=["get"], url_path=r"rounds/(?P<number>[0-9]+)", filterset_class=None)
    def round_detail(self, request, pk=None, number=None):
        round_obj = selectors.execution_round_get(execution=self._execution(pk), number=number)
        return respond(s.RoundSerializer(round_obj).data, message="Training round")

    @extend_schema(parameters=[EXECUTION_ID, ROUND_NUMBER], responses={200: s.RoundMetricsDetailSerializer})
    @action(detail=True, methods=["get"], url_path=r"rounds/(?P<number>[0-9]+)/metrics", filterset_class=None)
    def round_metrics(self, request, pk=None, number=None):
        round_obj = selectors.execution_round_get(execution=self._execution(pk), number=number)
        clients = selectors.round_clients(round_obj=round_obj)
        return respond(s.RoundMetricsDetailSerializer.build(round_obj, clients), message="Round metrics")

    @extend_schema(parameters=[EXECUTION_ID, ROUND_NUMBER, CHECKSUM_HEADER], responses={
        (200, "application/octet-stream"): OpenApiResponse(
            OpenApiTypes.BINARY, description="The aggregated model of the round as a NumPy .npz "
                                             "(arrays arr_0, arr_1, ...); header X-Checksum-SHA256")})
    @action(detail=True, methods=["get"], url_path=r"rounds/(?P<number>[0-9]+)/checkpoint", filterset_class=None,
            url_name="round-checkpoint")
    def round_checkpoint(self, request, pk=None, number=None):
        execution = self._execution(pk)
        round_obj = selectors.execution_round_get(execution=execution, number=number)
        if not round_obj.checkpoint or not round_obj.checkpoint.storage.exists(round_obj.checkpoint.name):
            raise NotFound(f"Round {round_obj.number} of this execution has no checkpoint")
        response = FileResponse(round_obj.checkpoint.open("rb"), as_attachment=True,
                                filename=f"{execution.pk}-round-{round_obj.number:04d}.npz",
                                content_type="application/octet-stream")
        response["X-Checksum-SHA256"] = round_obj.checkpoint_checksum
        return response

    @extend_schema(parameters=[EXECUTION_ID, ROUND_NUMBER], responses={200: s.RoundClientSerializer(many=True)})
    @action(detail=True, methods=["get"], url_path=r"rounds/(?P<number>[0-9]+)/clients", filterset_class=None)
    def round_clients(self, request, pk=None, number=None):
        round_obj = selectors.execution_round_get(execution=self._execution(pk), number=number)
        return self._page(selectors.round_clients(round_obj=round_obj), s.RoundClientSerializer)

    @extend_schema(parameters=[ROUND_ID], responses={200: s.RoundSerializer}, summary="Round by id (seed 004)",
                   operation_id="fl_executions_rounds_by_id_retrieve")
    @action(detail=False, methods=["get"], url_path=r"rounds/(?P<round_id>[0-9]+)", filterset_class=None)
    def round_by_id(self, request, round_id=None):
        round_obj = selectors.round_get_by_id(user=request.user, round_id=round_id)
        return respond(s.RoundSerializer(round_obj).data, message="Training round")

    @extend_schema(parameters=[ROUND_ID], responses={200: s.RoundClientSerializer(many=True)},
                   summary="Participating clients of a round by id (seed 004)",
                   operation_id="fl_executions_rounds_by_id_clients_list")
    @action(detail=False, methods=["get"], url_path=r"rounds/(?P<round_id>[0-9]+)/clients", filterset_class=None)
    def round_by_id_clients(self, request, round_id=None):
        round_obj = selectors.round_get_by_id(user=request.user, round_id=round_id)
        return self._page(selectors.round_clients(round_obj=round_obj), s.RoundClientSerializer)

    # ---- metrics and logs ------------------------------------------------------------------------
    @extend_schema(parameters=[EXECUTION_ID], responses={200: s.ExecutionMetricsSerializer})
    @action(detail=True, methods=["get"], filterset_class=None)
    def metrics(self, request, pk=None):
        execution = self._execution(pk)
        rounds = selectors.execution_rounds(execution=execution)
        return respond(s.ExecutionMetricsSerializer.build(execution, rounds), message="Execution metrics")

    @extend_schema(parameters=[EXECUTION_ID], responses={200: s.ExecutionLogSerializer(many=True)})
    @action(detail=True, methods=["get"], filterset_class=ExecutionLogFilterSet)
    def logs(self, request, pk=None):
        logs = selectors.execution_logs(execution=self._execution(pk))
        return self._page(self.filter_queryset(logs), s.ExecutionLogSerializer)


# ---- /fl/logs --------------------------------------------------------------------------------------

class ExecutionLogViewSet(_TrainingViewSet):
    """seed 004 Training Logs: the log entries of every execution the caller can see."""

    serializer_class = s.ExecutionLogSerializer
    filterset_class = ExecutionLogFilterSet
    required_permissions = {"list": LOG_READ, "search": LOG_READ, "by_training": LOG_READ}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ExecutionLog.objects.none()
        return selectors.log_list(user=self.request.user)

    @extend_schema(responses={200: s.ExecutionLogSerializer(many=True)})
    def list(self, request):
        return self._page(self.filter_queryset(self.get_queryset()), s.ExecutionLogSerializer)

    @extend_schema(responses={200: s.ExecutionLogSerializer(many=True), **UNPROCESSABLE},
                   description="``q`` (required) matches the message; the other filters apply too.")
    @action(detail=False, methods=["get"])
    def search(self, request):
        if not (request.query_params.get("q") or request.query_params.get("search") or "").strip():
            raise ValidationFailed("q: give the text to search for", field="q", http_status=422)
        return self._page(self.filter_queryset(self.get_queryset()), s.ExecutionLogSerializer)

    @extend_schema(parameters=[TRAINING_ID], responses={200: s.ExecutionLogSerializer(many=True)},
                   summary="Logs of one training (seed 004)")
    @action(detail=False, methods=["get"], url_path=r"by-training/(?P<training_id>[^/]+)")
    def by_training(self, request, training_id=None):
        logs = selectors.execution_logs(execution=self._execution(training_id))
        return self._page(self.filter_queryset(logs), s.ExecutionLogSerializer)


# ---- /training (seed 000) --------------------------------------------------------------------------

class TrainingJobViewSet(_TrainingViewSet):
    """seed 000 Training Management: executions as "training jobs", in seed 000's shapes."""

    serializer_class = s.TrainingJobSerializer
    pagination_class = None
    filter_backends = []
    training_actions = ("start",)
    required_permissions = {"start": START, "job": READ, "stop": CONTROL}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Execution.objects.none()
        return selectors.execution_list(user=self.request.user)

    @extend_schema(request=s.ExecutionStartInputSerializer,
                   responses={202: OpenApiResponse(s.TrainingJobStartSerializer, description=ACCEPTED),
                              **UNPROCESSABLE},
                   summary="Start a federated training job")
    @action(detail=False, methods=["post"])
    def start(self, request):
        execution = self._start(request)
        return respond(s.TrainingJobStartSerializer(execution).data, message="Training job queued",
                        status_code=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=[JOB_ID], responses={200: s.TrainingJobSerializer},
                   summary="Training job status and metrics")
    @action(detail=False, methods=["get"], url_path=r"jobs/(?P<job_id>[^/]+)")
    def job(self, request, job_id=None):
        execution = self._execution(job_id)
        eta = selectors.execution_estimated_completion(execution=execution)
        return respond(s.TrainingJobSerializer(execution, context={"estimated_completion": eta}).data,
                        message="Training job")

    @extend_schema(parameters=[JOB_ID], request=s.ExecutionStopInputSerializer,
                   responses={200: s.TrainingJobStopSerializer,
                              202: OpenApiResponse(s.TrainingJobStopSerializer, description=ACCEPTED), **CONFLICT,
                              **UNPROCESSABLE},
                   summary="Stop a training job")
    @action(detail=False, methods=["post"], url_path=r"stop/(?P<job_id>[^/]+)")
    def stop(self, request, job_id=None):
        execution = self._execution(job_id, for_write=True)
        execution = self._stop(execution, s.validated_input(s.ExecutionStopInputSerializer, request.data))
        return respond(s.TrainingJobStopSerializer(execution).data, message="Training job stop requested",
                        status_code=_stop_status(execution))


# ---- /fl/metrics -----------------------------------------------------------------------------------

METRIC_QUERY = [
    OpenApiParameter("executionId", str, required=True, description="The execution (also execution_id)"),
    OpenApiParameter("metrics", str, description="Comma-separated metric names, e.g. loss,accuracy"),
    OpenApiParameter("aggregation", str, description="mean, sum, max or min over rounds (default mean)"),
]
MAX_ROUND = 1_000_000
ROUND_QUERY = OpenApiParameter("round", int, description="One round (default: every round; for bias, the last "
                                                          "completed one)")
THRESHOLD_QUERY = OpenApiParameter("threshold", float, description="Gaps larger than this are flagged (default "
                                                                   f"{metric_reads.DEFAULT_BIAS_THRESHOLD}); "
                                                                   "relative to the mean for losses")


def _query_number(params, name: str, kind: type, minimum, maximum):
    """``params[name]`` as a ``kind`` from ``minimum`` to ``maximum``, or None when absent (422 if bad)."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = kind(raw)
    except (TypeError, ValueError, OverflowError):
        value = None
    if value is None or not minimum <= value <= maximum:  # NaN fails both comparisons
        raise ValidationFailed(f"{name} must be a {'whole ' if kind is int else ''}number from {minimum} to {maximum}",
                               field=name, http_status=422)
    return value


class MetricsViewSet(_TrainingViewSet):
    """seed 001/004 Performance Monitoring: per-round metric series of an execution."""

    required_permissions = {"*": METRICS_READ}

    def _requested_execution(self, source) -> Execution:
        execution_id = source.get("executionId") or source.get("execution_id")
        if not execution_id:
            raise ValidationFailed("executionId is required", field="executionId", http_status=422)
        return self._execution(execution_id)

    def _series(self, names: list[str] | None):
        execution = self._requested_execution(self.request.query_params)
        rows = metric_reads.series(execution, selectors.execution_rounds(execution=execution), names)
        return execution, rows

    def _family(self, family: str):
        execution, rows = self._series(list(metric_reads.FAMILIES[family]))
        aggregation = self.request.query_params.get("aggregation", "mean")
        return respond({"execution_id": str(execution.pk), "metric": family, "rounds": rows,
                        "summary": metric_reads.summary(rows, aggregation), "aggregation": aggregation},
                       message=f"{family} by round")

    @extend_schema(parameters=METRIC_QUERY, responses={200: dict})
    @action(detail=False, methods=["get"])
    def training(self, request):
        names = [n.strip() for n in request.query_params.get("metrics", "").split(",") if n.strip()] or None
        execution, rows = self._series(names)
        aggregation = request.query_params.get("aggregation", "mean")
        return respond({"execution_id": str(execution.pk), "status": execution.status, "rounds": rows,
                        "summary": metric_reads.summary(rows, aggregation), "aggregation": aggregation},
                       message="Training metrics by round")

    @extend_schema(parameters=METRIC_QUERY, responses={200: dict})
    @action(detail=False, methods=["get"])
    def loss(self, request):
        return self._family("loss")

    @extend_schema(parameters=METRIC_QUERY, responses={200: dict})
    @action(detail=False, methods=["get"])
    def accuracy(self, request):
        return self._family("accuracy")

    @extend_schema(parameters=METRIC_QUERY, responses={200: dict})
    @action(detail=False, methods=["get"], url_path="precision-recall")
    def precision_recall(self, request):
        return self._family("precision-recall")

    @extend_schema(parameters=METRIC_QUERY, responses={200: dict})
    @action(detail=False, methods=["get"])
    def f1(self, request):
        return self._family("f1")

    @extend_schema(parameters=METRIC_QUERY[:1], responses={200: dict})
    @action(detail=False, methods=["get"], url_path="data-distribution")
    def data_distribution(self, request):
        execution = self._requested_execution(request.query_params)
        return respond({"execution_id": str(execution.pk), **metric_reads.data_distribution(execution)},
                       message="Data distribution across nodes")

    @extend_schema(parameters=[METRIC_QUERY[0], ROUND_QUERY], responses={200: ValidationScoresSerializer,
                                                                       **UNPROCESSABLE},
                   summary="Validation scores (seed 004)",
                   description="Per round: the server's held-out metrics against the nodes' local validation "
                               "metrics, the generalisation gap, and the aggregation validation verdict.")
    @action(detail=False, methods=["get"])
    def validation(self, request):
        execution = self._requested_execution(request.query_params)
        round_number = _query_number(request.query_params, "round", int, 1, MAX_ROUND)
        return respond(metric_reads.validation_scores(execution, round_number), message="Validation scores")

    @extend_schema(parameters=[METRIC_QUERY[0], ROUND_QUERY, THRESHOLD_QUERY],
                   responses={200: BiasReportSerializer, **UNPROCESSABLE}, summary="Bias assessment (seed 004)",
                   description="Per-class accuracy gaps (classification) and per-node gaps of the global model, "
                               "with the worst class and node, the spread and flags for gaps over ``threshold``.")
    @action(detail=False, methods=["get"])
    def bias(self, request):
        execution = self._requested_execution(request.query_params)
        round_number = _query_number(request.query_params, "round", int, 1, MAX_ROUND)
        threshold = _query_number(request.query_params, "threshold", float, 0, 1e12)
        report = metric_reads.bias_report(execution, round_number, threshold=metric_reads.DEFAULT_BIAS_THRESHOLD
                                          if threshold is None else threshold)
        return respond(report, message="Bias assessment")

    @extend_schema(request=dict, responses={(200, "text/csv"): bytes, (200, "application/json"): bytes,
                                            (200, metric_reads.PARQUET_CONTENT_TYPE): bytes})
    @action(detail=False, methods=["post"])
    def export(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        ids = data.get("executionIds") or data.get("execution_ids") or (
            [data.get("executionId") or data.get("execution_id")] if (data.get("executionId") or data.get("execution_id")) else [])
        if not isinstance(ids, list) or not ids:
            raise ValidationFailed("executionId (or executionIds) is required", field="executionIds", http_status=422)
        names = data.get("metrics") or None
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise ValidationFailed("metrics must be a list of names", field="metrics", http_status=422)
        rows = []
        for execution_id in ids[:50]:
            execution = self._execution(execution_id)
            rows.append((execution, metric_reads.series(execution, selectors.execution_rounds(execution=execution),
                                                        names)))
        body, content_type, ext = metric_reads.export(rows, str(data.get("format", "csv")))
        response = HttpResponse(body, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="metrics.{ext}"'
        return response
