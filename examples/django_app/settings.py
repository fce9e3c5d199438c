"""The least a Django project needs to serve a page beside runkit (no database)."""

from __future__ import annotations

import os

DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
# Example only: read it from the environment in a real project.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "runkit-example-not-secret")
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "examples.django_app.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES: dict[str, object] = {}
USE_TZ = True
