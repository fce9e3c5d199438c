"""JMESPath for the composing kinds: compiling, evaluating within bounds, JMESPath truth, and
``{"$expr": ...}`` markers in child definitions.

Expressions are JMESPath (https://jmespath.org/specification.html), evaluated by the
``jmespath`` library: nothing here is evaluated by Python. A parent run evaluates them on
its *document*, ``{"inputs", "parent", "steps"}`` (:func:`document`).

Bounds, so that a definition someone posts cannot stall a worker: an expression has at most
:data:`MAX_EXPRESSION_CHARS` characters; one evaluation visits at most :data:`MAX_VISITS`
nodes, and no value it builds may exceed :data:`MAX_VALUE_BYTES` plus twice the document's
size (sizes are counted as the value is built, shared parts counted each time they appear,
so ``[@, @] | [@, @] | ...`` stops long before it could double its way out of memory, and
``to_string`` of what it built costs no more than that); its result is at most
:data:`MAX_RESULT_BYTES` of JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

# No stubs: the jmespath distribution ships none, and types-jmespath is not a dependency.
from jmespath import exceptions, functions, lexer, parser, visitor  # type: ignore[import-untyped]

from ...domain.errors import ValidationError

EXPR = "$expr"
MAX_EXPRESSION_CHARS = 2000
MAX_RESULT_BYTES = 256 * 1024
MAX_VISITS = 200_000
MAX_VALUE_BYTES = 4 * 1024 * 1024

Loc = tuple[str | int, ...]

_FUNCTIONS: Mapping[str, Any] = functions.Functions.FUNCTION_TABLE


class ExpressionError(Exception):
    """An expression that compiled could not be evaluated (a function given the wrong type,
    a result too large, a bound reached). ``loc`` is where the expression was written."""

    def __init__(self, message: str, loc: Loc = ()) -> None:
        super().__init__(message)
        self.loc = loc


# ------------------------------------------------------------------ compiling --------------
class _StrictLexer(lexer.Lexer):  # type: ignore[misc]
    """jmespath still reads a backtick literal that is not JSON as a string, with a
    deprecation warning (JEP 12); the specification requires JSON. Refusing it keeps one
    meaning for every literal, and no warning escapes into the host."""

    def _consume_literal(self) -> dict[str, Any]:
        start = self._position
        lexeme = self._consume_until("`").replace("\\`", "`")
        try:
            value = json.loads(lexeme)
        except ValueError:
            raise exceptions.LexerError(
                lexer_position=start,
                lexer_value=lexeme,
                message=f"the literal `{lexeme}` is not JSON (write a string as '{lexeme}')",
            ) from None
        return {"type": "literal", "value": value, "start": start, "end": self._position - start}


def compile_expression(source: Any, loc: Loc) -> Any:
    """``source`` compiled (a jmespath ``ParsedResult``), or a ValidationError at ``loc``:
    not a string, empty, too long, not JMESPath, or calling a function JMESPath lacks (or
    with the wrong number of arguments; jmespath itself finds those only when it runs)."""
    if not isinstance(source, str):
        raise ValidationError.at(loc, "an expression must be a string", "type_error")
    if len(source) > MAX_EXPRESSION_CHARS:
        raise ValidationError.at(
            loc, f"expression longer than {MAX_EXPRESSION_CHARS} characters", "too_long"
        )
    try:
        for _ in _StrictLexer().tokenize(source):
            pass
        parsed = parser.Parser().parse(source)  # what jmespath.compile does
    except exceptions.EmptyExpressionError:
        raise ValidationError.at(loc, "the expression is empty", "expression") from None
    except exceptions.LexerError as exc:
        message = f"{exc.message} (at character {exc.lexer_position + 1})"
        raise ValidationError.at(loc, f"not JMESPath: {message}", "expression") from None
    except exceptions.IncompleteExpressionError:
        raise ValidationError.at(loc, "not JMESPath: it ends too early", "expression") from None
    except exceptions.ParseError as exc:
        message = f"{exc.msg} (at character {exc.lex_position + 1})"
        raise ValidationError.at(loc, f"not JMESPath: {message}", "expression") from None
    except exceptions.JMESPathError as exc:
        raise ValidationError.at(loc, f"not JMESPath: {exc}", "expression") from None
    except RecursionError:
        raise ValidationError.at(loc, "the expression is nested too deeply", "expression") from None
    problem = _function_problem(parsed.parsed)
    if problem is not None:
        raise ValidationError.at(loc, problem, "expression")
    return parsed


def _function_problem(tree: Mapping[str, Any]) -> str | None:
    """The first call to an unknown function, or with the wrong number of arguments."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if node.get("type") == "function_expression":
            name, given = node["value"], len(node["children"])
            spec = _FUNCTIONS.get(name)
            if spec is None:
                return f"unknown function {name}(); JMESPath has {', '.join(sorted(_FUNCTIONS))}"
            signature = spec["signature"]
            variadic = bool(signature) and signature[-1].get("variadic", False)
            if (given < len(signature)) if variadic else (given != len(signature)):
                least = "at least " if variadic else ""
                return f"{name}() takes {least}{len(signature)} argument(s), not {given}"
        stack.extend(c for c in node.get("children", ()) if isinstance(c, dict))
    return None


