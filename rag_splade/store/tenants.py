"""Tenants: one collection, a reserved payload field, and a condition on every request.

Qdrant's guidance for many tenants is one collection whose tenant field carries a keyword
payload index with `is_tenant=true`, and a `must` condition on that field in every
request. The store adds that condition itself, beneath and ANDed with the user's filter
(the filter language has no `should`/`must_not`, so nothing a filter says can widen it),
and a filter or metadata key named `tenant` is refused.

The default tenant is the one an index without tenants always had: its points carry no
tenant field, so an index written before tenants existed opens as the default tenant,
unchanged. Point ids include the tenant (the default tenant's are the ids they always
were), so the same document id in two tenants is two documents.
"""

from __future__ import annotations

import re

__all__ = [
    "ALL_TENANTS",
    "DEFAULT_TENANT",
    "TENANT_FIELD",
    "TENANT_RULE",
    "check_tenant",
]

TENANT_FIELD = "tenant"  # the top-level payload field; absent for the default tenant
DEFAULT_TENANT = "default"
ALL_TENANTS = "*"  # reads only: every tenant at once (admin statistics, snapshots)
TENANT_RULE = "1-64 characters of A-Z a-z 0-9 . _ - , starting with a letter or a digit"
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_tenant(tenant: object, *, allow_all: bool = False) -> str:
    """`tenant` when it is a valid tenant id (or `ALL_TENANTS`, where allowed).

    Raises:
        TypeError: not a str.
        ValueError: not a tenant id, naming the rule.
    """
    if not isinstance(tenant, str):
        raise TypeError(f"a tenant id is a str, got {type(tenant).__name__}")
    if tenant == ALL_TENANTS and allow_all:
        return tenant
    if not _TENANT.fullmatch(tenant):
        raise ValueError(f"tenant {tenant!r:.80} is not a tenant id: {TENANT_RULE}")
    return tenant
