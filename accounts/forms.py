from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _

from . import throttle
from .models import Membership, Workspace

_USERNAME_MAX_LENGTH = get_user_model()._meta.get_field("username").max_length


class SignupForm(forms.Form):
    workspace_name = forms.CharField(
        label=_("Business name"), max_length=120, widget=forms.TextInput(attrs={"autofocus": True})
    )
    # The address becomes the username, whose column is the shorter one.
    email = forms.EmailField(max_length=_USERNAME_MAX_LENGTH)
    password = forms.CharField(widget=forms.PasswordInput, strip=False)

    # No "already exists" error: sign-up must not tell anyone which addresses have an account
    # (accounts.services.account_signup_request e-mails the address instead).
    def clean_email(self):
        return self.cleaned_data["email"].lower()

    def clean(self):
        cleaned = super().clean()
        password = cleaned.get("password")
        if password:
            user = get_user_model()(
                username=cleaned.get("email", ""), email=cleaned.get("email", "")
            )
            try:
                password_validation.validate_password(password, user)
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return cleaned


class WorkspaceForm(forms.Form):
    name = forms.CharField(
        label=_("Business name"),
        max_length=Workspace._meta.get_field("name").max_length,
        widget=forms.TextInput(attrs={"autofocus": True}),
    )


class ThrottledLoginMixin:
    """Refuses a login while its account or IP is throttled (accounts.throttle), before the
    password is checked; counts the failures."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        ip = throttle.client_ip(self.request) if self.request is not None else "unknown"
        try:
            throttle.check(username=username, ip=ip)
        except throttle.LoginThrottled as exc:
            raise forms.ValidationError(
                _("Too many failed log-in attempts. Try again in %(wait)s."),
                code="throttled",
                params={"wait": throttle.wait_text(exc.retry_after)},
            ) from exc
        try:
            cleaned = super().clean()
        except forms.ValidationError as exc:
            if getattr(exc, "code", None) == "invalid_login":
                throttle.failed(username=username, ip=ip)
            raise
        throttle.succeeded(username=username)
        return cleaned


class LoginForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass


class InviteForm(forms.Form):
    # Invitation.email holds 254 characters, and an invitee without an account gets the address
    # as username (150): a longer one could be invited but never join.
    email = forms.EmailField(label=_("E-mail address"), max_length=_USERNAME_MAX_LENGTH)
    role = forms.ChoiceField(
        label=_("Role"),
        choices=Membership.Role.choices,
        initial=Membership.Role.MEMBER,
        help_text=_("Owners also manage the team, and can delete bots."),
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class InvitationSignupForm(forms.Form):
    """Create the invited address's account: the address comes from the invitation."""

    password = forms.CharField(
        label=_("Choose a password"), widget=forms.PasswordInput, strip=False
    )

    def __init__(self, *args, email: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.email = email

    def clean_password(self):
        password = self.cleaned_data["password"]
        user = get_user_model()(username=self.email, email=self.email)
        password_validation.validate_password(password, user)
        return password
