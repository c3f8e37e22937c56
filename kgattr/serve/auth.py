"""Who may write: a bearer token for API clients; for the browser, a session cookie given at login for the same
token, with a per-session CSRF token that every write must echo (``X-CSRF-Token`` header or ``csrf`` form field).
"""
from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, Request

COOKIE = "kgattr_session"


def read_token(token_file=None) -> str | None:
    """The write token: the first line of ``token_file``, else ``$KGATTR_TOKEN`` (None: neither)."""
    if token_file is not None:
        from ..exceptions import KgattrError

        try:
            token = Path(token_file).read_text(encoding="utf-8").strip().split("\n")[0].strip()
        except OSError as e:
            raise KgattrError(f"{token_file}: cannot read the token file ({e.strerror})") from None
        if not token:
            raise KgattrError(f"{token_file}: the token file is empty")
        return token
    return os.environ.get("KGATTR_TOKEN") or None


@dataclass
class Session:
    who: str
    csrf: str


class Guard:
    """Checks writes against ``token``.

    Args:
        token: the secret writers must show.
    """

    def __init__(self, token: str):
        self.token = token
        self.sessions: dict[str, Session] = {}          # cookie value -> session

    def login(self, token: str, who: str) -> str | None:
        """A new session's cookie value for the right token, else None."""
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            return None
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = Session(who.strip() or "reviewer", secrets.token_urlsafe(32))
        return sid

    def session(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE, ""))

    async def writer(self, request: Request) -> str:
        """FastAPI dependency of every write: the name of who writes, or 401 / 403."""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            if hmac.compare_digest(header[7:].strip().encode(), self.token.encode()):
                return request.headers.get("x-reviewer", "api")
            raise HTTPException(401, "wrong token")
        session = self.session(request)
        if session is None:
            raise HTTPException(401, "writing needs a token: an 'Authorization: Bearer TOKEN' header, or log in "
                                     "at /login")
        sent = request.headers.get("x-csrf-token")
        if sent is None and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")):
            sent = (await request.form()).get("csrf")
        if not sent or not hmac.compare_digest(str(sent).encode(), session.csrf.encode()):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page")
        return session.who
