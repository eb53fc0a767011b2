"""The dashboard's language: the one its user chose in the top bar (accounts.Profile, copied into
the session when they log in or choose), else the browser's, as Django's LocaleMiddleware picks
it (the language cookie, then Accept-Language). The public chat page and widget speak their
bot's language instead (chat.i18n.in_bot_language overrides this around those views)."""

from django.conf import settings
from django.middleware.locale import LocaleMiddleware
from django.utils import translation

SESSION_KEY = "owner_language"


def supported(code: str | None) -> bool:
    return bool(code) and code in dict(settings.LANGUAGES)


class OwnerLanguageMiddleware(LocaleMiddleware):
    def process_request(self, request):
        chosen = None
        # Only a request that brings a session reads it: reading marks the session accessed,
        # which adds "Vary: Cookie" to every public chat response.
        if settings.SESSION_COOKIE_NAME in request.COOKIES:
            chosen = request.session.get(SESSION_KEY)
        if not supported(chosen):
            return super().process_request(request)
        translation.activate(chosen)
        request.LANGUAGE_CODE = translation.get_language()
