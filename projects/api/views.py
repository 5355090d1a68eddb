import uuid

from django.conf import settings
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from accounts.models import User
from core.api.envelope import respond
from core.api.permissions import RequiresPermission
from core.api.throttles import GeneralRateThrottle, UploadRateThrottle
from core.exceptions import ApplicationError, NotFound, ValidationFailed
from projects import selectors, services
from projects.api import serializers as s
from projects.datasets import install_size_cap, too_large_error
from projects.filters import ProjectDatasetFilterSet, ProjectFilterSet
from projects.models import Project, ProjectDataset

READ, WRITE = "read:projects", "write:projects"
# Room for the multipart boundaries and headers around the archive itself.
UPLOAD_ENVELOPE_ALLOWANCE = 64 * 1024


def _refuse_oversized_body(request, limit: int) -> None:
    """Answer 413 from the declared length, before a byte of an oversized body is read."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise ApplicationError("PAYLOAD_TOO_LARGE", f"The upload is {declared} bytes; at most {limit} are accepted",
                               details={"field": "file", "reason": "too_large", "limit": limit})


class ProjectViewSet(viewsets.GenericViewSet):
    """seed 000 Project Management: projects, their members and their Flower-app uploads."""

    serializer_class = s.ProjectSerializer
    permission_classes = [RequiresPermission]
    filterset_class = ProjectFilterSet
    lookup_value_regex = "[^/]+"
    required_permissions = {
        "list": READ, "retrieve": READ, "members": READ, "members:post": WRITE, "uploads": READ, "upload_detail": READ,
        "upload_download": READ,
        "create": WRITE, "update": WRITE, "partial_update": WRITE, "destroy": WRITE, "upload": WRITE,
        "member_detail": WRITE,
    }

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Project.objects.none()
        return selectors.project_list(user=self.request.user)

    def get_throttles(self):
        if self.action == "upload":
            return [UploadRateThrottle(), GeneralRateThrottle()]
        return super().get_throttles()

    def _project(self, *, for_write: bool = False):
        return selectors.project_get(user=self.request.user, project_id=self.kwargs["pk"], for_write=for_write)

    # ---- projects --------------------------------------------------------------------------------
    def filter_queryset(self, queryset):
        # Building a FilterSet costs more than the query itself; without filter parameters skip it.
        if not any(name in self.request.query_params for name in ProjectFilterSet.base_filters):
            return queryset
        return super().filter_queryset(queryset)

    def list(self, request):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(s.ProjectSerializer(page, many=True).data)

    @extend_schema(request=s.ProjectCreateInputSerializer, responses={201: s.ProjectSerializer})
    def create(self, request):
        data = s.ProjectCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_create(owner=request.user, **data.validated_data)
        project = selectors.project_get(user=request.user, project_id=project.pk)
        return respond(s.ProjectSerializer(project).data, message="Project created", status_code=201)

    def retrieve(self, request, pk=None):
        return respond(s.ProjectSerializer(self._project()).data, message="Project")

    @extend_schema(request=s.ProjectUpdateInputSerializer, responses={200: s.ProjectSerializer})
    def update(self, request, pk=None):
        return self._update(request, partial=False)

    @extend_schema(request=s.ProjectUpdateInputSerializer, responses={200: s.ProjectSerializer})
    def partial_update(self, request, pk=None):
        return self._update(request, partial=True)

    def _update(self, request, *, partial: bool):
        project = self._project(for_write=True)
        data = s.ProjectUpdateInputSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        services.project_update(project=project, **data.validated_data)
        project = selectors.project_get(user=request.user, project_id=project.pk)
        return respond(s.ProjectSerializer(project).data, message="Project updated")

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        services.project_delete(project=self._project(for_write=True))
        return Response(status=status.HTTP_204_NO_CONTENT)

    # ---- uploads ---------------------------------------------------------------------------------
    @extend_schema(request={"multipart/form-data": s.ProjectUploadInputSerializer},
                   responses={201: s.ProjectUploadSerializer})
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def upload(self, request, pk=None):
        project = self._project(for_write=True)
        _refuse_oversized_body(request, settings.UPLOAD_MAX_ARCHIVE_BYTES + UPLOAD_ENVELOPE_ALLOWANCE)
        data = s.ProjectUploadInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = services.project_upload(project=project, uploaded_by=request.user, file=data.validated_data["file"])
        return respond(s.ProjectUploadSerializer(upload).data, message="Flower app uploaded and validated",
                        status_code=201)

    @extend_schema(responses={200: s.ProjectUploadSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def uploads(self, request, pk=None):
        project = self._project()
        page = self.paginate_queryset(selectors.project_uploads(project=project))
        return self.get_paginated_response(s.ProjectUploadSerializer(page, many=True).data)

    @extend_schema(responses={200: s.ProjectUploadSerializer})
    @action(detail=True, methods=["get"], url_path=r"uploads/(?P<upload_id>[0-9a-f-]{36})")
    def upload_detail(self, request, pk=None, upload_id=None):
        upload = selectors.project_upload_get(project=self._project(), upload_id=upload_id)
        return respond(s.ProjectUploadSerializer(upload).data, message="Upload")

    @extend_schema(responses={(200, "application/zip"): bytes})
    @action(detail=True, methods=["get"], url_path=r"uploads/(?P<upload_id>[0-9a-f-]{36})/download")
    def upload_download(self, request, pk=None, upload_id=None):
        upload = selectors.project_upload_get(project=self._project(), upload_id=upload_id)
        response = FileResponse(upload.archive.open("rb"), as_attachment=True, filename=upload.original_name,
                                content_type="application/zip")
        response["X-Checksum-SHA256"] = upload.checksum
        return response

    # ---- members ---------------------------------------------------------------------------------
    @extend_schema(methods=["GET"], responses={200: s.ProjectMemberSerializer(many=True)})
    @extend_schema(methods=["POST"], request=s.ProjectMemberInputSerializer, responses={201: s.ProjectMemberSerializer})
    @action(detail=True, methods=["get", "post"])
    def members(self, request, pk=None):
        if request.method == "GET":
            project = self._project()
            page = self.paginate_queryset(selectors.project_members(project=project))
            return self.get_paginated_response(s.ProjectMemberSerializer(page, many=True).data)
        project = self._project(for_write=True)
        data = s.ProjectMemberInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        lookup = {"pk": data.validated_data["user_id"]} if data.validated_data.get("user_id") else {
            "username__iexact": data.validated_data["username"]}
        user = User.objects.filter(is_active=True, **lookup).first()
        if user is None:
            raise NotFound("User not found")
        member = services.project_member_set(project=project, user=user, access=data.validated_data["access"])
        return respond(s.ProjectMemberSerializer(member).data, message="Member saved", status_code=201)

    @extend_schema(responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"members/(?P<user_id>[0-9a-f-]{36})")
    def member_detail(self, request, pk=None, user_id=None):
        project = self._project(for_write=True)
        try:
            user = User.objects.filter(pk=uuid.UUID(user_id)).first()
        except ValueError:
            user = None
        if user is None or not project.memberships.filter(user=user).exists():
            raise NotFound("Member not found")
        services.project_member_remove(project=project, user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _input_error(errors: dict) -> ValidationFailed:
    """A form field's error in the data-set upload's shape: 422 naming the field."""
    field, messages = next(iter(errors.items()))
    message = str(messages[0]) if isinstance(messages, list) and messages else str(messages)
    return ValidationFailed(f"{field}: {message}", details={"field": field, "reason": message}, http_status=422)


@extend_schema(parameters=[OpenApiParameter("project_pk", OpenApiTypes.UUID, OpenApiParameter.PATH,
                                            description="The project's id")])
class ProjectDatasetViewSet(viewsets.GenericViewSet):
    """CSV data sets of a project: uploaded and validated, listed, previewed, downloaded, deleted."""

    serializer_class = s.ProjectDatasetSerializer
    permission_classes = [RequiresPermission]
    filterset_class = ProjectDatasetFilterSet
    lookup_url_kwarg = "dataset_id"
    lookup_value_regex = "[^/]+"
    required_permissions = {"list": READ, "retrieve": READ, "preview": READ, "download": READ,
                            "create": WRITE, "destroy": WRITE}

    def initialize_request(self, request, *args, **kwargs):
        request = super().initialize_request(request, *args, **kwargs)
        if self.action == "create":
            # Before anything reads the body: a file past the limit stops the multipart parser.
            self.size_cap = install_size_cap(request._request)
        return request

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ProjectDataset.objects.none()
        return selectors.project_datasets(project=self._project())

    def get_throttles(self):
        if self.action == "create":
            return [UploadRateThrottle(), GeneralRateThrottle()]
        return super().get_throttles()

    def _project(self, *, for_write: bool = False):
        return selectors.project_get(user=self.request.user, project_id=self.kwargs["project_pk"],
                                     for_write=for_write)

    def _dataset(self, *, for_write: bool = False):
        return selectors.project_dataset_get(project=self._project(for_write=for_write),
                                             dataset_id=self.kwargs["dataset_id"])

    def list(self, request, project_pk=None):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.ProjectDatasetSerializer(page, many=True).data)

    @extend_schema(request={"multipart/form-data": s.ProjectDatasetUploadInputSerializer},
                   responses={201: s.ProjectDatasetSerializer})
    def create(self, request, project_pk=None):
        project = self._project(for_write=True)
        _refuse_oversized_body(request, settings.PROJECT_DATASET_MAX_BYTES + UPLOAD_ENVELOPE_ALLOWANCE)
        data = s.ProjectDatasetUploadInputSerializer(data=request.data)
        valid = data.is_valid()
        if self.size_cap.exceeded:
            raise too_large_error()
        if not valid:
            raise _input_error(data.errors)
        dataset = services.project_dataset_create(project=project, uploaded_by=request.user, **data.validated_data)
        return respond(s.ProjectDatasetSerializer(dataset).data, message="Data set uploaded and validated",
                       status_code=201)

    def retrieve(self, request, project_pk=None, dataset_id=None):
        return respond(s.ProjectDatasetSerializer(self._dataset()).data, message="Data set")

    @extend_schema(responses={204: None})
    def destroy(self, request, project_pk=None, dataset_id=None):
        services.project_dataset_delete(dataset=self._dataset(for_write=True))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={200: s.ProjectDatasetPreviewSerializer})
    @action(detail=True, methods=["get"])
    def preview(self, request, project_pk=None, dataset_id=None):
        return respond(selectors.dataset_preview(dataset=self._dataset()), message="Data set preview")

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def download(self, request, project_pk=None, dataset_id=None):
        dataset = self._dataset()
        response = FileResponse(dataset.file.open("rb"), as_attachment=True, filename=dataset.original_name,
                                content_type="text/csv")
        response["X-Checksum-SHA256"] = dataset.sha256
        return response
