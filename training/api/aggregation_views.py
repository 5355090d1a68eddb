"""seed 001 Model Aggregation: ``/fl/aggregation/{executionId}/status``, ``/configure``,
``/trigger`` and ``/model``. Someone else's execution is 404 ``FL001``; changing one needs write access to its
project (403); what the execution's status does not allow is 409."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action

from core.api.envelope import respond
from core.exceptions import ValidationFailed
from training import aggregation, export
from training.api import aggregation_serializers as s
from training.api.views import ACCEPTED, CONFLICT, CONTROL, READ, UNPROCESSABLE, _TrainingViewSet
from training.models import Execution, Round
from training.registry.services import UPLOADED_APP

EXECUTION_ID = OpenApiParameter("execution_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Execution id")


class AggregationViewSet(_TrainingViewSet):
    """How an execution aggregates its nodes' updates, and manual aggregation steps."""

    lookup_url_kwarg = "execution_id"
    lookup_value_regex = "[^/]+"
    training_actions = ("trigger",)
    required_permissions = {"aggregation_status": READ, "configure": CONTROL, "trigger": CONTROL,
                            "model": (*READ, "model:download")}

    def get_queryset(self):
        return Execution.objects.none()

    def perform_content_negotiation(self, request, force=False):
        # The model is answered as a file whatever the client says it accepts.
        return super().perform_content_negotiation(request, force=force or self.action == "model")

    def _status(self, execution_id) -> dict:
        return aggregation.aggregation_status(execution=self._execution(execution_id))

    @extend_schema(parameters=[EXECUTION_ID], responses={200: s.AggregationStatusSerializer},
                   summary="Aggregation status of an execution")
    @action(detail=True, methods=["get"], url_path="status")
    def aggregation_status(self, request, execution_id=None):
        return respond(self._status(execution_id), message="Aggregation status")

    @extend_schema(parameters=[EXECUTION_ID], request=s.AggregationConfigureInputSerializer,
                   responses={200: s.AggregationStatusSerializer, **CONFLICT, **UNPROCESSABLE},
                   summary="Configure aggregation",
                   description="Strategy (and its parameters), update weighting and validation of a pending or "
                               "suspended execution; its next run uses them. Running or finished: 409.")
    @action(detail=True, methods=["post"])
    def configure(self, request, execution_id=None):
        execution = self._execution(execution_id, for_write=True)
        data = s.aggregation_input(s.AggregationConfigureInputSerializer, request.data)
        execution = aggregation.aggregation_configure(
            execution=execution, strategy=data.get("strategy"), custom_strategy=data.get("customStrategy"),
            strategy_params=data.get("strategy_params"), weights=data.get("weights"),
            validation=data.get("validation"))
        return respond(self._status(execution.pk), message="Aggregation configured")

    @extend_schema(parameters=[EXECUTION_ID], request=s.AggregationTriggerInputSerializer,
                   responses={202: OpenApiResponse(s.AggregationStatusSerializer, description=ACCEPTED), **CONFLICT,
                              **UNPROCESSABLE},
                   summary="Trigger a manual aggregation step",
                   description="A suspended execution runs exactly one round (``round``: the next one), with only "
                               "``clients`` taking part if given, then suspends again (the last round completes "
                               "it). A running execution aggregates by itself: 409.")
    @action(detail=True, methods=["post"])
    def trigger(self, request, execution_id=None):
        execution = self._execution(execution_id, for_write=True)
        data = s.aggregation_input(s.AggregationTriggerInputSerializer, request.data)
        execution = aggregation.aggregation_trigger(execution=execution, round_number=data["round"],
                                                    clients=data.get("clients"), wait_for_all=data["waitForAll"])
        # Where Celery runs eagerly the step may be over already: answer with what is true now.
        return respond(self._status(execution.pk), message="Manual aggregation step queued",
                       status_code=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=[EXECUTION_ID, OpenApiParameter(
        "round", OpenApiTypes.INT, description="Round whose aggregated model to download; default: the latest"),
        OpenApiParameter("format", OpenApiTypes.STR, enum=["npz", "pt", "pytorch", "onnx"],
                         description="npz (always), pt/pytorch, onnx (logistic, linear, mlp, cnn); h5 and tensorflow "
                                     "answer 422 naming the supported formats")],
        responses={(200, "application/octet-stream"): OpenApiResponse(
            OpenApiTypes.BINARY, description="The aggregated model; headers X-Checksum-SHA256, ETag, X-Model-Version"),
            **UNPROCESSABLE}, summary="Download an aggregated model")
    @action(detail=True, methods=["get"])
    def model(self, request, execution_id=None):
        from training.api.registry_views import model_file_response

        execution = self._execution(execution_id)
        number = request.query_params.get("round")
        if number is not None and not (number.isascii() and number.isdigit() and 0 < len(number) < 7):
            raise ValidationFailed("round must be a positive whole number", field="round", http_status=422)
        model_type = UPLOADED_APP if execution.upload_id else execution.model_type
        fmt = export.resolve_format(request.query_params.get("format"), model_type)
        checkpoints = Round.objects.filter(execution=execution).exclude(checkpoint="")
        round_obj = (checkpoints.filter(number=int(number)) if number else checkpoints.order_by("-number")).first()
        if round_obj is None:
            raise ValidationFailed(f"No aggregated model of round {number} is stored" if number else
                                   "No round of this execution has an aggregated model yet",
                                   field="round", http_status=422)
        with round_obj.checkpoint.open("rb") as fh:
            exported = export.export(fh.read(), model_type, fmt, name=execution.name or str(execution.pk))
        return model_file_response(request, exported, f"{execution.pk}-round-{round_obj.number:04d}", round_obj.number)
