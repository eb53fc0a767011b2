import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode
from django.utils.translation import gettext as _

from .models import Invitation, Membership, Profile, Workspace


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
    An address whose sign-up was never activated gets this sign-up's password and workspace name
    (earlier activation links stop working) and a new link. An active address is left unchanged
    and gets an e-mail saying someone tried to sign up with it. Either way: one e-mail, and the
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
    pending = _pending_signup_replace(
        user_id=existing.pk, password=password, workspace_name=workspace_name
    )
    if pending is not None:
        _send_activation(pending, base_url)
        return
    # Hash anyway: a new or pending account costs one password hash, so the response time
    # says nothing.
    make_password(password)
    _send_mail(
        existing,
        "accounts/signup_exists",
        login_url=base_url + reverse("accounts:login"),
        reset_url=base_url + reverse("accounts:password_reset"),
    )


@transaction.atomic
def _pending_signup_replace(*, user_id: int, password: str, workspace_name: str):
    """Give a never-activated account (inactive, never logged in: a sign-up whose e-mail was
    lost, or someone else's sign-up with this address) this sign-up's password and workspace
    name, and return it; return None, changing nothing, for any other account.

    Why replace rather than keep the first sign-up: anyone can sign up with an address they do
    not own. Keeping the first password let that person log in once the real owner activated
    the account from their own sign-up (issue 23). The activation token hashes the stored
    password (ActivationTokenGenerator), so the new hash also voids every earlier link: the
    account can only be activated with the password of the sign-up whose link was clicked,
    and an inactive account never logs in, so no other sign-up's password ever works.
    """
    User = get_user_model()
    # Locked, and checked again under the lock: an activation in between must keep its password.
    user = User.objects.select_for_update().get(pk=user_id)
    if user.is_active or user.last_login is not None:
        return None
    user.set_password(password)
    user.save(update_fields=["password"])
    # The sign-up's own workspace: one it owns alone (an account staff added to a shared
    # workspace in admin must not rename that one).
    own = (
        Workspace.objects.filter(
            pk__in=Membership.objects.filter(user=user, role=Membership.Role.OWNER).values(
                "workspace"
            )
        )
        .annotate(member_count=Count("memberships"))
        .filter(member_count=1)
        .order_by("pk")
        .first()
    )
    if own is None:
        workspace_create(name=workspace_name, owner=user)
    else:
        own.name = workspace_name
        own.save(update_fields=["name"])
    return user


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


def profile_language_set(*, user, language: str) -> Profile:
    """Keep the dashboard language a person chose (one of settings.LANGUAGES)."""
    if language not in dict(settings.LANGUAGES):
        raise ValidationError(_("Choose one of the dashboard languages."))
    profile, _created = Profile.objects.update_or_create(user=user, defaults={"language": language})
    return profile


def workspace_create(*, name: str, owner) -> Workspace:
    workspace = Workspace.objects.create(name=name)
    Membership.objects.create(workspace=workspace, user=owner, role=Membership.Role.OWNER)
    return workspace


# --- Team: invitations and memberships ---


class TeamError(Exception):
    """A team change that is not allowed (e.g. the last owner leaving); the message says why."""


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_create(
    *, workspace: Workspace, email: str, role: str, invited_by, base_url: str
) -> Invitation:
    """Invite an address to the workspace and e-mail it a single-use link that expires after
    settings.INVITATION_DAYS. Inviting the same address again replaces its open invitation
    (the old link stops working). Raises ValidationError for an address already a member."""
    email = get_user_model().objects.normalize_email(email).strip().lower()
    if workspace.memberships.filter(user__email__iexact=email).exists():
        raise ValidationError(
            _("%(email)s is already a member of %(workspace)s.")
            % {"email": email, "workspace": workspace.name}
        )
    if role not in Membership.Role.values:
        raise ValidationError(_("Choose a role: owner or member."))
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        Invitation.objects.filter(
            workspace=workspace, email__iexact=email, accepted_at__isnull=True
        ).delete()
        invitation = Invitation.objects.create(
            workspace=workspace,
            email=email,
            role=role,
            token_hash=_token_hash(token),
            invited_by=invited_by,
            expires_at=timezone.now() + timedelta(days=settings.INVITATION_DAYS),
        )
    context = {
        "email": email,
        "workspace": workspace.name,
        "inviter": getattr(invited_by, "email", ""),
        "days": settings.INVITATION_DAYS,
        "accept_url": base_url + reverse("accounts:invitation", args=[token]),
    }
    subject = render_to_string("accounts/invitation_subject.txt", context).strip()
    send_mail(subject, render_to_string("accounts/invitation_email.txt", context), None, [email])
    return invitation


