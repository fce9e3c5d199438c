"""The failures of the kinds that ask a language model. A run's ``error.type`` is the class
name of what its executor raised; each carries ``details`` that the run's ``error`` object
merges (the tokens spent so far as ``usage``: ``{"prompt", "completion", "calls"}``,
an HTTP ``status``)::

    Fatal
    ├── LlmNotConfigured     no provider is ready at run time (it was at create time)
    ├── ModelUnavailable     429, 5xx or no connection, still after runkit's retries
    ├── ModelRequestFailed   any other refusal: a bad key (401), an unknown model, a
    │                        prompt too long (400)
    └── ModelOutputInvalid   the answer did not have the shape asked for, twice (the second
                             time after the model was shown what was wrong)

:class:`OutputRejected` is what a validator given to ``complete_json`` raises to say what is
wrong with an answer; :class:`ProviderError` is what a provider raises for a failed call.
"""

from __future__ import annotations

from typing import Any

from ...authoring import Fatal


class _LlmFailure(Fatal):
    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        #: Merged into the run's ``error`` object.
        self.details: dict[str, Any] = {k: v for k, v in details.items() if v is not None}


class LlmNotConfigured(_LlmFailure):
    """No language-model provider is ready (the settings changed after the run was made)."""


class ModelUnavailable(_LlmFailure):
    """The model's server answered 429 or 5xx, or could not be reached, on every try."""


class ModelRequestFailed(_LlmFailure):
    """The model's server refused the request for a reason no retry changes."""


class ModelOutputInvalid(_LlmFailure):
    """The model's answer was not what was asked for, even after being shown the error."""


class InvalidSchema(Fatal):
    """A schema given to check the model's answer refers to something it does not hold
    (references are resolved within the schema only: nothing is ever downloaded)."""


class OutputRejected(ValueError):
    """Raised by a ``complete_json`` validator: ``str()`` is shown to the model, which is
    asked once more."""


class ProviderError(Exception):
    """A provider's failed call. ``status``: the HTTP status (None: no answer, e.g. the
    connection failed); ``retryable``: whether runkit may try again (429, 5xx, a lost
    connection); ``retry_after``: the seconds the server asked to wait, if it did."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
