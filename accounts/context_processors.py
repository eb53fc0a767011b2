from django.utils.functional import SimpleLazyObject

from .access import workspaces_for_user


def workspaces(request) -> dict:
    """The signed-in user's workspaces and the current one's id, for the top bar's switcher
    (queried only by pages that show it)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def current_id():
        chosen = request.session.get("workspace_id")
        ids = [w.pk for w in all_workspaces]
        return chosen if chosen in ids else (min(ids) if ids else None)

    all_workspaces = SimpleLazyObject(lambda: list(workspaces_for_user(user).order_by("name")))
    return {"user_workspaces": all_workspaces, "current_workspace_id": SimpleLazyObject(current_id)}
