from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login, logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from . import services
from .access import (
    current_membership,
    get_member_in_workspace,
    require_owner,
    select_workspace,
    workspace_required,
    workspaces_for_user,
)
from .forms import InvitationSignupForm, InviteForm, RoleForm, SignupForm, WorkspaceForm
from .middleware import SESSION_KEY as LANGUAGE_SESSION_KEY
from .models import Invitation, Membership
from .services import account_activate, account_for_activation, account_signup_request


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("bots:list")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # New or taken address: the same redirect and page; only the e-mail differs.
        account_signup_request(
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password"],
            workspace_name=form.cleaned_data["workspace_name"],
            base_url=request.build_absolute_uri("/").rstrip("/"),
        )
        return redirect("accounts:signup_done")
    return render(request, "accounts/signup.html", {"form": form})


def signup_done(request):
    return render(request, "accounts/signup_done.html")


@require_http_methods(["GET", "POST"])
def activate(request, uidb64: str, token: str):
    """GET shows the form and POST activates: mail scanners that open links do not log in.

    The link proves the address; the sign-up's password, typed again here, proves that whoever
    clicks is the person who signed up. Without it, a stranger's sign-up with your address sent
    you a real activation e-mail, and clicking it gave the account the stranger's password
    (issue 23): now that link cannot be used without the stranger's password, and your own
    sign-up replaces it (accounts.services.account_signup_request)."""
    user = account_for_activation(uidb64=uidb64, token=token)
    if user is None:
        return render(request, "accounts/activate.html", {"validlink": False}, status=400)
    context = {"validlink": True, "email": user.email}
    if request.method == "POST":
        if not user.check_password(request.POST.get("password", "")):
            context["error"] = _(
                "That is not the password of this sign-up. If you did not sign up yourself, "
                "sign up now with a password of your own: that replaces the other one."
            )
            return render(request, "accounts/activate.html", context, status=422)
        account_activate(user=user)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, _("Welcome to AskHandle! Create your first bot to get started."))
        return redirect("bots:list")
    return render(request, "accounts/activate.html", context)


# --- Team: members, invitations, leaving and switching workspaces ---


def _team_context(request, membership, **extra) -> dict:
    workspace = membership.workspace
    return {
        "workspace": workspace,
        "membership": membership,
        "is_owner": membership.role == Membership.Role.OWNER,
        "members": workspace.memberships.select_related("user").order_by("created_at", "pk"),
        "invitations": [i for i in workspace.invitations.all() if i.is_usable],
        "invite_form": InviteForm(),
        "role_choices": Membership.Role.choices,
        **extra,
    }


@login_required
@workspace_required
@require_http_methods(["GET", "POST"])
def team(request):
    """GET: the current workspace's members and open invitations. POST (owners): invite."""
    membership = current_membership(request)
    if request.method == "GET":
        return render(request, "accounts/team.html", _team_context(request, membership))
    membership = require_owner(request)
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            services.invitation_create(
                workspace=membership.workspace,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                invited_by=request.user,
                base_url=request.build_absolute_uri("/").rstrip("/"),
            )
        except ValidationError as exc:
            form.add_error("email", exc)
        else:
            messages.success(
                request,
                _("Invitation sent to %(email)s. The link works once, for %(days)s days.")
                % {"email": form.cleaned_data["email"], "days": settings.INVITATION_DAYS},
            )
            return redirect("accounts:team")
    context = _team_context(request, membership, invite_form=form)
    return render(request, "accounts/team.html", context, status=422)


@login_required
@require_POST
def invitation_revoke(request, invitation_id: int):
    membership = require_owner(request)
    invitation = get_object_or_404(
        Invitation, pk=invitation_id, workspace=membership.workspace, accepted_at__isnull=True
    )
    services.invitation_revoke(invitation=invitation)
    messages.success(request, _("Invitation to %(email)s revoked.") % {"email": invitation.email})
    return redirect("accounts:team")


@login_required
@require_POST
def member_role(request, membership_id: int):
    owner = require_owner(request)
    member = get_member_in_workspace(owner.workspace, membership_id)
    form = RoleForm(request.POST)
    try:
        if not form.is_valid():
            raise services.TeamError(_("Choose a role: owner or member."))
        services.membership_set_role(membership=member, role=form.cleaned_data["role"])
    except (services.TeamError, ValidationError) as exc:
        messages.error(request, _flat(exc))
    else:
        messages.success(
            request,
            _("%(email)s is now %(role)s.")
            % {"email": member.user.email, "role": member.get_role_display().lower()},
        )
    return redirect("accounts:team")


@login_required
@require_POST
def member_remove(request, membership_id: int):
    owner = require_owner(request)
    member = get_member_in_workspace(owner.workspace, membership_id)
    if member.user_id == request.user.pk:
        return leave(request)
    try:
        services.membership_remove(membership=member)
    except services.TeamError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            _("Removed %(email)s from %(workspace)s.")
            % {"email": member.user.email, "workspace": owner.workspace.name},
        )
    return redirect("accounts:team")


