"""Sessions: the dashboard's login cookie and its CSRF tokens, signed so the server stores none.

A login cookie is `issued.nonce.signature`, signed with the API token that logged in (HMAC-SHA256):
it never holds the token, it expires after `SESSION_AGE`, and it stops working once that token is
removed from the server. CSRF is a signed double submit: a random HttpOnly cookie, and in each
page the HMAC of it under a server key, which every POST must send back. Which paths are the
dashboard's, and which of them need no login, is decided here too; guards.py applies it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Final

from starlette.requests import cookie_parser
from starlette.types import Scope

#: The cookie of a logged-in browser, and the one holding the CSRF nonce.
SESSION_COOKIE: Final = "errands_session"
CSRF_COOKIE: Final = "errands_csrf"
#: The header htmx sends the CSRF token in (hx-headers), and the form field of plain forms.
CSRF_HEADER: Final = "x-csrf-token"
CSRF_FIELD: Final = "csrf"
#: How long a login lasts.
SESSION_AGE: Final = timedelta(hours=12)
#: Paths that belong to the API, which takes bearer tokens only: a cookie there would let any
#: page the browser visits make API calls without a CSRF token.
_API_PREFIXES: Final = ("/api/", "/metrics")


class Sessions:
    """Issues and checks the dashboard's login cookies and CSRF tokens for one server."""

    def __init__(self, tokens: Sequence[str], *, age: timedelta = SESSION_AGE) -> None:
        self._keys = [token.encode() for token in tokens]
        self.age = age
        # With tokens, the CSRF key is derived from them, so pages stay valid across restarts
        # and replicas; without, a key of this process is enough (a restart asks for a reload).
        seed = b"\0".join(sorted(self._keys)) if self._keys else secrets.token_bytes(32)
        self._csrf_key = hashlib.sha256(b"errands-dashboard-csrf\0" + seed).digest()

    @property
    def login_needed(self) -> bool:
        """True when the server has tokens, so a browser must log in with one."""
        return bool(self._keys)

    # -- paths ---------------------------------------------------------------------------------

    @staticmethod
    def serves(path: str) -> bool:
        """True for a path of the dashboard (everything but the API and /metrics)."""
        return not path.startswith(_API_PREFIXES)

    @staticmethod
    def is_open(path: str) -> bool:
        """True for a dashboard path served without a login."""
        return path == "/login" or path.startswith("/static/")

    # -- login ---------------------------------------------------------------------------------

    def token_matches(self, given: str) -> bytes | None:
        """The server's token equal to `given` (compared in constant time with each), or None."""
        candidate = given.strip().encode()
        matches = [hmac.compare_digest(candidate, key) for key in self._keys]
        return self._keys[matches.index(True)] if any(matches) else None

    def issue(self, token: bytes, now: float | None = None) -> str:
        """A login cookie value signed with `token`."""
        issued = str(int(time.time() if now is None else now))
        nonce = secrets.token_urlsafe(16)
        return f"{issued}.{nonce}.{_sign(token, f'{issued}.{nonce}')}"

    def admits(self, scope: Scope, now: float | None = None) -> bool:
        """True if the request carries an unexpired login cookie signed with a current token."""
        return self.valid(_cookies(scope).get(SESSION_COOKIE, ""), now)

    def valid(self, cookie: str, now: float | None = None) -> bool:
        """True for an unexpired login cookie signed with one of the server's tokens."""
        issued, _, rest = cookie.partition(".")
        nonce, _, signature = rest.partition(".")
        if not (issued.isdigit() and nonce and signature):
            return False
        age = (time.time() if now is None else now) - int(issued)
        if not 0 <= age <= self.age.total_seconds():
            return False
        signed = f"{issued}.{nonce}"
        # Every key is tried, so the time taken says nothing about which one matched.
        found = [hmac.compare_digest(_sign(key, signed), signature) for key in self._keys]
        return any(found)

    # -- CSRF ----------------------------------------------------------------------------------

    @staticmethod
    def new_nonce() -> str:
        """A fresh random value for the CSRF cookie."""
        return secrets.token_urlsafe(18)

    def csrf_token(self, nonce: str) -> str:
        """The token a page carries for the browser whose CSRF cookie holds `nonce`."""
        return _sign(self._csrf_key, nonce)

    def csrf_ok(self, nonce: str | None, token: str | None) -> bool:
        """True if `token` is the one issued for `nonce`."""
        if not nonce or not token:
            return False
        return hmac.compare_digest(self.csrf_token(nonce), token)


def _sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _cookies(scope: Scope) -> dict[str, str]:
    for name, value in scope["headers"]:
        if name == b"cookie":
            return cookie_parser(value.decode("latin-1"))
    return {}
