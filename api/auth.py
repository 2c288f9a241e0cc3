"""API keys, in one place: where a request carries its key, whether the key is right, and
the one FastAPI dependency that declares it in the OpenAPI document.

A key goes as `X-API-Key: <key>` or `Authorization: Bearer <key>`. The request middleware
refuses a `/v1` request without the right key before its body is read (an unauthenticated
client costs no parsing); `require_api_key` checks the same with the same functions, and
its two security schemes give `/docs` its Authorize button.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from .deps import SettingsDep

KEY_HEADER = "x-api-key"
UNAUTHORIZED = (
    "a valid API key is required: send it as `X-API-Key: <key>` or `Authorization: Bearer <key>`"
)
CHALLENGE = {"WWW-Authenticate": "Bearer"}

# auto_error=False: the check below answers the 401, with the message above
api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The service's key (RAG_SPLADE_API_KEY)."
)
bearer = HTTPBearer(auto_error=False, description="The same key, as a bearer token.")


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries (`headers` with lower-case names), or None."""
    given = headers.get(KEY_HEADER)
    auth = headers.get("authorization", "")
    if given is None and auth[:7].lower() == "bearer ":
        given = auth[7:]
    return given


def key_is_valid(given: str | None, expected: str | None) -> bool:
    """Whether `given` is the key (always, when no key is set), compared in constant time:
    the time taken does not reveal how much of the key matched."""
    if expected is None:
        return True
    if given is None:
        return False
    return hmac.compare_digest(
        given.encode("latin-1", "replace"), expected.encode("latin-1", "replace")
    )


async def require_api_key(
    request: Request,
    settings: SettingsDep,
    _header: Annotated[str | None, Security(api_key_header)],
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> None:
    """With `RAG_SPLADE_API_KEY` set, every `/v1` route needs it."""
    expected = settings.api_key.get_secret_value() if settings.api_key else None
    if not key_is_valid(presented_key(request.headers), expected):
        raise StarletteHTTPException(401, UNAUTHORIZED, headers=CHALLENGE)
