"""Action kinds: what a run of a kind takes (``definition``), who executes it, and how.

A kind's ``config`` is an attrs class; ``definition`` objects are structured into it with
cattrs at create time, camelCase on the wire (``intervalSeconds``) and snake_case in Python
(``interval_seconds``). A definition that does not fit is a :class:`ValidationError` whose
``loc`` is the path to the bad field (``("definition", "seconds")``).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import attrs
import cattrs
from cattrs.cols import (
    homogenous_tuple_structure_factory,
    is_abstract_set,
    is_any_set,
    is_frozenset,
    is_mapping,
    is_mutable_sequence,
    is_sequence,
    list_structure_factory,
)
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from .errors import ConfigurationError, ErrorDetail, ValidationError
from .models import Run
from .redact import mask_fields

_CAMEL = re.compile(r"_([a-z0-9])")


def camel(name: str) -> str:
    """``interval_seconds`` -> ``intervalSeconds``; a trailing underscore, which only keeps
    a field named like a Python keyword legal (``else_``), is dropped: ``else``."""
    return _CAMEL.sub(lambda m: m.group(1).upper(), name.rstrip("_"))


def _make_config_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)

    def structure_factory(cls: type) -> Callable[[Any, type], Any]:
        overrides = {a.name: override(rename=camel(a.name)) for a in attrs.fields(cls)}
        return make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=True, **overrides)  # type: ignore[arg-type]

    def unstructure_factory(cls: type) -> Callable[[Any], Any]:
        overrides = {a.name: override(rename=camel(a.name)) for a in attrs.fields(cls)}
        return make_dict_unstructure_fn(cls, conv, **overrides)  # type: ignore[arg-type]

    conv.register_structure_hook_factory(attrs.has, structure_factory)
    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)

    # cattrs would turn "5" into 5 and 1.5 into 1; definitions are JSON, so be strict.
    def strict(expected: type) -> Callable[[Any, type], Any]:
        def hook(value: Any, _: type) -> Any:
            ok = isinstance(value, expected) and not isinstance(value, bool)
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                return float(value)
            if not ok:
                raise TypeError(f"expected {expected.__name__}, got {type(value).__name__}")
            return value

        return hook

    conv.register_structure_hook(int, strict(int))
    conv.register_structure_hook(float, strict(float))
    conv.register_structure_hook(str, strict(str))

    def structure_bool(value: Any, _: type) -> bool:
        if not isinstance(value, bool):
            raise TypeError(f"expected bool, got {type(value).__name__}")
        return value

    conv.register_structure_hook(bool, structure_bool)
    _guard_containers(conv)
    return conv


def _guard_containers(conv: cattrs.Converter) -> None:
    """Lists, sets and mappings take only JSON arrays and objects. cattrs iterates whatever
    it is given: a string for a list field became its characters, an object its keys."""

    def guarded(
        expected: str, accepts: tuple[type, ...], make: Callable[[Any], Callable[[Any, Any], Any]]
    ) -> Callable[[Any], Callable[[Any, Any], Any]]:
        def factory(cl: Any) -> Callable[[Any, Any], Any]:
            inner = make(cl)

            def hook(value: Any, t: Any) -> Any:
                if not isinstance(value, accepts):
                    raise TypeError(f"expected {expected}, got {type(value).__name__}")
                return inner(value, t)

            return hook

        return factory

    def set_of(cl: Any) -> Callable[[Any, Any], Any]:
        # Frozen for frozenset and the abstract Set, as cattrs makes them; else a set.
        kind = frozenset if is_frozenset(cl) or is_abstract_set(cl) else set
        args = typing.get_args(cl)
        item = args[0] if args else Any
        return lambda value, _: kind(conv.structure(v, item) for v in value)

    arrays = (list, tuple)
    # Later registrations are tried first: the specific predicates go last.
    conv.register_structure_hook_factory(
        is_sequence,
        guarded("a list", arrays, lambda cl: homogenous_tuple_structure_factory(cl, conv)),
    )
    conv.register_structure_hook_factory(
        is_mutable_sequence, guarded("a list", arrays, lambda cl: list_structure_factory(cl, conv))
    )
    conv.register_structure_hook_factory(
        is_any_set, guarded("a list", (*arrays, set, frozenset), set_of)
    )
    conv.register_structure_hook_factory(
        is_mapping, guarded("an object", (Mapping,), conv.gen_structure_mapping)
    )


#: Structures kind configs from definitions (and back, for the OpenAPI examples).
config_converter = _make_config_converter()


def _flatten(exc: BaseException, path: tuple[str | int, ...]) -> Iterator[ErrorDetail]:
    if isinstance(exc, ForbiddenExtraKeysError):
        for key in sorted(exc.extra_fields):
            yield ErrorDetail((*path, key), "extra field not permitted", "extra_forbidden")
        return
    if isinstance(exc, ClassValidationError):
        by_field, other = exc.group_exceptions()
        for sub, field_note in by_field:
            yield from _flatten(sub, (*path, camel(str(field_note.name))))
        for sub in other:
            yield from _flatten(sub, path)
        return
    if isinstance(exc, IterableValidationError):
        by_index, rest = exc.group_exceptions()
        for sub, index_note in by_index:
            index: int | str = index_note.index
            yield from _flatten(sub, (*path, index))
        for sub in rest:
            yield from _flatten(sub, path)
        return
    if isinstance(exc, KeyError):
        yield ErrorDetail(path, "field required", "missing")
        return
    if isinstance(exc, BaseExceptionGroup):
        for member in exc.exceptions:
            yield from _flatten(member, path)
        return
    yield ErrorDetail(path, str(exc) or type(exc).__name__, "type_error")


def structure_config(
    config: type[Any], definition: Mapping[str, Any], loc: tuple[str | int, ...]
) -> Any:
    """``definition`` as an instance of ``config``, or a ValidationError with field paths."""
    try:
        return config_converter.structure(dict(definition), config)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        details = list(_flatten(exc, loc)) or [ErrorDetail(loc, str(exc), "value_error")]
        if len(details) == 1 and details[0].loc == loc:
            # An attrs validator raised from the class's __init__, after cattrs had every
            # field: cattrs cannot tell which field. Find it by running them one by one.
            details = list(_validator_errors(config, definition, loc)) or details
        raise ValidationError(details) from None


def _validator_errors(
    config: type[Any], definition: Mapping[str, Any], loc: tuple[str | int, ...]
) -> Iterator[ErrorDetail]:
    """The fields of ``config`` whose own validator refuses their value in ``definition``.
    Validators are called without an instance, so one that reads other fields of the
    instance is skipped (the error then stays on the whole definition)."""
    for field in attrs.fields(config):
        key = camel(field.name)
        if key not in definition:
            continue
        raw, where = definition[key], (*loc, key)
        if isinstance(field.type, type) and attrs.has(field.type) and isinstance(raw, Mapping):
            yield from _validator_errors(field.type, raw, where)
            continue
        if field.validator is None:
            continue
        try:
            value = config_converter.structure(raw, field.type) if field.type else raw
            field.validator(None, field, value)
        except (TypeError, ValueError) as exc:
            yield ErrorDetail(where, str(exc) or type(exc).__name__, "value_error")
        except Exception:
            continue


@attrs.frozen
class RetryPolicy:
    """Automatic retries of failed attempts: ``max_attempts`` in all (1: never retry),
    waiting ``min(base * 2**(n-1), max) * (1 ± jitter)`` seconds before attempt n+1."""

    max_attempts: int = 1
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    jitter: float = 0.2


@attrs.frozen
class ApprovalPolicy:
    """Who may decide an approval gate and what happens when nobody does in time."""

    required: int = 1
    approvers: frozenset[str] = frozenset()  # user ids; empty with empty groups: anyone
    groups: frozenset[str] = frozenset()
    #: Whether the run's creator may decide it; False is the four-eyes rule.
    allow_self_approval: bool = True
    timeout_seconds: float | None = None
    on_timeout: str = "reject"  # "reject" | "fail" | "approve"

    def may_decide(self, user_id: str, groups: frozenset[str]) -> bool:
        if not self.approvers and not self.groups:
            return True
        return user_id in self.approvers or bool(self.groups & groups)


class KindChecks(Protocol):
    """What a kind's ``check`` may ask at create time, beyond its own definition: kinds that
    start other runs (``conditional_branch``, ``call_automation``) validate the child runs
    they describe through it, so a bad child is a 422 when the parent is created."""

    def validate(self, kind: Any, definition: Any, loc: Sequence[str | int]) -> Any:
        """The structured config of a run of ``kind`` with ``definition`` (its own
        ``check`` run too). Raises ValidationError at ``(*loc, "kind")`` for an unknown
        kind and at ``(*loc, "definition", ...)`` for a definition that does not fit."""
        ...

    def automation(self, automation_id: str, loc: Sequence[str | int]) -> list[Mapping[str, Any]]:
        """The steps the host's ``runkit_resolve_automation`` hook gives ``automation_id``.
        Raises ValidationError at ``loc`` if no hook resolves it."""
        ...


@attrs.frozen
class Kind:
    """An action kind. ``executor`` is what the engine calls with a run context; ``config``
    the attrs class ``definition`` must fit (None: any JSON object)."""

    name: str
    executor: Callable[..., Any] | None
    config: type[Any] | None = None
    display_name: str | None = None
    description: str = ""
    pausable: bool = False
    cancellable: bool = True
    retry: RetryPolicy = RetryPolicy()
    timeout_seconds: float | None = None
    #: For approval kinds: the policy read from a run's structured config.
    approval: Callable[[Any], ApprovalPolicy] | None = None
    #: Optional: a short phrase for displayStatus while running, from progress.
    describe_progress: Callable[[Mapping[str, Any]], str | None] | None = None
    #: Optional: a realistic ``definition`` for docs, ``GET /api/v1/kinds`` and OpenAPI.
    example: Mapping[str, Any] | None = None
    #: Optional: more checks at create time, called with the structured config and a
    #: :class:`KindChecks` once the definition fits ``config`` (raise ValidationError).
    check: Callable[[Any, KindChecks], None] | None = None
    #: Paths of ``definition`` fields that hold secrets (``"password"``,
    #: ``"source.api_key"``; ``*`` for every key or item): stored and given to the executor
    #: as they are, shown as ``"[redacted]"`` in every run the HTTP API returns.
    secret_fields: tuple[str, ...] = ()

    def validate(self, definition: Any, loc: tuple[str | int, ...] = ("definition",)) -> Any:
        """The structured config of ``definition`` (a dict when the kind has no config)."""
        if not isinstance(definition, Mapping):
            raise ValidationError.at(loc, "definition must be a JSON object", "dict_type")
        if self.config is None:
            return dict(definition)
        return structure_config(self.config, definition, loc)


def not_blank(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    """An attrs validator for a config's text field: refuses one that is only whitespace
    (the 422 names the field)."""
    if not value.strip():
        raise ValueError(f"{attribute.name} is blank")


def _secret_paths(kind: Kind, owner: str) -> frozenset[tuple[str, ...]]:
    if isinstance(kind.secret_fields, str):  # type: ignore[unreachable]  # untyped callers
        raise ConfigurationError(f"{owner}: kind {kind.name!r}: secret_fields is a tuple of paths")
    paths = frozenset(tuple(camel(p) for p in f.split(".")) for f in kind.secret_fields)
    if kind.config is not None and attrs.has(kind.config):
        fields = {camel(a.name) for a in attrs.fields(kind.config)}
        for path in paths:
            if path[0] not in fields and path[0] != "*":
                raise ConfigurationError(
                    f"{owner}: kind {kind.name!r} has no definition field {path[0]!r} "
                    "(secret_fields)"
                )
    return paths


def _collect(value: Any, path: tuple[str, ...], found: list[str]) -> None:
    """Every string at ``path`` in ``value`` (``*``: every key or item), at any depth below."""
    if not path:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, Mapping):
            for item in value.values():
                _collect(item, (), found)
        elif isinstance(value, list):
            for item in value:
                _collect(item, (), found)
        return
    head, rest = path[0], path[1:]
    if isinstance(value, Mapping):
        for key, item in value.items():
            if head in ("*", key):
                _collect(item, rest, found)
    elif isinstance(value, list) and head == "*":
        for item in value:
            _collect(item, rest, found)


class KindRegistry:
    """The kinds a Runkit knows, filled through the ``runkit_register_kinds`` hook."""

    def __init__(self) -> None:
        self._kinds: dict[str, Kind] = {}
        self._owners: dict[str, str] = {}
        self._secret_paths: dict[str, frozenset[tuple[str, ...]]] = {}

    def register(self, kind: Kind, *, owner: str = "<direct>") -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_.-]{0,63}", kind.name):
            raise ConfigurationError(f"{owner}: invalid kind name {kind.name!r}")
        if kind.name in self._kinds:
            raise ConfigurationError(
                f"kind {kind.name!r} registered twice: by {self._owners[kind.name]} and {owner}"
            )
        if kind.executor is None:
            raise ConfigurationError(f"{owner}: kind {kind.name!r} has no executor")
        if kind.config is not None and not attrs.has(kind.config):
            raise ConfigurationError(f"{owner}: kind {kind.name!r} config must be an attrs class")
        if kind.secret_fields:
            self._secret_paths[kind.name] = _secret_paths(kind, owner)
        self._kinds[kind.name] = kind
        self._owners[kind.name] = owner

    def get(self, name: str) -> Kind | None:
        return self._kinds.get(name)

    def require(self, name: Any, loc: tuple[str | int, ...] = ("kind",)) -> Kind:
        kind = self._kinds.get(name) if isinstance(name, str) else None
        if kind is None:
            known = ", ".join(sorted(self._kinds)) or "(none registered)"
            raise ValidationError.at(loc, f"unknown kind {name!r}; known kinds: {known}", "enum")
        return kind

    def approval_policy(self, run: Run) -> ApprovalPolicy | None:
        """The approval policy a run of an approval kind follows, from its definition; None
        for a kind that is no approval gate (or no longer registered)."""
        kind = self._kinds.get(run.kind)
        if kind is None or kind.approval is None:
            return None
        return kind.approval(kind.validate(run.definition))

    def shown_definition(self, run: Run) -> dict[str, Any]:
        """``run.definition`` as clients see it: its kind's ``secret_fields`` shown as
        ``"[redacted]"`` (a copy; the stored definition, which the executor gets, is intact)."""
        paths = self._secret_paths.get(run.kind)
        return mask_fields(run.definition, paths) if paths else dict(run.definition)

    def secret_values(self, run: Run) -> tuple[str, ...]:
        """The strings at ``run``'s kind's ``secret_fields`` (what its logs, error, progress
        and result must never show, wherever the executor puts them)."""
        paths = self._secret_paths.get(run.kind)
        if not paths:
            return ()
        found: list[str] = []
        for path in paths:
            _collect(run.definition, path, found)
        return tuple(found)

    def owner(self, name: str) -> str | None:
        return self._owners.get(name)

    def names(self) -> list[str]:
        return sorted(self._kinds)

    def __iter__(self) -> Iterator[Kind]:
        return iter(self._kinds.values())

    def __len__(self) -> int:
        return len(self._kinds)

    def __contains__(self, name: object) -> bool:
        return name in self._kinds
