"""The dashboard pages for projects. Same selectors, services and FilterSet as the API."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import User
from core.exceptions import ApplicationError
from core.permissions import has_permission
from projects import selectors, services
from projects.filters import ProjectFilterSet
from projects.forms import MemberForm, ProjectEditForm, ProjectForm, UploadForm

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


@login_required
def project_detail(request, pk):
    _require_page(request, "read:projects")
    project = _project_or_404(request, pk)
    can_write = _may(request.user, "write:projects") and selectors.can_write(request.user, project)
    return render(request, "projects/detail.html", {
        "project": project,
        "uploads": selectors.project_uploads(project=project)[:20],
        "members": selectors.project_members(project=project),
        "can_write": can_write,
        "upload_form": UploadForm(),
        "member_form": MemberForm(),
    })


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
