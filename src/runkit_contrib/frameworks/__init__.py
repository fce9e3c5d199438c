"""Glue for mounting the runkit ASGI app in web frameworks, one module a framework.

Only frameworks that need glue have a module, and this package imports none of them: a
FastAPI host never imports Django. FastAPI and Starlette need no glue at all::

    app.mount("/runkit", runkit_contrib.asgi_app(rk, auth=...))   # FastAPI
    Mount("/runkit", app=runkit_contrib.asgi_app(rk, auth=...))    # Starlette

- :mod:`.litestar`: :func:`~.litestar.runkit_mount`, an ``@asgi(is_mount=True)`` handler
  that gives the runkit app the scope it expects (Litestar rewrites ``path``).
- :mod:`.django`: :func:`~.django.make_django_asgi`, an outer router for ``asgi.py`` (Django's
  ASGIHandler refuses lifespan events, so the router runs runkit's lifespan).
- :mod:`.quart`: :func:`~.quart.mount_quart`, which wraps ``app.asgi_app`` and runs runkit's
  lifespan from Quart's ``while_serving``.

Every host must run :func:`runkit_contrib.lifespan` from its *own* lifespan: no framework
forwards lifespan events to a mounted app. See docs/frameworks.md.
"""
