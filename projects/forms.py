from django import forms

from projects.choices import DatasetTask, MemberAccess, ProjectStatus


class ProjectForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=5000)
    model_type = forms.CharField(max_length=100, required=False, help_text="For example cnn, mlp, logistic")
    dataset = forms.CharField(max_length=200, required=False, help_text="For example digits, breast_cancer")
    differential_privacy = forms.BooleanField(required=False)
    secure_aggregation = forms.BooleanField(required=False)

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("The name cannot be blank.")
        return name

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        configuration = {k: data[k] for k in ("model_type", "dataset") if data.get(k)}
        configuration["privacy_settings"] = {
            "differential_privacy": data["differential_privacy"],
            "secure_aggregation": data["secure_aggregation"],
        }
        return {"name": data["name"], "description": data["description"], "configuration": configuration}

    @classmethod
    def initial_for(cls, project) -> dict:
        conf = project.configuration or {}
        privacy = conf.get("privacy_settings") or {}
        return {
            "name": project.name,
            "description": project.description,
            "model_type": conf.get("model_type", ""),
            "dataset": conf.get("dataset", ""),
            "differential_privacy": bool(privacy.get("differential_privacy")),
            "secure_aggregation": bool(privacy.get("secure_aggregation")),
            "status": project.status,
        }


class ProjectEditForm(ProjectForm):
    status = forms.ChoiceField(choices=ProjectStatus.choices)

    def service_kwargs(self) -> dict:
        kwargs = super().service_kwargs()
        configuration = dict(self.project_configuration)
        configuration.update(kwargs["configuration"])
        kwargs["configuration"] = configuration
        kwargs["status"] = self.cleaned_data["status"]
        return kwargs

    def __init__(self, *args, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.project_configuration = (project.configuration or {}) if project else {}


class UploadForm(forms.Form):
    file = forms.FileField(label="Flower app (.zip)", help_text="pyproject.toml with [tool.flwr.app.components], "
                           "server_app.py, client_app.py and task.py", allow_empty_file=True)


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput(
        attrs={"placeholder": "Username", "aria-label": "Username of the new member"}))
    access = forms.ChoiceField(choices=MemberAccess.choices, widget=forms.Select(attrs={"aria-label": "Access"}))


class DatasetUploadForm(forms.Form):
    # Not required by the field itself: a file cut off at the size limit must say so, not "required".
    file = forms.FileField(label="CSV file", required=False, allow_empty_file=True,
                           help_text="UTF-8, a header row, numeric feature columns, at least 10 rows",
                           widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}))
    name = forms.CharField(max_length=200, required=False, help_text="Default: the file's name")
    target_column = forms.CharField(max_length=200, required=False, label="Target column",
                                    help_text="The column to predict; default: the last one")
    task = forms.ChoiceField(choices=[("", "Infer from the target"), *DatasetTask.choices], required=False)

    def __init__(self, *args, too_large: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.too_large = too_large

    def clean_file(self):
        if self.too_large:
            raise forms.ValidationError(self.too_large)
        file = self.cleaned_data.get("file")
        if not file:
            raise forms.ValidationError("Choose a CSV file.")
        return file

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        return {"file": data["file"], "name": data["name"], "target_column": data["target_column"] or None,
                "task": data["task"] or None}