# ------------------------------------------------------------------ evaluating -------------
def truthy(value: Any) -> bool:
    """JMESPath truth: false, null, "", [] and {} are false; everything else (0 included)
    is true."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | tuple | dict):
        return len(value) > 0
    return True


class _Bounded(visitor.TreeInterpreter):  # type: ignore[misc]
    """jmespath's interpreter, counting its visits and the size of every value it returns.
    Sizes are estimates of the value's JSON, remembered per object (the document's parts
    once, new values from their parts' sizes), so counting costs what building did."""

    def __init__(self, document: Any) -> None:
        super().__init__()
        self._visits = 0
        self._sizes: dict[int, tuple[Any, int]] = {}  # id -> (the object, kept alive; size)
        # The document's own parts are never too big, however big it is: only what the
        # expression builds on top of it counts against the bound.
        self.limit = MAX_VALUE_BYTES + 2 * self.size(document)

    def visit(self, node: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        self._visits += 1
        if self._visits > MAX_VISITS:
            raise ExpressionError(f"the expression took more than {MAX_VISITS:,} steps")
        value = super().visit(node, *args, **kwargs)
        if isinstance(value, dict | list | str) and self.size(value) > self.limit:
            raise ExpressionError("the expression built too large a value")
        return value

    def size(self, value: Any) -> int:
        if not isinstance(value, dict | list):
            return len(value) + 2 if isinstance(value, str) else 8
        # Post-order without recursion: a deeply nested document must not exhaust the stack.
        stack: list[tuple[Any, bool]] = [(value, False)]
        while stack:
            item, expanded = stack.pop()
            if id(item) in self._sizes:
                continue
            children = list(item.values()) if isinstance(item, dict) else item
            if not expanded:
                stack.append((item, True))
                stack.extend(
                    (c, False)
                    for c in children
                    if isinstance(c, dict | list) and id(c) not in self._sizes
                )
                continue
            total = 2 + len(children) + sum(self._known(c) for c in children)
            if isinstance(item, dict):
                total += sum(len(k) + 3 for k in item)
            self._sizes[id(item)] = (item, total)
        return self._known(value)

    def _known(self, value: Any) -> int:
        if isinstance(value, dict | list):
            return self._sizes[id(value)][1]
        return len(value) + 2 if isinstance(value, str) else 8


def evaluate(source: str, document: Any, loc: Loc = ()) -> Any:
    """The value of expression ``source`` on ``document``: a fresh JSON value (nothing of
    the document or the expression's literals is shared with it). ExpressionError if it
    cannot be evaluated within the bounds; ``source`` must compile (see
    :func:`compile_expression`)."""
    try:
        parsed = compile_expression(source, loc)
    except ValidationError as exc:
        raise ExpressionError(exc.details[0].msg, loc) from None
    try:
        value = _Bounded(document).visit(parsed.parsed, document)
    except ExpressionError as exc:
        raise ExpressionError(str(exc), loc) from None
    except (exceptions.JMESPathError, ValueError, TypeError, OverflowError) as exc:
        raise ExpressionError(str(exc), loc) from None
    except RecursionError:
        raise ExpressionError("the expression went too deep into the document", loc) from None
    try:
        encoded = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except ValueError:
        raise ExpressionError("the expression's value is not JSON (NaN or infinity)", loc) from None
    if len(encoded.encode("utf-8", "surrogatepass")) > MAX_RESULT_BYTES:
        raise ExpressionError(
            f"the expression's value is over {MAX_RESULT_BYTES // 1024} KiB of JSON", loc
        )
    return json.loads(encoded)


def document(inputs: Mapping[str, Any], parent: Any, steps: Mapping[str, Any]) -> dict[str, Any]:
    """What expressions see: the definition's ``inputs``, the ``parent`` run's result (or
    null) and the ``steps`` done so far (name -> ``{status, result, error, runId}``)."""
    return {"inputs": dict(inputs), "parent": parent, "steps": dict(steps)}


# ------------------------------------------------------------------ markers ----------------
def is_marker(value: Any) -> bool:
    """``{"$expr": ...}``: an object with that one key (any other object is data)."""
    return isinstance(value, dict) and len(value) == 1 and EXPR in value


def markers(value: Any, loc: Loc) -> Iterator[tuple[Loc, Any]]:
    """Every ``$expr`` marker in ``value``: (the location of its expression, its source),
    in document order."""
    stack: list[tuple[Any, Loc]] = [(value, loc)]
    while stack:
        item, where = stack.pop()
        if is_marker(item):
            yield (*where, EXPR), item[EXPR]
        elif isinstance(item, dict):
            stack.extend((v, (*where, k)) for k, v in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend((v, (*where, i)) for i, v in reversed(list(enumerate(item))))


def substitute(value: Any, replace: Callable[[Any, Loc], Any], loc: Loc) -> Any:
    """``value`` with every marker replaced by ``replace(source, loc)``; a new structure
    (``value`` is not changed). A replacement is final: markers inside it are data."""
    if is_marker(value):
        return replace(value[EXPR], (*loc, EXPR))
    if not isinstance(value, dict | list):
        return value
    root = dict(value) if isinstance(value, dict) else list(value)
    stack: list[tuple[Any, Loc]] = [(root, loc)]
    while stack:
        container, where = stack.pop()
        keys = list(container) if isinstance(container, dict) else range(len(container))
        for key in keys:
            item = container[key]
            if is_marker(item):
                container[key] = replace(item[EXPR], (*where, key, EXPR))
            elif isinstance(item, dict | list):
                copy = dict(item) if isinstance(item, dict) else list(item)
                container[key] = copy
                stack.append((copy, (*where, key)))
    return root


# ------------------------------------------------------------------ child definitions ------
#: Fields of the composing kinds' definitions that hold their own children's definitions:
#: markers there belong to that run (its own document), so a parent filling such a child's
#: definition leaves them alone and fills the rest (``inputs``, mostly).
OWN_TEMPLATES: dict[str, frozenset[str]] = {
    "conditional_branch": frozenset({"then", "else"}),
    "call_automation": frozenset({"steps"}),
}


def _own(kind: str, definition: Any) -> frozenset[str]:
    if isinstance(definition, dict) and not is_marker(definition):
        return OWN_TEMPLATES.get(kind, frozenset())
    return frozenset()


def child_markers(kind: str, definition: Any, loc: Loc) -> list[tuple[Loc, Any]]:
    """The markers a parent fills in the definition (at ``loc``) of a child of ``kind``."""
    own = _own(kind, definition)
    if not own:
        return list(markers(definition, loc))
    parts = [(key, item) for key, item in definition.items() if key not in own]
    return [found for key, item in parts for found in markers(item, (*loc, key))]


def fill_child(kind: str, definition: Any, doc: Any, loc: Loc) -> Any:
    """The definition (at ``loc``) of a child of ``kind`` with the parent's markers
    evaluated on ``doc``; ExpressionError if one cannot be."""

    def replace(source: Any, at: Loc) -> Any:
        return evaluate(source, doc, at)

    own = _own(kind, definition)
    if not own:
        return substitute(definition, replace, loc)
    return {
        key: item if key in own else substitute(item, replace, (*loc, key))
        for key, item in definition.items()
    }
