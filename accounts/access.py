from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext

from .models import Membership, Workspace


def workspaces_for_user(user):
    return Workspace.objects.filter(memberships__user=user)


class NoWorkspace(Http404):
    """The signed-in user is in no workspace: removed from their last one, or staff created in
    admin only. A 404 wherever it is not caught; workspace_required turns it into a redirect."""


def current_workspace(request) -> Workspace:
    """The workspace the dashboard acts in: the one chosen in the session, else the first.

    Raises NoWorkspace (a 404) for a user with no workspace.
    """
    qs = workspaces_for_user(request.user)
    chosen = request.session.get("workspace_id")
    workspace = (qs.filter(pk=chosen).first() if chosen else None) or qs.order_by("pk").first()
    if workspace is None:
        raise NoWorkspace(gettext("You are not a member of any workspace."))
    return workspace


def workspace_required(view):
    """For the pages a signed-in user lands on (the bot list, where login leads; new bot; team):
    a user in no workspace is sent to the page that creates one rather than shown a 404. Pages
    that name a workspace's object (a bot, a member) keep their 404: that object is not theirs.
    """

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except NoWorkspace:
            return redirect("accounts:workspace_create")

    return wrapped


def current_membership(request) -> Membership:
    """The user's membership in the current workspace (its role says what they may do)."""
    workspace = current_workspace(request)
    membership = Membership.objects.get(workspace=workspace, user=request.user)
    membership.workspace = workspace
    return membership


def require_owner(request) -> Membership:
    """The current membership if it is an owner's; members get 403 (they can see the page)."""
    membership = current_membership(request)
    if membership.role != Membership.Role.OWNER:
        raise PermissionDenied(gettext("Only the workspace's owners can do this."))
    return membership


def is_owner(user, workspace: Workspace) -> bool:
    return Membership.objects.filter(
        workspace=workspace, user=user, role=Membership.Role.OWNER
    ).exists()


def select_workspace(request, workspace_id: int) -> Workspace:
    """Make one of the user's workspaces the current one; 404 for any other."""
    workspace = get_object_or_404(workspaces_for_user(request.user), pk=workspace_id)
    request.session["workspace_id"] = workspace.pk
    return workspace


def get_member_in_workspace(workspace: Workspace, membership_id: int) -> Membership:
    return get_object_or_404(
        Membership.objects.select_related("user"), pk=membership_id, workspace=workspace
    )
