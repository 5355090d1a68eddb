"""The model registry API: seed 004 Model Management under ``/fl/models`` and Model Operations
under ``/models``.

Views are thin: reads through ``training.registry.selectors`` (someone else's model is 404),
writes through ``training.registry.services``, files through ``training.export``. Model ids are
UUIDs in the routes, so that other ``/models/{...}`` paths can share the prefix.
"""

import re

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from core.api.envelope import respond
from core.exceptions import ValidationFailed
from training import export
from training import metrics as metric_reads
from training import selectors as execution_selectors
from training import services as execution_services
from training.api import registry_serializers as rs
from training.api import serializers as s
from training.api.views import ACCEPTED, CONFLICT, CONTROL, START, UNPROCESSABLE, _stop_status, _TrainingViewSet
from training.models import ModelVersion, RegisteredModel, Round
from training.registry import selectors, services
from training.registry.filters import RegisteredModelFilterSet

# seed 000 project strings, seed 004 model strings (``ml_engineer`` holds ``model:*``) and the
# execution ones, since a model is what an execution trains.
READ = ("read:projects", "model:read", "execution:read")
METRICS_READ = (*READ, "view:metrics", "metric:read")
DOWNLOAD = (*READ, "model:download")
WRITE = ("write:projects", "model:write", "model:create", "model:update")
DELETE = (*WRITE, "model:delete")
AGGREGATE = (*WRITE, "fl:models:aggregate")

UUID_PATTERN = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
MODEL_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Model id")
VERSION_NUMBER = OpenApiParameter("version", OpenApiTypes.INT, OpenApiParameter.PATH,
                                  description="Version number (= round number)")
