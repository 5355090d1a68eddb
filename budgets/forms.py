from django import forms

from budgets.choices import ReportFormat, ReportKind
from budgets.models import Budget


class DecisionForm(forms.Form):
    """Approve or reject a submitted budget from a page (a rejection needs its reason)."""

    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    reason = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    next = forms.CharField(max_length=300, required=False, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        if data.get("decision") == "reject" and not (data.get("reason") or "").strip():
            raise forms.ValidationError("A rejection says why: give a reason.")
        return data


class ReportForm(forms.Form):
    kind = forms.ChoiceField(choices=ReportKind.choices, initial=ReportKind.FULL)
    format = forms.ChoiceField(choices=ReportFormat.choices, initial=ReportFormat.JSON)
    title = forms.CharField(max_length=200, required=False)
    budget = forms.ModelChoiceField(queryset=Budget.objects.order_by("name"), required=False,
                                    empty_label="All budgets")
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    as_of = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}),
                            help_text="The forecast's reference day (default: today)")


class AdminReasonForm(forms.Form):
    """The admin's intermediate page for approving or rejecting selected budgets."""

    reason = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))
