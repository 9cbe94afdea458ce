"""Who is calling: API keys (admin, read-only), dashboard sessions with CSRF tokens (the
login's throttle is in `throttle.py`).

Keys are compared in constant time, against every configured key, so the timing tells nothing
about which key came close. Sessions are random ids kept in memory (logout and restart end them)
and carried in a cookie signed with the session secret; each session has its own CSRF token.
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import secrets
import time
from dataclasses import dataclass, field

import bcrypt
from fastapi import HTTPException, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from novapulse.secrets import DashboardSecrets

SESSION_COOKIE = "np_session"
CSRF_COOKIE = "np_csrf"
API_KEY_HEADER = "X-API-Key"
CSRF_HEADER = "X-CSRF-Token"
SESSION_SALT = "novapulse-session"


class Role(enum.Enum):
    READ = "read"
    ADMIN = "admin"


@dataclass(frozen=True)
class Caller:
    role: Role
    via_session: bool
    csrf_token: str | None = None


@dataclass(frozen=True)
class AuthSettings:
    admin_key: str = field(repr=False)
    session_secret: str = field(repr=False)
    password_hash: bytes = field(repr=False)
    read_key: str | None = field(default=None, repr=False)
    session_max_age_s: int = 12 * 3600
    login_free_failures: int = 3  # then the wait doubles from 1 s (see throttle.py)
    login_max_delay_s: float = 900.0
    trusted_proxies: tuple[str, ...] = ()  # whose X-Forwarded-For names the client
    metrics_require_key: bool = False  # /metrics: the read or admin key (X-API-Key or Bearer)

    @classmethod
    def from_secrets(cls, dash: DashboardSecrets, trusted_proxies: tuple[str, ...] = (),
                     metrics_require_key: bool = False) -> AuthSettings:
        return cls(admin_key=dash.admin_key, session_secret=dash.session_secret,
                   password_hash=dash.password_hash, read_key=dash.read_key,
                   trusted_proxies=trusted_proxies, metrics_require_key=metrics_require_key)


def _same(given: bytes, expected: str | None) -> bool:
    if expected is None:  # still spend the comparison: timing must not tell what is set
        hmac.compare_digest(given, given)
        return False
    return hmac.compare_digest(given, expected.encode())


def role_for_key(settings: AuthSettings, key: str) -> Role | None:
    given = key.encode()
    is_admin = _same(given, settings.admin_key)
    is_read = _same(given, settings.read_key)  # always both: no early exit on a match
    if is_admin:
        return Role.ADMIN
    return Role.READ if is_read else None


async def password_matches(settings: AuthSettings, password: str) -> bool:
    """bcrypt off the event loop; a password bcrypt cannot take (over 72 bytes) is wrong."""
    def check() -> bool:
        try:
            return bcrypt.checkpw(password.encode(), settings.password_hash)
        except ValueError:
            return False

    return await asyncio.to_thread(check)


@dataclass
class _Session:
    csrf_token: str
    expires_at: float


class SessionStore:
    """Live dashboard sessions. The cookie holds only the signed session id."""

    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings
        self._signer = URLSafeTimedSerializer(settings.session_secret, salt=SESSION_SALT)
        self._sessions: dict[str, _Session] = {}

    def create(self) -> tuple[str, str]:
        """A new session: (signed cookie value, CSRF token)."""
        self._expire()
        session_id = secrets.token_urlsafe(32)
        csrf_token = secrets.token_urlsafe(32)
        expires = time.monotonic() + self._settings.session_max_age_s
        self._sessions[session_id] = _Session(csrf_token, expires)
        return self._signer.dumps(session_id), csrf_token

    def lookup(self, cookie: str | None) -> _Session | None:
        session_id = self._session_id(cookie)
        session = self._sessions.get(session_id) if session_id else None
        if session is None or session.expires_at < time.monotonic():
            return None
        return session

    def end(self, cookie: str | None) -> None:
        session_id = self._session_id(cookie)
        if session_id:
            self._sessions.pop(session_id, None)

    def _session_id(self, cookie: str | None) -> str | None:
        if not cookie:
            return None
        try:
            value = self._signer.loads(cookie, max_age=self._settings.session_max_age_s)
        except BadSignature:
            return None
        return value if isinstance(value, str) else None

    def _expire(self) -> None:
        now = time.monotonic()
        for session_id in [k for k, s in self._sessions.items() if s.expires_at < now]:
            del self._sessions[session_id]


def _unauthorized() -> HTTPException:
    return HTTPException(401, "missing or invalid credentials: send X-API-Key or log in",
                         headers={"WWW-Authenticate": "API-Key"})


class Authenticator:
    """FastAPI dependencies: `read` for any caller, `admin` for control."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.sessions = SessionStore(settings)

    def identify(self, request: Request) -> Caller:
        key = request.headers.get(API_KEY_HEADER)
        if key is not None:  # a key, when sent, decides alone
            role = role_for_key(self.settings, key)
            if role is None:
                raise _unauthorized()
            return Caller(role, via_session=False)
        session = self.sessions.lookup(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise _unauthorized()
        return Caller(Role.ADMIN, via_session=True, csrf_token=session.csrf_token)

    async def password_matches(self, password: str) -> bool:
        return await password_matches(self.settings, password)

    async def read(self, request: Request) -> Caller:
        return self.identify(request)

    def metrics_allowed(self, request: Request) -> bool:
        """/metrics is open (Prometheus' convention; the NetworkPolicy says who reaches it)
        unless `metrics_require_key`: then the read or admin key, as X-API-Key or as
        `Authorization: Bearer` (what scrapers send)."""
        if not self.settings.metrics_require_key:
            return True
        key = request.headers.get(API_KEY_HEADER)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if key is None and scheme.lower() == "bearer":
            key = token.strip()
        return key is not None and role_for_key(self.settings, key) is not None

    async def admin(self, request: Request) -> Caller:
        caller = self.identify(request)
        if caller.role is not Role.ADMIN:
            raise HTTPException(403, "this key is read-only; control needs the admin key")
        if caller.via_session:
            sent = request.headers.get(CSRF_HEADER, "")
            cookie = request.cookies.get(CSRF_COOKIE, "")
            expected = caller.csrf_token or ""
            if not (hmac.compare_digest(sent.encode(), expected.encode())
                    and hmac.compare_digest(cookie.encode(), expected.encode())):
                raise HTTPException(403, "missing or wrong X-CSRF-Token")
        return caller
