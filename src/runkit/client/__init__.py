"""``runkit.client``: the HTTP API of ``runkit serve`` as typed Python, synchronous
(:class:`Client`, like :class:`runkit.SyncRunkit`) or asynchronous (:class:`AsyncClient`,
like :class:`runkit.Runkit`, on anyio: asyncio or trio).

The same methods, arguments, models (``runkit.Run``, ``LogEntry``, ``RunPage``,
``Created``, ``WorkerInfo``) and exceptions as the in-process API, read from the wire with
the server's own converter (``runkit_contrib._wire``): code moves between a local
``Runkit`` and a remote server by changing the line that makes it (docs/client.md). The
runs it returns are :class:`RemoteRun`, a ``runkit.Run`` that also carries the server's
``display_status``.
"""

from __future__ import annotations

from ._async import AsyncClient
from ._config import USER_AGENT
from ._decode import KindInfo, RemoteRun
from ._errors import AuthenticationError, ClientError
from ._sync import Client

__all__ = [
    "USER_AGENT",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ClientError",
    "KindInfo",
    "RemoteRun",
]
