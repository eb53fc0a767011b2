from django.http import Http404

from .models import Workspace


def workspaces_for_user(user):
    return Workspace.objects.filter(memberships__user=user)


def current_workspace(request) -> Workspace:
    """The workspace the dashboard acts in: the one chosen in the session, else the first.

    Raises Http404 for a user with no workspace (e.g. staff created in admin only).
    """
    qs = workspaces_for_user(request.user)
    chosen = request.session.get("workspace_id")
    workspace = (qs.filter(pk=chosen).first() if chosen else None) or qs.order_by("pk").first()
    if workspace is None:
        raise Http404("You are not a member of any workspace.")
    return workspace
