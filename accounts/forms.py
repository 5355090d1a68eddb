from django import forms
from django.contrib.auth.forms import AuthenticationForm

from accounts import services
from core.api.throttles import AuthRateThrottle
from core.exceptions import ApplicationError


class LoginForm(AuthenticationForm):
    """The dashboard login, counting failures and honouring lock-outs like the API does."""

    username = forms.CharField(label="Username or email", max_length=254,
                               widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}))

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        # The same client address the API's login counts (X-Forwarded-For when NUM_PROXIES is set).
        self.address = AuthRateThrottle().get_ident(request) if request else ""

    def clean(self):
        identifier = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if identifier and password:
            try:
                self.user_cache = services.auth_check_credentials(
                    identifier=identifier, password=password, address=self.address
                )
            except ApplicationError as exc:
                raise forms.ValidationError(exc.message, code="invalid_login")
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


class RegisterForm(forms.Form):
    username = forms.RegexField(r"^[\w.@+-]{3,150}$", max_length=150,
                                error_messages={"invalid": "3-150 letters, digits and @/./+/-/_ only."})
    email = forms.EmailField(max_length=254)
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    password = forms.CharField(widget=forms.PasswordInput, max_length=128, strip=False)
    password_confirm = forms.CharField(label="Repeat password", widget=forms.PasswordInput, max_length=128,
                                       strip=False)

    def clean(self):
        data = super().clean()
        if data.get("password") and data.get("password") != data.get("password_confirm"):
            self.add_error("password_confirm", "The passwords differ.")
        return data
