"""Who a request is and what it may do, in one place.

A key goes as `X-API-Key: <key>` or `Authorization: Bearer <key>`. It is either the one
`RAG_SPLADE_API_KEY` (an admin key for every tenant) or a key of `RAG_SPLADE_KEYS_FILE`
(`rag_splade.keys`: tenants and a role). With neither set the service is open: every
request is an admin of every tenant.

The request middleware asks `Authenticator.principal` before the body is read (an
unauthenticated client costs no parsing) and answers 401; each route then asks for a
role and a tenant with one dependency (`Read`, `Write`, `Admin`), which answers 403 for
a known key without the right. The tenant comes from the key: a key of one tenant uses
it; a key of several names one per request (`X-Tenant` header or `?tenant=`). The
dependency's security schemes give `/docs` its Authorize button.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag_splade.keys import KeyFile, Principal, Role
from rag_splade.store.tenants import ALL_TENANTS, DEFAULT_TENANT, check_tenant

from .config import ServiceSettings, check_header_key
from .errors import ApiError, InvalidRequest

KEY_HEADER = "x-api-key"
UNAUTHORIZED = (
    "a valid API key is required: send it as `X-API-Key: <key>` or `Authorization: Bearer <key>`"
)
CHALLENGE = {"WWW-Authenticate": "Bearer"}
OPEN = Principal("open", "admin", (ALL_TENANTS,))  # no key configured: everything allowed
SINGLE = Principal("api-key", "admin", (ALL_TENANTS,))  # RAG_SPLADE_API_KEY

# auto_error=False: the check answers the 401 itself, with the message above
api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="RAG_SPLADE_API_KEY, or a key of RAG_SPLADE_KEYS_FILE.",
)
bearer = HTTPBearer(auto_error=False, description="The same key, as a bearer token.")


class Forbidden(ApiError):
    status = 403
    error = "forbidden"


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries (`headers` with lower-case names), or None."""
    given = headers.get(KEY_HEADER)
    auth = headers.get("authorization", "")
    if given is None and auth[:7].lower() == "bearer ":
        given = auth[7:]
    return given


def key_is_valid(given: str | None, expected: str) -> bool:
    """Whether `given` is `expected`, compared in constant time: the time taken does not
    reveal how much of the key matched."""
    if given is None:
        return False
    # Header values arrive decoded as Latin-1, so encoding them back gives the bytes sent;
    # the service's key is visible ASCII (ServiceSettings refuses any other). Nothing is
    # encoded lossily: a character no byte holds is a wrong key, never a '?' that matches.
    try:
        sent, wanted = given.encode("latin-1"), expected.encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(sent, wanted)


class Authenticator:
    """The service's keys: `RAG_SPLADE_API_KEY` and `RAG_SPLADE_KEYS_FILE`."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.single = settings.api_key.get_secret_value() if settings.api_key else None
        if self.single is not None:  # settings made without validation reach here too
            check_header_key(self.single, "RAG_SPLADE_API_KEY")
        self.keys = KeyFile(settings.keys_file) if settings.keys_file else None

    @property
    def open(self) -> bool:
        return self.single is None and self.keys is None

    def principal(self, headers: Mapping[str, str]) -> Principal | None:
        """Who the request's key is; None: no key, or an unknown one (a 401)."""
        if self.open:
            return OPEN
        given = presented_key(headers)
        single = self.single is not None and key_is_valid(given, self.single)
        from_file = self.keys.principal(given) if self.keys is not None else None
        return SINGLE if single else from_file

    def is_known_tenant(self, tenant: str) -> bool:
        """Whether metrics and logs may name `tenant`: the default one, or one a key names
        (the rest read as "other", so the label stays bounded)."""
        return tenant == DEFAULT_TENANT or (self.keys is not None and tenant in self.keys.tenants())


def authenticator_of(request: Request) -> Authenticator:
    """The app's authenticator (made from its settings for an app that did not make one)."""
    state = request.app.state
    found: Authenticator | None = getattr(state, "authenticator", None)
    if found is None:
        found = state.authenticator = Authenticator(state.settings)
    return found


async def require_api_key(
    request: Request,
    _header: Annotated[str | None, Security(api_key_header)],
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Principal:
    """The request's principal (the middleware's, or worked out here for a router mounted
    without it); a 401 without a valid key."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        principal = authenticator_of(request).principal(request.headers)
    if principal is None:
        raise StarletteHTTPException(401, UNAUTHORIZED, headers=CHALLENGE)
    request.state.principal = principal
    return principal


@dataclass(frozen=True)
class Access:
    """What a route may do for this request: the principal, and the one tenant it acts for
    (`ALL_TENANTS` only where a route allows an admin to read every tenant)."""

    principal: Principal
    tenant: str


def access(role: Role, *, all_tenants: bool = False) -> Callable[..., Any]:
    """The dependency of a route that needs `role`: 403 without it, and the tenant."""

    async def dependency(
        request: Request,
        principal: Annotated[Principal, Depends(require_api_key)],
        x_tenant: Annotated[
            str | None, Header(description="The tenant to act for (a key of several).")
        ] = None,
        tenant: Annotated[
            str | None, Query(description="The tenant to act for, as X-Tenant.")
        ] = None,
    ) -> Access:
        if not principal.may(role):
            raise Forbidden(f"this key's role is {principal.role}; this route needs {role}")
        chosen = tenant_for(principal, x_tenant, tenant, all_tenants)
        request.state.tenant = chosen
        return Access(principal, chosen)

    return dependency


def tenant_for(principal: Principal, header: str | None, query: str | None, all_ok: bool) -> str:
    """The one tenant a request acts for: named by X-Tenant or ?tenant= (and allowed to
    the key), else the key's own; a 403 or 422 naming what was wrong."""
    if header is not None and query is not None and header != query:
        raise InvalidRequest(f"X-Tenant {header!r:.80} and ?tenant={query!r:.80} differ: name one")
    named = header if header is not None else query
    if named is None:
        concrete = [t for t in principal.tenants if t != ALL_TENANTS]
        if ALL_TENANTS in principal.tenants:
            return DEFAULT_TENANT
        if len(concrete) == 1:
            return concrete[0]
        raise InvalidRequest(
            f"this key may use {len(concrete)} tenants ({', '.join(concrete)}): name one with "
            "the X-Tenant header or ?tenant="
        )
    if named == ALL_TENANTS:
        if not all_ok:
            raise InvalidRequest("tenant '*' (every tenant) is only for reading /v1/stats")
        if not (principal.may("admin") and ALL_TENANTS in principal.tenants):
            raise Forbidden("every tenant's counts (tenant '*') need an admin key of every tenant")
        return ALL_TENANTS
    try:
        checked = check_tenant(named)
    except (TypeError, ValueError) as e:
        raise InvalidRequest(str(e)) from e
    if not principal.may_use(checked):
        raise Forbidden(f"this key may not use tenant {checked!r}")
    return checked


Read = Annotated[Access, Depends(access("read"))]
ReadAny = Annotated[Access, Depends(access("read", all_tenants=True))]
Write = Annotated[Access, Depends(access("write"))]
Admin = Annotated[Access, Depends(access("admin"))]
