import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "askhandle.settings")
application = get_asgi_application()

if os.environ.get("ASKHANDLE_WARM_MODELS", "1") == "1":
    import providers

    providers.warm_up_in_background()
