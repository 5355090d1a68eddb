"""The start-training form. It only shapes input: ``parse_training_config`` (through
``execution_start``) is the one validator of ranges and names, and its errors come back to the
field they are about through ``TrainingStartForm.add_service_error``."""

import json

from django import forms

from core.exceptions import ApplicationError
from training.choices import Transport
from training.config import FIELDS, PARTITIONS
from training.engine.datasets import BUILTIN_DATASETS
from training.engine.models import SUPPORTED_MODELS
from training.engine.strategies import STRATEGIES

# The numeric parameters the form offers, in the order it shows them; ranges come from config.FIELDS.
NUMBER_FIELDS = ("rounds", "clients", "min_clients", "local_epochs", "batch_size", "learning_rate", "alpha", "seed")
NUMBER_HELP = {
    "min_clients": "Fewest nodes a round needs; empty: 2 (or 1 for a single node)",
    "alpha": "Dirichlet concentration; only used by the dirichlet partition (smaller is more skewed)",
    "seed": "Same seed, same partitions and initial model",
}
PARTITION_LABELS = {"iid": "IID (shuffled, equal shares)", "dirichlet": "Dirichlet (label skew, uses alpha)",
                    "shards": "Shards (few labels per node)"}


def _bounds(name: str) -> dict:
    kind, default, lo, hi = FIELDS[name]
    attrs = {}
    if lo is not None:
        attrs["min"] = lo
    if hi is not None:
        attrs["max"] = hi
    if kind is float:
        attrs["step"] = "any"
    return attrs


def _number_field(name: str) -> forms.Field:
    kind, default, _, _ = FIELDS[name]
    field_class = forms.IntegerField if kind is int else forms.FloatField
    # No min/max on the form field: the service's parser checks them and names the field.
    return field_class(required=default is not None, initial=default, help_text=NUMBER_HELP.get(name, ""),
                       label=name.replace("_", " ").capitalize(),
                       widget=forms.NumberInput(attrs=_bounds(name)))


def _param_range(param) -> str:
    if param.choices is not None:
        return "one of " + ", ".join(map(str, param.choices))
    low = "" if param.minimum is None else (f"> {param.minimum}" if param.exclusive_minimum else f"≥ {param.minimum}")
    high = "" if param.maximum is None else f"≤ {param.maximum}"
    return ", ".join(p for p in (low, high) if p)


def algorithm_catalogue() -> list[dict]:
    """Each algorithm with its description and parameters, for the form's reference list."""
    return [
        {"name": name, "description": spec.description,
         "params": [{"name": p, "type": param.kind.__name__, "range": _param_range(param),
                     "required": p in spec.required} for p, param in spec.params.items()]}
        for name, spec in STRATEGIES.items()
    ]


def dataset_choices(projects) -> list:
    """The bundled data sets, then the CSV data sets of ``projects`` grouped by project."""
    from projects.selectors import datasets_for_projects

    bundled = [(k, f"{k} ({task})") for k, task in BUILTIN_DATASETS.items()]
    groups: dict[str, list] = {}
    for d in datasets_for_projects(projects):
        groups.setdefault(f"CSV data sets of {d.project.name}", []).append(
            (d.training_name, f"{d.name} ({d.task}, {d.rows} rows)"))
    return [("Bundled", bundled), *groups.items()] if groups else bundled


class TrainingStartForm(forms.Form):
    project = forms.ModelChoiceField(queryset=None, empty_label="Choose a project")
    name = forms.CharField(max_length=200, required=False, help_text="Optional; shown in lists")
    algorithm = forms.ChoiceField(choices=[(k, f"{k} — {s.description}") for k, s in STRATEGIES.items()],
                                  initial="fedavg")
    strategy_params = forms.CharField(
        label="Algorithm parameters", required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": '{"eta": 0.05}', "spellcheck": "false"}),
        help_text="A JSON object; leave empty for the algorithm's defaults. See the parameters of each algorithm below.",
    )
    model_type = forms.ChoiceField(label="Model", choices=[(k, f"{k} — {d}") for k, d in SUPPORTED_MODELS.items()],
                                   initial="logistic")
    dataset = forms.ChoiceField(choices=[(k, f"{k} ({task})") for k, task in BUILTIN_DATASETS.items()],
                                initial="digits")
    rounds = _number_field("rounds")
    clients = _number_field("clients")
    min_clients = _number_field("min_clients")
    local_epochs = _number_field("local_epochs")
    batch_size = _number_field("batch_size")
    learning_rate = _number_field("learning_rate")
    partition = forms.ChoiceField(choices=[(p, PARTITION_LABELS.get(p, p)) for p in PARTITIONS], initial="iid")
    alpha = _number_field("alpha")
    seed = _number_field("seed")
    transport = forms.ChoiceField(
        label="Runs on", choices=Transport.choices, initial=Transport.EMBEDDED, required=False,
        help_text="The embedded federation trains in a worker; a deployed one on the Flower SuperLink and its "
                  "SuperNodes (FLOWER_SUPERLINK_ADDRESS)")
    secure_aggregation = forms.BooleanField(
        label="Secure aggregation (SecAgg+)", required=False,
        help_text="The server only learns the sum of the updates; needs 3 or more nodes and a fedavg-family strategy")

    def __init__(self, *args, projects, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects
        self.fields["dataset"].choices = dataset_choices(projects)

    def clean_name(self):
        return self.cleaned_data["name"].strip()

    def clean_strategy_params(self):
        text = self.cleaned_data["strategy_params"].strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}")
        if not isinstance(value, dict):
            raise forms.ValidationError('Give a JSON object, such as {"eta": 0.05}.')
        return value

    @classmethod
    def initial_for(cls, project) -> dict:
        """Start from the project's model and data set when the engine has them."""
        initial = {"project": project.pk}
        conf = project.configuration or {}
        if conf.get("model_type") in SUPPORTED_MODELS:
            initial["model_type"] = conf["model_type"]
        if conf.get("dataset") in BUILTIN_DATASETS or str(conf.get("dataset", "")).startswith("csv:"):
            initial["dataset"] = conf["dataset"]
        return initial

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        config = {"model_type": data["model_type"], "dataset": data["dataset"], "partition": data["partition"]}
        config.update({k: data[k] for k in NUMBER_FIELDS if data.get(k) is not None})
        config["transport"] = data["transport"] or Transport.EMBEDDED
        return {"project": data["project"], "name": data["name"], "algorithm": data["algorithm"],
                "strategy_params": data["strategy_params"], "config": config,
                "privacy": {"secure_aggregation": True} if data["secure_aggregation"] else None}

    def add_service_error(self, exc: ApplicationError) -> None:
        """Put the parser's error next to the field it names (``strategy_params.eta`` belongs to
        the parameters box); an error about no field of this form goes on top."""
        details = exc.details if isinstance(exc.details, dict) else {}
        field = str(details.get("field") or "")
        name = field.split(".", 1)[0]
        if name == "privacy_config":
            name = "secure_aggregation"
        self.add_error(name if name in self.fields else None, exc.message)
