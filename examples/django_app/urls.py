from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path


def index(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"runkit": "/runkit/docs"})


urlpatterns = [path("", index)]
