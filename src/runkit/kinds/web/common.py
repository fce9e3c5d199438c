"""What the web kinds' configs share: the check that their libraries are installed, and the
attrs validators that turn a bad definition into a 422 at the field.

Importable without httpx: a Runkit always registers the web kinds, and a missing library is
a 422 naming the extra when a run is created, not an ImportError when runkit starts.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

import attrs
from cattrs.errors import AttributeValidationNote, ClassValidationError

EXTRA = "runkit[web]"
#: What every web kind needs (the guard); fetch_page also needs the extraction libraries.
HTTP_MODULES = ("httpx", "httpcore")
PAGE_MODULES = ("trafilatura", "selectolax", "markdownify")
MAX_TIMEOUT_SECONDS = 600.0
#: The most any definition may ask to read of one response.
MAX_BYTES_CEILING = 50 * 1024 * 1024


def missing_modules(modules: Sequence[str]) -> list[str]:
    """The top-level modules of ``modules`` that are not installed (not cached: a library
    installed while the process runs is found on the next create)."""
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def require_extra(kind: str, modules: Sequence[str]) -> None:
    """ValueError (a 422 on the definition) when a library ``kind`` needs is missing."""
    missing = missing_modules(modules)
    if missing:
        raise ValueError(
            f"the {kind} kind needs the optional dependencies of {EXTRA} "
            f"(missing: {', '.join(missing)}); install them with pip install '{EXTRA}'"
        )


def check_url(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    """A URL the guard refuses without a lookup (scheme, port, literal address, loopback
    name, denied name) is a 422 here; a name that resolves to a refused address fails the
    run later (``BlockedDestination``). Without httpx this waits for the extra's error."""
    if missing_modules(HTTP_MODULES):
        return
    from .policy import url_refusal

    why = url_refusal(value)
    if why is not None:
        raise ValueError(why)


# attrs' own validators, so that the definition's JSON schema shows the bounds.
check_timeout = attrs.validators.and_(
    attrs.validators.gt(0.0), attrs.validators.le(MAX_TIMEOUT_SECONDS)
)
check_max_bytes = attrs.validators.and_(
    attrs.validators.ge(1), attrs.validators.le(MAX_BYTES_CEILING)
)


def field_error(cls: type, field: str, message: str) -> ClassValidationError:
    """An error about ``field`` found after every field was set (in ``__attrs_post_init__``:
    a rule between fields), in the form cattrs gives a field's own errors, so that the 422
    points at ``field`` instead of the whole definition."""
    error = ValueError(message)
    error.add_note(AttributeValidationNote(f"{cls.__name__}.{field}", field, Any))
    return ClassValidationError(f"While structuring {cls.__name__}", [error], cls)
