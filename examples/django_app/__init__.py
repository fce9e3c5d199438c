"""Django host: ``RUNKIT_API_KEYS=k uvicorn examples.django_app.asgi:application``."""
