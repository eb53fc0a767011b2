"""A person's chosen dashboard language follows them into every new session (accounts.middleware
reads it from the session on each request)."""

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from .middleware import SESSION_KEY, supported
from .models import Profile


@receiver(user_logged_in, dispatch_uid="accounts.owner_language")
def apply_owner_language(sender, request, user, **kwargs) -> None:
    if request is None or not hasattr(request, "session"):
        return
    language = Profile.objects.filter(user=user).values_list("language", flat=True).first()
    if supported(language):
        request.session[SESSION_KEY] = language
