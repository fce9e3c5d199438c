"""Runnable examples: runkit mounted under ``/runkit`` of each supported framework.

From the repository root::

    RUNKIT_API_KEYS=my-secret-key uvicorn examples.fastapi_app:app
    curl -H 'X-API-Key: my-secret-key' -H 'Content-Type: application/json' \\
         -d '{"kind": "greet", "definition": {"name": "Ada"}}' \\
         http://127.0.0.1:8000/runkit/api/v1/action-runs

See docs/frameworks.md.
"""
