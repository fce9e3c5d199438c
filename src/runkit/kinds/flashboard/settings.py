"""What the host decides for ``create_flashboard``: where dashboards go (a destination) and
who answers questions with queries (a suggester, :mod:`.suggest`), set once for the process::

    from runkit.kinds.flashboard import FlashboardSettings, configure_flashboard

    async def publish(dashboard):  # a Dashboard; returns where it went
        url = await my_bucket.put(f"{dashboard.slug}.html", dashboard.html)
        return url

    configure_flashboard(FlashboardSettings(destination=publish))

A destination is called with the :class:`Dashboard` once the charts are drawn and returns
the run result's ``path`` (a string: a path, a URL); it may be a plain or an async function.
The default, :class:`DataRootDestination`, writes ``dashboards/<slug>-<run id>.html`` and,
beside it, the specs as ``.json``, under the data root.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import tempfile
import threading
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio.to_thread
import attrs

from ...authoring import Fatal
from ...domain.errors import ConfigurationError
from ..data.root import current_root
from .suggest import QuerySuggester

DEFAULT_FOLDER = "dashboards"
MAX_SLUG = 48


def slug(title: str) -> str:
    """``title`` as a file name's start: lower-case ASCII letters, digits and dashes."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return words[:MAX_SLUG].rstrip("-") or "dashboard"


@attrs.frozen
class Dashboard:
    """A dashboard ready to go: ``html`` is the self-contained page, ``document`` the specs
    as JSON (``{"title", "charts": [{"title", "type", "spec"}]}``)."""

    run_id: UUID
    title: str
    html: str
    document: Mapping[str, Any]

    @property
    def slug(self) -> str:
        return slug(self.title)

    @property
    def name(self) -> str:
        """``<slug>-<run id>``: a file name's stem unique to the run."""
        return f"{self.slug}-{self.run_id}"


Destination = Callable[[Dashboard], "str | Awaitable[str]"]


def _write(path: Path, text: str) -> None:
    """Whole or absent: written beside, then renamed over ``path``."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@attrs.frozen
class DataRootDestination:
    """Writes ``<folder>/<slug>-<run id>.html`` and ``.json`` under the data root (checked
    as every data kind's paths are: a symlink leading out is refused) and returns the HTML
    file's path, relative to the root."""

    folder: str = DEFAULT_FOLDER

    def _save(self, dashboard: Dashboard) -> str:
        root = current_root()
        relative = f"{self.folder}/{dashboard.name}.html"
        page = root.resolve(relative)  # PathRefused if the folder leads out of the root
        page.parent.mkdir(parents=True, exist_ok=True)
        page = root.resolve(relative)  # again, now that the folders exist
        specs = json.dumps(dashboard.document, ensure_ascii=False, allow_nan=False, indent=1)
        _write(page.with_suffix(".json"), specs + "\n")
        _write(page, dashboard.html)
        return relative

    async def __call__(self, dashboard: Dashboard) -> str:
        return await anyio.to_thread.run_sync(self._save, dashboard)


@attrs.frozen
class FlashboardSettings:
    """``destination``: where dashboards go (None: :class:`DataRootDestination`);
    ``suggester``: who answers questions with queries (None: the language-model layer)."""

    destination: Destination | None = None
    suggester: QuerySuggester | None = None


_configured = FlashboardSettings()
_lock = threading.Lock()


def configure_flashboard(settings: FlashboardSettings | None) -> None:
    """Set the process's flashboard settings (None: back to the defaults)."""
    global _configured
    with _lock:
        _configured = settings or FlashboardSettings()


def current_settings() -> FlashboardSettings:
    return _configured


def register_destination(destination: Destination) -> None:
    """Set the process's destination, as a plugin's hook would: registering the same one
    again (each Runkit built calls the hook) changes nothing; another one while one is set
    is a ConfigurationError naming both (``configure_flashboard`` replaces it instead)."""
    global _configured
    with _lock:
        current = _configured.destination
        if current is not None and current is not destination and current != destination:
            raise ConfigurationError(
                f"two dashboard destinations: {current!r} is set, {destination!r} registered"
            )
        _configured = attrs.evolve(_configured, destination=destination)


async def deliver(dashboard: Dashboard) -> str:
    """Hand ``dashboard`` to the configured destination; where it went."""
    destination = current_settings().destination or DataRootDestination()
    where = destination(dashboard)
    if inspect.isawaitable(where):
        where = await where
    if not isinstance(where, str) or not where:
        raise DestinationInvalid(f"the dashboard destination returned {where!r}, not a path or URL")
    return where


class DestinationInvalid(Fatal):
    """The host's destination returned something other than where the dashboard went."""
