"""What each role of an API key may do: one table, read by the routes before the host's
``authorize`` hook.

A principal with ``roles`` None (what a host's own authenticator makes, unless it says
otherwise) has no built-in limit: the hook alone decides, as before roles existed. A key
holds one or more roles and may do what any of them allows. ``approve`` does not include
``operate``: the people who decide on a run need not be able to start one, and the four-eyes
rule of an approval gate means most when they cannot.
"""

from __future__ import annotations

from collections.abc import Iterable

from runkit import Principal

READ = frozenset({"list", "get", "logs", "kinds", "workers"})

#: role -> the actions (the ``action`` names of the ``authorize`` hook) it allows.
ROLES: dict[str, frozenset[str]] = {
    "read": READ,
    "operate": READ | {"create", "execute", "pause", "resume", "cancel", "retry"},
    "approve": READ | {"approve", "reject"},
    "admin": READ
    | {"create", "execute", "pause", "resume", "cancel", "retry", "approve", "reject", "delete"},
}


def parse_roles(values: Iterable[str]) -> frozenset[str]:
    """Roles named in ``values`` (each may be a comma-separated list); ValueError naming the
    unknown ones."""
    roles = frozenset(r.strip() for v in values for r in v.split(",") if r.strip())
    unknown = sorted(roles - ROLES.keys())
    if unknown:
        raise ValueError(f"unknown role {', '.join(unknown)}; roles: {', '.join(ROLES)}")
    if not roles:
        raise ValueError(f"no role given; roles: {', '.join(ROLES)}")
    return roles


def permits(principal: Principal | None, action: str) -> bool:
    """Whether the principal's roles allow ``action`` (True when it has no roles)."""
    if principal is None or principal.roles is None:
        return True
    return any(action in ROLES.get(role, ()) for role in principal.roles)
