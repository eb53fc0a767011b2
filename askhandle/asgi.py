import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "askhandle.settings")
# The web server pools its database connections (settings.DATABASE_POOL); Celery workers and
# management commands open one per task or command: a pool opened in a prefork parent would be
# inherited half-alive by the children it forks.
if not os.environ.get("DATABASE_POOL", "").strip():  # unset or empty (a copied .env.example)
    os.environ["DATABASE_POOL"] = "1"
application = get_asgi_application()

if os.environ.get("ASKHANDLE_WARM_MODELS", "1") == "1":
    import providers

    providers.warm_up_in_background()
