"""The ASGI entry point: an outer router sends ``/runkit/...`` to runkit and the rest to
Django. Django's ASGIHandler refuses lifespan events, so the router (not Django) opens
runkit on startup and closes it on shutdown."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")
# First: it runs django.setup() before anything touches settings or models.
django_app = get_asgi_application()

from runkit_contrib.frameworks.django import make_django_asgi  # noqa: E402

from .._common import PREFIX, make_runkit, make_runkit_app, workers  # noqa: E402

rk = make_runkit()
application = make_django_asgi(
    django_app, make_runkit_app(rk), PREFIX, runkit=rk, workers=workers()
)
