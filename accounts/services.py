from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from .models import Membership, Workspace


@transaction.atomic
def account_signup(*, email: str, password: str, workspace_name: str) -> AbstractBaseUser:
    """Create a user (username = email) and the workspace they own."""
    User = get_user_model()
    email = User.objects.normalize_email(email).lower()
    user = User.objects.create_user(username=email, email=email, password=password)
    workspace_create(name=workspace_name, owner=user)
    return user


def workspace_create(*, name: str, owner) -> Workspace:
    workspace = Workspace.objects.create(name=name)
    Membership.objects.create(workspace=workspace, user=owner, role=Membership.Role.OWNER)
    return workspace