EVALUATION_ID = OpenApiParameter("evaluation_id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                                 description="Evaluation id")
REPORT_VERSION = OpenApiParameter("version", OpenApiTypes.INT, description="Version number; default: the current")
BIAS_THRESHOLD = OpenApiParameter("threshold", OpenApiTypes.NUMBER,
                                  description="A class or node this far from the whole is flagged (default 0.1)")
DOWNLOAD_QUERY = [
    OpenApiParameter("version", OpenApiTypes.INT, description="Version number; default: the current version"),
    OpenApiParameter("format", OpenApiTypes.STR, enum=["npz", "pt", "pytorch", "onnx"],
                     description="npz (always), pt/pytorch, onnx (logistic, linear, mlp, cnn); default npz"),
    OpenApiParameter("X-Checksum-SHA256", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[200],
                     description="SHA-256 of the file, hex (also the ETag)"),
]
_ERROR = {"$ref": "#/components/schemas/ErrorEnvelope"}
FORMAT_ERROR = {422: OpenApiResponse(_ERROR, description="A format this model has no form in "
                                                         "(INVALID_MODEL_FORMAT; details.supported lists them)")}
EXISTS = {409: OpenApiResponse(_ERROR, description="The execution's model is registered already "
                                                   "(RESOURCE_CONFLICT; details.model_id)")}


def _number(raw, field: str) -> int | None:
    """An optional positive whole number from a query string (422 naming ``field`` otherwise)."""
    if raw in (None, ""):
        return None
    if not (re.fullmatch(r"[0-9]{1,7}", str(raw)) and 1 <= int(raw) <= rs.MAX_VERSION):
        raise ValidationFailed(f"{field} must be a whole number from 1 to {rs.MAX_VERSION}", field=field,
                               http_status=422)
    return int(raw)


class _RegistryViewSet(_TrainingViewSet):
    serializer_class = rs.RegisteredModelSerializer
    filterset_class = RegisteredModelFilterSet
    lookup_value_regex = UUID_PATTERN
    # The model each action lists, for the schema (its filters and path parameter types).
    _action_models = {"versions": ModelVersion, "version_detail": ModelVersion, "training_history": Round}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self._action_models.get(self.action, RegisteredModel).objects.none()
        return selectors.model_list(user=self.request.user)

    def perform_content_negotiation(self, request, force=False):
        # A model file is answered as a file whatever the client says it accepts (and ``?format=``
        # names the file's format, not a renderer).
        return super().perform_content_negotiation(request, force=force or self.action == "download")

    def _model(self, pk, *, for_write: bool = False) -> RegisteredModel:
        return selectors.model_get(user=self.request.user, model_id=pk, for_write=for_write)

    def _model_data(self, pk) -> dict:
        return rs.RegisteredModelSerializer(self._model(pk)).data

    def _versions_page(self, model: RegisteredModel):
        page = self.paginate_queryset(selectors.model_versions(model=model))
        return self.get_paginated_response(rs.ModelVersionSerializer(page, many=True, context={"model": model}).data)

    # ---- shared by /fl/models and /models -------------------------------------------------------------
    @extend_schema(responses={200: rs.RegisteredModelSerializer(many=True)})
    def list(self, request):
        return self._page(self.filter_queryset(self.get_queryset()), rs.RegisteredModelSerializer)

    @extend_schema(parameters=[MODEL_ID], responses={200: rs.RegisteredModelSerializer})
    def retrieve(self, request, pk=None):
        return respond(self._model_data(pk), message="Model")

    @extend_schema(request=rs.ModelRegisterInputSerializer,
                   responses={201: rs.RegisteredModelSerializer, **EXISTS, **UNPROCESSABLE},
                   description="Registers the model of an execution (one per execution; a finished round "
                               "registers it by itself) and publishes its completed rounds as versions.")
    def create(self, request):
        data = rs.registry_input(rs.ModelRegisterInputSerializer, request.data)
        execution = execution_selectors.execution_get(user=request.user, execution_id=data["execution_id"],
                                                      for_write=True)
        model = services.model_register(execution=execution, user=request.user, name=data["name"],
                                        description=data["description"])
        return respond(self._model_data(model.pk), message="Model registered", status_code=status.HTTP_201_CREATED)

    @extend_schema(parameters=[MODEL_ID, *DOWNLOAD_QUERY], responses={
        (200, "application/octet-stream"): OpenApiResponse(
            OpenApiTypes.BINARY, description="The version's model file; headers X-Checksum-SHA256 and ETag"),
        304: OpenApiResponse(description="Not modified (If-None-Match matched the ETag)"),
        **FORMAT_ERROR}, summary="Download a model version",
        description="The version (default: the current one) as a file: ``npz`` is the round's checkpoint as "
                    "stored; ``pt`` a PyTorch state dict (named tensors for the numpy models); ``onnx`` takes "
                    "standardised features as ``input``. Any other format is 422 INVALID_MODEL_FORMAT.")
    @action(detail=True, methods=["get"], filterset_class=None, url_name="download")
    def download(self, request, pk=None):
        model = self._model(pk)
        fmt = export.resolve_format(request.query_params.get("format"), model.model_type)
        number = _number(request.query_params.get("version"), "version")
        version = (selectors.version_get(model=model, number=number) if number is not None
                   else model.current_version)
        if version is None:
            raise ValidationFailed("This model has no published version yet", field="version", http_status=422)
        exported = export.export(services.version_weights(version), model.model_type, fmt, name=model.name)
        return model_file_response(request, exported, f"{model.pk}-v{version.number:04d}", version.number)


def model_file_response(request, exported: export.ModelFile, stem: str, version: int) -> HttpResponse:
    """A model file with its checksum as ETag (304 when the client has it) and its version."""
    etag = f'"{exported.checksum}"'
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponse(status=status.HTTP_304_NOT_MODIFIED)
    else:
        response = HttpResponse(exported.content, content_type=exported.content_type)
        response["Content-Disposition"] = f'attachment; filename="{stem}.{exported.format}"'
    response["ETag"] = etag
    response["X-Checksum-SHA256"] = exported.checksum
    response["X-Model-Version"] = str(version)
    return response


# ---- /fl/models (seed 004 Model Management) --------------------------------------------------------

class FlModelViewSet(_RegistryViewSet):
    """seed 004 Federated Learning "Model Management": each execution's aggregated models."""

    required_permissions = {"list": READ, "retrieve": READ, "versions": READ, "download": DOWNLOAD,
                            "create": WRITE, "aggregate": AGGREGATE}

    @extend_schema(parameters=[MODEL_ID], responses={200: rs.ModelVersionSerializer(many=True)})
    @action(detail=True, methods=["get"], filterset_class=None)
    def versions(self, request, pk=None):
        return self._versions_page(self._model(pk))

    @extend_schema(parameters=[MODEL_ID], request=None, responses={200: rs.ModelAggregateSerializer},
                   summary="Aggregate model",
                   description="Publishes every completed round of the model's execution as a version (again): "
                               "idempotent, and the way to pick up rounds that were not published.")
    @action(detail=True, methods=["post"], filterset_class=None)
    def aggregate(self, request, pk=None):
        model = self._model(pk, for_write=True)
        versions, created = services.model_aggregate(model=model)
        model = self._model(pk)
        return respond({"model": rs.RegisteredModelSerializer(model).data, "published": created,
                        "versions": rs.ModelVersionSerializer(versions, many=True, context={"model": model}).data},
                       message=f"{len(versions)} versions, {created} new")


# ---- /models (seed 004 Model Operations) -----------------------------------------------------------

class RegisteredModelViewSet(_RegistryViewSet):
    """seed 004 "Model Operations": models, their versions, training and performance."""

    training_actions = ("train", "evaluate")
    required_permissions = {
        "list": READ, "retrieve": READ, "versions:get": READ, "version_detail:get": READ, "download": DOWNLOAD,
        "training_status": READ, "training_history": READ, "evaluation_detail": READ,
        "performance": METRICS_READ, "validation": METRICS_READ, "bias": METRICS_READ,
        "create": WRITE, "update": WRITE, "partial_update": WRITE, "destroy": DELETE, "versions:post": WRITE,
        "version_detail:put": WRITE, "rollback": WRITE, "evaluate": WRITE,
        "train": START, "stop_training": CONTROL,
    }

    # ---- the model ---------------------------------------------------------------------------------
    @extend_schema(parameters=[MODEL_ID], request=rs.ModelUpdateInputSerializer,
                   responses={200: rs.RegisteredModelSerializer, **UNPROCESSABLE})
    def update(self, request, pk=None):
        return self._edit(request, pk, rs.ModelUpdateInputSerializer)

    @extend_schema(parameters=[MODEL_ID], request=rs.ModelPatchInputSerializer,
                   responses={200: rs.RegisteredModelSerializer, **UNPROCESSABLE})
    def partial_update(self, request, pk=None):
        return self._edit(request, pk, rs.ModelPatchInputSerializer)

    def _edit(self, request, pk, serializer_class):
        model = self._model(pk, for_write=True)
        data = rs.registry_input(serializer_class, request.data)
        services.model_update(model=model, name=data.get("name"), description=data.get("description"))
        return respond(self._model_data(pk), message="Model updated")

    @extend_schema(parameters=[MODEL_ID], responses={204: None},
                   description="Removes the registry entry and its versions; the execution, its rounds and "
                               "checkpoints stay.")
    def destroy(self, request, pk=None):
        services.model_delete(model=self._model(pk, for_write=True))
        return Response(status=status.HTTP_204_NO_CONTENT)

    # ---- versions -----------------------------------------------------------------------------------
    @extend_schema(methods=["GET"], parameters=[MODEL_ID], responses={200: rs.ModelVersionSerializer(many=True)})
    @extend_schema(methods=["POST"], parameters=[MODEL_ID], request=rs.VersionCreateInputSerializer,
                   responses={201: rs.ModelVersionSerializer, 200: rs.ModelVersionSerializer, **UNPROCESSABLE},
                   description="Publishes a chosen round of the model's execution as a version (201; 200 when "
                               "it was published already, refreshed from the round).")
    @action(detail=True, methods=["get", "post"], filterset_class=None)
    def versions(self, request, pk=None):
        if request.method == "GET":
            return self._versions_page(self._model(pk))
        model = self._model(pk, for_write=True)
        data = rs.registry_input(rs.VersionCreateInputSerializer, request.data)
        version, created = services.version_create(model=model, round_number=data["round"])
        return respond(rs.ModelVersionSerializer(version, context={"model": self._model(pk)}).data,
                       message="Version created" if created else "Version refreshed",
                       status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(methods=["GET"], parameters=[MODEL_ID, VERSION_NUMBER], responses={200: rs.ModelVersionSerializer})
    @extend_schema(methods=["PUT"], parameters=[MODEL_ID, VERSION_NUMBER],
                   request=rs.VersionUpdateInputSerializer,
                   responses={200: rs.ModelVersionSerializer, **UNPROCESSABLE},
                   description="Changes a version's description, tags or status.")
    @action(detail=True, methods=["get", "put"], url_path=r"versions/(?P<version>[^/]+)",
            filterset_class=None)
    def version_detail(self, request, pk=None, version=None):
        model = self._model(pk, for_write=request.method != "GET")
        version_obj = selectors.version_get(model=model, number=version)
        if request.method != "GET":
            data = rs.registry_input(rs.VersionUpdateInputSerializer, request.data)
            version_obj = services.version_update(version=version_obj, **data)
        return respond(rs.ModelVersionSerializer(version_obj, context={"model": model}).data, message="Model version")

    @extend_schema(parameters=[MODEL_ID], request=rs.ModelRollbackInputSerializer,
                   responses={200: rs.RegisteredModelSerializer, **UNPROCESSABLE},
                   description="Makes ``version`` current. Newer versions become ``rolled_back`` and the model "
                               "stays there while new rounds publish, until a rollback to the newest version. "
                               "Sends ``model.rolled_back``.")
    @action(detail=True, methods=["post"], filterset_class=None)
    def rollback(self, request, pk=None):
        model = self._model(pk, for_write=True)
        data = rs.registry_input(rs.ModelRollbackInputSerializer, request.data)
        services.model_rollback(model=model, number=data["version"], user=request.user, reason=data["reason"])
        return respond(self._model_data(pk), message=f"Model rolled back to version {data['version']}")

    # ---- training -----------------------------------------------------------------------------------
    @extend_schema(parameters=[MODEL_ID], request=rs.ModelTrainInputSerializer,
                   responses={202: OpenApiResponse(rs.ModelTrainingStatusSerializer, description=ACCEPTED),
                              **UNPROCESSABLE},
                   description="Starts a new execution with the configuration of the model's own (changed by "
                               "``config``); its rounds register a model of their own.")
    @action(detail=True, methods=["post"], filterset_class=None)
    def train(self, request, pk=None):
        model = self._model(pk, for_write=True)
        data = rs.registry_input(rs.ModelTrainInputSerializer, request.data)
        execution = services.model_train(model=model, user=request.user, name=data["name"], config=data["config"])
        model = self._model(pk)
        return respond(rs.ModelTrainingStatusSerializer.build(model, execution_selectors.execution_get(
            user=request.user, execution_id=execution.pk)), message="Training queued",
            status_code=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=[MODEL_ID], responses={200: rs.ModelTrainingStatusSerializer})
    @action(detail=True, methods=["get"], url_path="training-status", filterset_class=None)
    def training_status(self, request, pk=None):
        model = self._model(pk)
        execution = selectors.training_execution(model=model)
        return respond(rs.ModelTrainingStatusSerializer.build(model, execution), message="Training status")

    @extend_schema(parameters=[MODEL_ID], request=rs.ModelStopInputSerializer,
                   responses={200: rs.ModelTrainingStatusSerializer,
                              202: OpenApiResponse(rs.ModelTrainingStatusSerializer, description=ACCEPTED),
                              **CONFLICT, **UNPROCESSABLE},
                   description="Stops the model's training execution: at once when it waits (200), after the "
                               "current round when it runs (202).")
    @action(detail=True, methods=["post"], url_path="stop-training", filterset_class=None)
    def stop_training(self, request, pk=None):
        model = self._model(pk, for_write=True)
        data = rs.registry_input(rs.ModelStopInputSerializer, request.data)
        execution = execution_services.execution_stop(execution=selectors.training_execution(model=model),
                                                      reason=data["reason"], save_checkpoint=data["save_checkpoint"])
        execution = selectors.training_execution(model=model)
        return respond(rs.ModelTrainingStatusSerializer.build(model, execution), message="Stop requested",
                       status_code=_stop_status(execution))

    @extend_schema(parameters=[MODEL_ID], responses={200: s.RoundSerializer(many=True)},
                   description="The rounds of the model's execution.")
    @action(detail=True, methods=["get"], url_path="training-history", filterset_class=None)
    def training_history(self, request, pk=None):
        model = self._model(pk)
        return self._page(execution_selectors.execution_rounds(execution=model.execution), s.RoundSerializer)

    # ---- performance --------------------------------------------------------------------------------
    @extend_schema(parameters=[MODEL_ID], responses={200: rs.ModelPerformanceSerializer})
    @action(detail=True, methods=["get"], filterset_class=None)
    def performance(self, request, pk=None):
        model = self._model(pk)
        versions = list(selectors.model_versions(model=model))
        evaluations = selectors.model_evaluations(model=model)[:5]
        return respond(rs.ModelPerformanceSerializer.build(model, versions, evaluations), message="Model performance")

    def _report(self, request, pk, compute, message, **options):
        model = self._model(pk)
        number = _number(request.query_params.get("version"), "version")
        version = selectors.version_get(model=model, number=number) if number is not None else model.current_version
        execution = model.execution
        report = compute(execution, round_number=version.number if version else None, **options)
        return respond({"model_id": str(model.pk), "execution_id": str(execution.pk),
                        "version": version.number if version else None, "report": report}, message=message)

    @extend_schema(parameters=[MODEL_ID, REPORT_VERSION], responses={200: rs.ModelReportSerializer})
    @action(detail=True, methods=["get"], filterset_class=None)
    def validation(self, request, pk=None):
        return self._report(request, pk, metric_reads.validation_scores, "Validation results")

    @extend_schema(parameters=[MODEL_ID, REPORT_VERSION, BIAS_THRESHOLD], responses={200: rs.ModelReportSerializer})
    @action(detail=True, methods=["get"], filterset_class=None)
    def bias(self, request, pk=None):
        raw = request.query_params.get("threshold")
        options = {}
        if raw not in (None, ""):
            try:
                options["threshold"] = float(raw)
            except ValueError:
                raise ValidationFailed("threshold must be a number", field="threshold", http_status=422)
        return self._report(request, pk, metric_reads.bias_report, "Bias analysis", **options)

    @extend_schema(parameters=[MODEL_ID], request=rs.ModelEvaluateInputSerializer,
                   responses={202: OpenApiResponse(rs.ModelEvaluationSerializer, description=ACCEPTED),
                              **UNPROCESSABLE},
                   description="Evaluates a version on the held-out test split of a bundled data set in a worker; "
                               "read the result at ``evaluations/{evaluation_id}``. 422 FL006 when the data set "
                               "does not fit the model, or the model comes from an uploaded Flower app.")
    @action(detail=True, methods=["post"], filterset_class=None)
    def evaluate(self, request, pk=None):
        model = self._model(pk, for_write=True)
        data = rs.registry_input(rs.ModelEvaluateInputSerializer, request.data)
        evaluation = services.evaluation_request(model=model, user=request.user, version_number=data.get("version"),
                                                 dataset=data.get("dataset") or None)
        # Where Celery runs eagerly the evaluation may be over already: answer with what is true now.
        evaluation = selectors.evaluation_get(model=model, evaluation_id=evaluation.pk)
        return respond(rs.ModelEvaluationSerializer(evaluation).data, message="Evaluation queued",
                       status_code=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=[MODEL_ID, EVALUATION_ID], responses={200: rs.ModelEvaluationSerializer})
    @action(detail=True, methods=["get"], url_path=r"evaluations/(?P<evaluation_id>[^/]+)", filterset_class=None)
    def evaluation_detail(self, request, pk=None, evaluation_id=None):
        evaluation = selectors.evaluation_get(model=self._model(pk), evaluation_id=evaluation_id)
        return respond(rs.ModelEvaluationSerializer(evaluation).data, message="Model evaluation")
