"""What a definition may choose about the model (``model``, ``temperature``, ``maxTokens``),
and the create-time check every kind that asks a model makes.

A kind's config declares the three fields itself, with these validators, so that they sit
in its definition (and its JSON schema) beside its own::

    model: str | None = attrs.field(default=None, validator=MODEL)
    temperature: float | None = attrs.field(default=None, validator=TEMPERATURE)
    max_tokens: int | None = attrs.field(default=None, validator=MAX_TOKENS)

and its ``Kind(check=...)`` is (or calls) :func:`check_configured`: a 422 naming the settings
when no model is configured.
"""

from __future__ import annotations

from typing import Any

import attrs

from ...authoring import KindChecks
from ...domain.errors import ValidationError
from .providers import NotConfigured, resolve_model, select_provider

MODEL = attrs.validators.optional(
    attrs.validators.and_(attrs.validators.min_len(1), attrs.validators.max_len(200))
)
TEMPERATURE = attrs.validators.optional(
    attrs.validators.and_(attrs.validators.ge(0.0), attrs.validators.le(2.0))
)
MAX_TOKENS = attrs.validators.optional(
    attrs.validators.and_(attrs.validators.ge(1), attrs.validators.le(1_000_000))
)


@attrs.frozen
class ModelOptions:
    """The model a run asks (None: the provider's default), its sampling temperature and
    the most tokens an answer may have (None: the server's defaults)."""

    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None

    @classmethod
    def of(cls, config: Any) -> ModelOptions:
        """The options of a kind's structured config (its ``model``, ``temperature`` and
        ``max_tokens`` fields; missing ones are None)."""
        return cls(
            getattr(config, "model", None),
            getattr(config, "temperature", None),
            getattr(config, "max_tokens", None),
        )


def check_configured(config: Any, checks: KindChecks | None = None) -> None:
    """A ``Kind.check``: ValidationError at the definition (a 422, type
    ``llm_not_configured``) naming the settings when no provider is ready, or when neither
    the definition's ``model`` nor the provider names a model."""
    try:
        resolve_model(select_provider(), getattr(config, "model", None))
    except NotConfigured as exc:
        raise ValidationError.at(("definition",), str(exc), "llm_not_configured") from None