def invitation_for_token(token: str) -> Invitation | None:
    """The invitation a link names, if it is still usable (not accepted, not expired)."""
    invitation = (
        Invitation.objects.select_related("workspace").filter(token_hash=_token_hash(token)).first()
    )
    return invitation if invitation and invitation.is_usable else None


def invitation_accept(*, invitation: Invitation, user) -> Membership:
    """Make `user` a member with the invited role. The link works once: the invitation is
    claimed with a conditional UPDATE, so two clicks at once cannot both join."""
    if user.email.lower() != invitation.email.lower():
        raise TeamError(_("This invitation is for %(email)s.") % {"email": invitation.email})
    with transaction.atomic():
        claimed = Invitation.objects.filter(
            pk=invitation.pk, accepted_at__isnull=True, expires_at__gt=timezone.now()
        ).update(accepted_at=timezone.now(), accepted_by=user)
        if not claimed:
            raise TeamError(_("This invitation has already been used or has expired."))
        membership, _created = Membership.objects.get_or_create(
            workspace=invitation.workspace, user=user, defaults={"role": invitation.role}
        )
    return membership


def invitation_accept_new_account(*, invitation: Invitation, password: str) -> AbstractBaseUser:
    """Create the invited address's account (active: the e-mailed link proves the address) and
    accept the invitation with it. The account gets no workspace of its own."""
    User = get_user_model()
    with transaction.atomic():
        user = User.objects.create_user(
            username=invitation.email, email=invitation.email, password=password
        )
        invitation_accept(invitation=invitation, user=user)
    return user


def invitation_revoke(*, invitation: Invitation) -> None:
    invitation.delete()


def _other_owners(membership: Membership):
    return Membership.objects.filter(
        workspace=membership.workspace, role=Membership.Role.OWNER
    ).exclude(pk=membership.pk)


@transaction.atomic
def membership_set_role(*, membership: Membership, role: str) -> Membership:
    if role not in Membership.Role.values:
        raise ValidationError(_("Choose a role: owner or member."))
    # Lock the workspace's owners: two owners demoting each other at once would leave none.
    list(Membership.objects.select_for_update().filter(workspace=membership.workspace))
    if role != Membership.Role.OWNER and not _other_owners(membership).exists():
        raise TeamError(_("A workspace needs at least one owner: make someone else owner first."))
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership) -> None:
    """Remove a member (or let one leave). The last owner cannot go."""
    list(Membership.objects.select_for_update().filter(workspace=membership.workspace))
    if membership.role == Membership.Role.OWNER and not _other_owners(membership).exists():
        raise TeamError(
            _("A workspace needs at least one owner: make someone else owner before leaving.")
        )
    membership.delete()


def workspace_delete(*, workspace: Workspace, confirm_name: str) -> None:
    """Delete a workspace and everything in it: memberships, invitations, bots and, by cascade,
    their sources, FAQ entries, chunks, conversations, keys and training runs. Files in storage
    (uploads, tuned weights, adapters, training sets) are deleted after commit by the receivers
    of the apps that own them (knowledge.receivers, training.receivers, training.chat_tuning).
    Accounts stay: a member may belong to other workspaces. Raises ValidationError when
    `confirm_name` is not the workspace's name."""
    if confirm_name.strip() != workspace.name:
        raise ValidationError(_("Type the workspace's name exactly to delete it."))
    with transaction.atomic():
        Workspace.objects.select_for_update().filter(pk=workspace.pk).first()
        workspace.delete()
