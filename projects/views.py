"""The dashboard pages for projects. Same selectors, services and FilterSet as the API."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import User
from core.exceptions import ApplicationError
from core.permissions import has_permission
from projects import selectors, services
from projects.filters import ProjectFilterSet
from projects.datasets import install_size_cap, too_large_error
from projects.forms import DatasetUploadForm, MemberForm, ProjectEditForm, ProjectForm, UploadForm

PAGE_SIZE = 20


def _may(user, permission: str) -> bool:
    return has_permission(user.permission_strings, permission)


def _form_error(form, exc: ApplicationError):
    details = exc.details if isinstance(exc.details, dict) else {}
    field = details.get("field")
    form.add_error(field if field in form.fields else None, exc.message)


@login_required
def dashboard(request):
    user = request.user
    can_read = _may(user, "read:projects")
    projects = selectors.project_list(user=user) if can_read else None
    return render(request, "projects/dashboard.html", {
        "can_read": can_read,
        "can_write": _may(user, "write:projects"),
        "project_count": projects.count() if can_read else 0,
        "recent_projects": list(projects[:5]) if can_read else [],
        "recent_uploads": list(selectors.recent_uploads(user=user)[:5]) if can_read else [],
    })


@login_required
def project_list(request):
    _require_page(request, "read:projects")
    filterset = ProjectFilterSet(request.GET, queryset=selectors.project_list(user=request.user))
    queryset = filterset.qs if filterset.is_valid() else selectors.project_list(user=request.user).none()
    page = Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "projects/list.html", {
        "filterset": filterset, "page": page, "query": query.urlencode(),
        "can_write": _may(request.user, "write:projects"),
    })


def _require_page(request, permission):
    if not _may(request.user, permission):
        from django.core.exceptions import PermissionDenied

        raise PermissionDenied(f"You need the permission {permission!r}")


@login_required
@require_http_methods(["GET", "POST"])
def project_create(request):
    _require_page(request, "write:projects")
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = services.project_create(owner=request.user, **form.service_kwargs())
        except ApplicationError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, f"Project “{project.name}” created.")
            return redirect("project-detail", pk=project.pk)
    return render(request, "projects/form.html", {"form": form, "title": "New project"})


def _project_or_404(request, pk, *, for_write=False):
    from django.http import Http404

    try:
        return selectors.project_get(user=request.user, project_id=pk, for_write=for_write)
    except ApplicationError as exc:
        if exc.code == "RESOURCE_NOT_FOUND":
            raise Http404("Project not found")
        from django.core.exceptions import PermissionDenied

        raise PermissionDenied(exc.message)


def _detail_context(request, project, dataset_form=None) -> dict:
    can_write = _may(request.user, "write:projects") and selectors.can_write(request.user, project)
    return {
        "project": project,
        "uploads": selectors.project_uploads(project=project)[:20],
        "datasets": selectors.project_datasets(project=project)[:20],
        "members": selectors.project_members(project=project),
        "can_write": can_write,
        "upload_form": UploadForm(),
        "member_form": MemberForm(),
        "dataset_form": dataset_form or DatasetUploadForm(),
    }


@login_required
def project_detail(request, pk):
    _require_page(request, "read:projects")
    project = _project_or_404(request, pk)
    return render(request, "projects/detail.html", _detail_context(request, project))


@login_required
@require_http_methods(["GET", "POST"])
def project_edit(request, pk):
    _require_page(request, "write:projects")
    project = _project_or_404(request, pk, for_write=True)
    form = ProjectEditForm(request.POST or None, initial=ProjectForm.initial_for(project), project=project)
    if request.method == "POST" and form.is_valid():
        try:
            services.project_update(project=project, **form.service_kwargs())
        except ApplicationError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, "Project saved.")
            return redirect("project-detail", pk=project.pk)
    return render(request, "projects/form.html", {"form": form, "title": f"Edit {project.name}", "project": project})


@login_required
@require_http_methods(["GET", "POST"])
def project_upload(request, pk):
    _require_page(request, "write:projects")
    project = _project_or_404(request, pk, for_write=True)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            upload = services.project_upload(project=project, uploaded_by=request.user, file=form.cleaned_data["file"])
        except ApplicationError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, f"Uploaded {upload.original_name}: {len(upload.files)} files, valid.")
            return redirect("project-detail", pk=project.pk)
    return render(request, "projects/upload.html", {"form": form, "project": project})


@login_required
@require_POST
def project_delete(request, pk):
    _require_page(request, "write:projects")
    project = _project_or_404(request, pk, for_write=True)
    services.project_delete(project=project)
    messages.success(request, f"Project “{project.name}” deleted.")
    return redirect("project-list")


@login_required
@require_POST
def project_member_add(request, pk):
    _require_page(request, "write:projects")
    project = _project_or_404(request, pk, for_write=True)
    form = MemberForm(request.POST)
    if form.is_valid():
        user = User.objects.filter(username__iexact=form.cleaned_data["username"], is_active=True).first()
        if user is None:
            messages.error(request, f"No user named {form.cleaned_data['username']}.")
        else:
            try:
                services.project_member_set(project=project, user=user, access=form.cleaned_data["access"])
            except ApplicationError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, f"{user.username} can now {form.cleaned_data['access']} this project.")
    else:
        messages.error(request, "Give a username and an access level.")
    return redirect("project-detail", pk=project.pk)


@login_required
@require_POST
@csrf_exempt
def project_dataset_upload(request, pk):
    # The size cap must be in place before the CSRF check reads the body; the check runs next.
    cap = install_size_cap(request)
    return _project_dataset_upload(request, pk, cap)


@csrf_protect
def _project_dataset_upload(request, pk, cap):
    _require_page(request, "write:projects")
    project = _project_or_404(request, pk, for_write=True)
    form = DatasetUploadForm(request.POST, request.FILES, too_large=too_large_error().message if cap.exceeded else "")
    if form.is_valid():
        try:
            dataset = services.project_dataset_create(project=project, uploaded_by=request.user,
                                                      **form.service_kwargs())
        except ApplicationError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, f"Data set “{dataset.name}” uploaded: {dataset.rows} rows, {dataset.task}.")
            return redirect("project-dataset-detail", pk=project.pk, dataset_id=dataset.pk)
    return render(request, "projects/detail.html", _detail_context(request, project, dataset_form=form))


@login_required
def project_dataset_detail(request, pk, dataset_id):
    _require_page(request, "read:projects")
    project = _project_or_404(request, pk)
    dataset = _dataset_or_404(project, dataset_id)
    return render(request, "projects/dataset_detail.html", {
        "project": project, "dataset": dataset, "preview": selectors.dataset_preview(dataset=dataset),
        "can_write": _may(request.user, "write:projects") and selectors.can_write(request.user, project),
    })


@login_required
@require_POST
def project_dataset_delete(request, pk, dataset_id):
    _require_page(request, "write:projects")
    project = _project_or_404(request, pk, for_write=True)
    dataset = _dataset_or_404(project, dataset_id)
    try:
        services.project_dataset_delete(dataset=dataset)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("project-dataset-detail", pk=project.pk, dataset_id=dataset.pk)
    messages.success(request, f"Data set “{dataset.name}” deleted.")
    return redirect("project-detail", pk=project.pk)


def _dataset_or_404(project, dataset_id):
    from django.http import Http404

    try:
        return selectors.project_dataset_get(project=project, dataset_id=dataset_id)
    except ApplicationError:
        raise Http404("Data set not found")
