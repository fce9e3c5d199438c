"""The host's language-model settings: where the OpenAI-compatible server is, its key, the
default model, and runkit's own limits (timeout, retries, transcript length).

Where they come from, at every check (create time and each model call):

1. the settings passed to :func:`configure_llm`, when the host called it (process-wide);
2. otherwise the environment, read afresh each time: ``RUNKIT_LLM_BASE_URL``,
   ``RUNKIT_LLM_API_KEY``, ``RUNKIT_LLM_MODEL``, ``RUNKIT_LLM_TIMEOUT_SECONDS``,
   ``RUNKIT_LLM_MAX_RETRIES``.

The limits (retries, backoff, transcript length) apply to every provider, the built-in one
and those a plugin registers (:mod:`.providers`). The key is a secret: it is not in the
settings' ``repr`` and never in a log entry or a run's error.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

import attrs

BASE_URL_ENV = "RUNKIT_LLM_BASE_URL"
API_KEY_ENV = "RUNKIT_LLM_API_KEY"
MODEL_ENV = "RUNKIT_LLM_MODEL"
TIMEOUT_ENV = "RUNKIT_LLM_TIMEOUT_SECONDS"
RETRIES_ENV = "RUNKIT_LLM_MAX_RETRIES"
PROVIDER_ENV = "RUNKIT_LLM_PROVIDER"
#: The phrase a 422 uses when nothing is configured: it names every setting.
HOW_TO_CONFIGURE = (
    f"set {BASE_URL_ENV} (an OpenAI-compatible server, e.g. http://127.0.0.1:8080) and "
    f"{MODEL_ENV} (or the definition's model), and {API_KEY_ENV} if the server needs a key; "
    "or call runkit.kinds.llm.configure_llm(...) or register a provider"
)


def _headers(value: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in (value or {}).items()))


@attrs.frozen
class LlmSettings:
    """``base_url``: the server, with or without the trailing ``/v1`` (runkit posts to
    ``{base}/v1/chat/completions``); empty: not configured. ``api_key``: sent as a bearer
    token (empty: none). ``model``: used when a definition names none. ``headers``: more
    request headers (a gateway's), secret like the key. ``timeout_seconds``: for the
    connection and between two pieces of an answer (a whole answer may take longer: the
    kind's timeout bounds it). ``max_retries``: of one call answered 429 or 5xx, or whose
    connection failed, waiting ``min(backoff_base * 2**n, backoff_max)`` seconds or what
    ``Retry-After`` says, up to ``max_retry_after``. ``transcript_chars``: how much of each
    prompt and answer a log entry shows (longer ones are cut, with ``truncated`` set)."""

    base_url: str = ""
    api_key: str = attrs.field(default="", repr=False)
    model: str = ""
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_headers, repr=False)
    timeout_seconds: float = attrs.field(default=120.0, validator=attrs.validators.gt(0.0))
    max_retries: int = attrs.field(
        default=4, validator=[attrs.validators.ge(0), attrs.validators.le(20)]
    )
    backoff_base: float = attrs.field(default=1.0, validator=attrs.validators.ge(0.0))
    backoff_max: float = attrs.field(default=30.0, validator=attrs.validators.ge(0.0))
    max_retry_after: float = attrs.field(default=120.0, validator=attrs.validators.ge(0.0))
    transcript_chars: int = attrs.field(default=8000, validator=attrs.validators.ge(100))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LlmSettings:
        """The settings the ``RUNKIT_LLM_*`` variables describe; a malformed number raises
        ValueError naming the variable."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            "base_url": env.get(BASE_URL_ENV, "").strip(),
            "api_key": env.get(API_KEY_ENV, "").strip(),
            "model": env.get(MODEL_ENV, "").strip(),
        }
        for name, field, parse in (
            (TIMEOUT_ENV, "timeout_seconds", float),
            (RETRIES_ENV, "max_retries", int),
        ):
            raw = env.get(name, "").strip()
            if not raw:
                continue
            try:
                values[field] = parse(raw)
                cls(**values)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}={raw!r} is invalid ({exc})") from None
        return cls(**values)

    @property
    def chat_base(self) -> str:
        """The base URL the OpenAI client takes: ``.../v1``."""
        base = self.base_url.rstrip("/")
        return base if base.endswith("/v1") else base + "/v1"

    def secrets(self) -> tuple[str, ...]:
        """What must never be shown: the key and the extra headers' values."""
        return tuple(v for v in (self.api_key, *(v for _, v in self.headers)) if v)


_configured: LlmSettings | None = None
_lock = threading.Lock()


def configure_llm(settings: LlmSettings | None) -> None:
    """Use ``settings`` for every model call of this process from now on; None goes back to
    reading the ``RUNKIT_LLM_*`` environment variables at each use."""
    global _configured
    if settings is not None and not isinstance(settings, LlmSettings):
        raise TypeError(f"configure_llm takes LlmSettings or None, not {settings!r}")
    with _lock:
        _configured = settings


def current_settings() -> LlmSettings:
    """The settings in force now (ValueError when an environment variable is malformed)."""
    configured = _configured
    return configured if configured is not None else LlmSettings.from_env()