@login_required
@require_POST
def leave(request):
    membership = current_membership(request)
    try:
        services.membership_remove(membership=membership)
    except services.TeamError as exc:
        messages.error(request, str(exc))
        return redirect("accounts:team")
    request.session.pop("workspace_id", None)
    messages.success(request, _("You left %(workspace)s.") % {"workspace": membership.workspace})
    if not workspaces_for_user(request.user).exists():
        logout(request)
        return redirect("accounts:login")
    return redirect("bots:list")


@login_required
@require_POST
def workspace_delete(request):
    """Owners only: delete the current workspace with all its bots and their data."""
    membership = require_owner(request)
    workspace = membership.workspace
    try:
        services.workspace_delete(
            workspace=workspace, confirm_name=request.POST.get("confirm_name", "")
        )
    except ValidationError as exc:
        messages.error(request, _flat(exc))
        return redirect("accounts:team")
    request.session.pop("workspace_id", None)
    messages.success(request, _("%(workspace)s was deleted.") % {"workspace": workspace.name})
    if not workspaces_for_user(request.user).exists():
        logout(request)
        return redirect("accounts:login")
    return redirect("bots:list")


@login_required
@require_http_methods(["GET", "POST"])
def workspace_create(request):
    """A new workspace the user owns, made current. Where a user in no workspace lands
    (accounts.access.workspace_required); open to everyone signed in, as sign-up is."""
    form = WorkspaceForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            workspace = services.workspace_create(
                name=form.cleaned_data["name"], owner=request.user
            )
            request.session["workspace_id"] = workspace.pk
            messages.success(
                request,
                _("%(workspace)s is ready. Create its first bot to get started.")
                % {"workspace": workspace.name},
            )
            return redirect("bots:list")
    context = {"form": form, "has_workspace": workspaces_for_user(request.user).exists()}
    status = 422 if form.errors else 200
    return render(request, "accounts/workspace_create.html", context, status=status)


@login_required
@require_POST
def workspace_switch(request):
    try:
        workspace_id = int(request.POST.get("workspace", ""))
    except ValueError:
        raise Http404 from None
    select_workspace(request, workspace_id)
    return redirect("bots:list")


@require_POST
def language_set(request):
    """The top bar's language menu. Signed in: kept on the user's profile (every device, every
    later login) and in this session; signed out: the language cookie only. Back to `next`."""
    language = request.POST.get("language", "")
    if request.user.is_authenticated:
        try:
            services.profile_language_set(user=request.user, language=language)
        except ValidationError as exc:
            return HttpResponseBadRequest(_flat(exc))
        request.session[LANGUAGE_SESSION_KEY] = language
    elif language not in dict(settings.LANGUAGES):
        return HttpResponseBadRequest(_("Choose one of the dashboard languages."))
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = "/"
    response = redirect(target)
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        path=settings.LANGUAGE_COOKIE_PATH,
        domain=settings.LANGUAGE_COOKIE_DOMAIN,
        secure=settings.LANGUAGE_COOKIE_SECURE,
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        samesite=settings.LANGUAGE_COOKIE_SAMESITE,
    )
    return response


def _flat(exc) -> str:
    return "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)


@require_http_methods(["GET", "POST"])
def invitation(request, token: str):
    """Accept an invitation. Signed in as the invited address: one button. No account for it
    yet: choose a password (the link proves the address). Another account signed in, or an
    existing account signed out: told to log in as the invited address."""
    invitation = services.invitation_for_token(token)
    if invitation is None:
        return render(request, "accounts/invitation.html", {"invitation": None}, status=400)
    User = get_user_model()
    account_exists = User.objects.filter(username__iexact=invitation.email).exists()
    signed_in_as_invitee = (
        request.user.is_authenticated and request.user.email.lower() == invitation.email
    )
    form = None
    if not request.user.is_authenticated and not account_exists:
        form = InvitationSignupForm(request.POST or None, email=invitation.email)
    context = {
        "invitation": invitation,
        "account_exists": account_exists,
        "signed_in_as_invitee": signed_in_as_invitee,
        "form": form,
    }
    if request.method == "POST":
        try:
            if signed_in_as_invitee:
                services.invitation_accept(invitation=invitation, user=request.user)
            elif form is not None and form.is_valid():
                user = services.invitation_accept_new_account(
                    invitation=invitation, password=form.cleaned_data["password"]
                )
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            else:
                return render(request, "accounts/invitation.html", context, status=422)
        except services.TeamError as exc:
            context["error"] = str(exc)
            return render(request, "accounts/invitation.html", context, status=400)
        request.session["workspace_id"] = invitation.workspace_id
        messages.success(
            request,
            _("Welcome to %(workspace)s! You see its bots now.")
            % {"workspace": invitation.workspace.name},
        )
        return redirect("bots:list")
    return render(request, "accounts/invitation.html", context)
