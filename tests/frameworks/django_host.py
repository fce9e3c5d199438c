"""The smallest Django project that can host runkit in a test process: settings made in
code (no settings module to find) and one URL of its own."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from .clients import HELLO


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(HELLO, content_type="text/plain")


urlpatterns = [path("hello", hello)]


def configure() -> None:
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="runkit-tests-only",
            ALLOWED_HOSTS=["testserver"],
            ROOT_URLCONF=__name__,
            INSTALLED_APPS=[],
            MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
            DATABASES={},
            USE_TZ=True,
        )
