from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from .models import Membership, Workspace


@transaction.atomic
def account_signup(
    *, email: str, password: str, workspace_name: str, is_active: bool = True
) -> AbstractBaseUser:
    """Create a user (username = email) and the workspace they own."""
    User = get_user_model()
    email = User.objects.normalize_email(email).lower()
    user = User.objects.create_user(
        username=email, email=email, password=password, is_active=is_active
    )
    workspace_create(name=workspace_name, owner=user)
    return user


def account_signup_request(
    *, email: str, password: str, workspace_name: str, base_url: str
) -> None:
    """Start a sign-up without revealing whether the address already has an account.

    A new address gets an inactive account, its workspace and an e-mail with an activation link.
    A taken address is left unchanged and gets an e-mail saying someone tried to sign up with it
    (or, if it never activated, its activation link again). Either way: one e-mail, and the
    caller shows the same page.
    """
    User = get_user_model()
    email = User.objects.normalize_email(email).lower()
    existing = User.objects.filter(username__iexact=email).first()
    if existing is None:
        try:
            user = account_signup(
                email=email, password=password, workspace_name=workspace_name, is_active=False
            )
        except IntegrityError:  # a concurrent sign-up with the same address got there first
            existing = User.objects.get(username__iexact=email)
        else:
            _send_activation(user, base_url)
            return
    # Hash anyway: a new account costs one password hash, so the response time says nothing.
    make_password(password)
    # Never logged in and inactive: a sign-up whose e-mail was lost. (An account staff disabled
    # has logged in before and only gets the notice.)
    if not existing.is_active and existing.last_login is None:
        _send_activation(existing, base_url)
    else:
        _send_mail(
            existing,
            "accounts/signup_exists",
            login_url=base_url + reverse("accounts:login"),
            reset_url=base_url + reverse("accounts:password_reset"),
        )


class ActivationTokenGenerator(PasswordResetTokenGenerator):
    """Like password-reset tokens (signed, expire after PASSWORD_RESET_TIMEOUT) but not
    interchangeable with them, and void once the account is active."""

    key_salt = "accounts.services.ActivationTokenGenerator"

    def _make_hash_value(self, user, timestamp):
        return f"{user.pk}{user.password}{user.is_active}{timestamp}"


activation_tokens = ActivationTokenGenerator()


def _send_activation(user, base_url: str) -> None:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    path = reverse("accounts:activate", args=[uid, activation_tokens.make_token(user)])
    _send_mail(user, "accounts/signup_activate", activate_url=base_url + path)


def _send_mail(user, template: str, **context) -> None:
    context["email"] = user.email
    subject = render_to_string(f"{template}_subject.txt", context).strip()
    send_mail(subject, render_to_string(f"{template}_email.txt", context), None, [user.email])


def account_for_activation(*, uidb64: str, token: str) -> AbstractBaseUser | None:
    """The inactive user an activation link names, or None if the link is wrong or used up."""
    User = get_user_model()
    try:
        user = User.objects.get(pk=force_str(urlsafe_base64_decode(uidb64)))
    except (ValueError, TypeError, OverflowError, User.DoesNotExist):
        return None
    if user.is_active or not activation_tokens.check_token(user, token):
        return None
    return user


def account_activate(*, user) -> AbstractBaseUser:
    user.is_active = True
    user.save(update_fields=["is_active"])
    return user


def workspace_create(*, name: str, owner) -> Workspace:
    workspace = Workspace.objects.create(name=name)
    Membership.objects.create(workspace=workspace, user=owner, role=Membership.Role.OWNER)
    return workspace
