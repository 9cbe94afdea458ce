"""Secrets from the environment, the live-mode startup checks of runbook 11, and the dashboard
secrets that paper mode generates for one session.

Secrets are never part of the config model and never leave this module in a message: every
problem names the variable, never its value, and the dataclasses hide their values from repr.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets as token_source
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt

ADMIN_KEY = "DASHBOARD_ADMIN_KEY"
READ_KEY = "DASHBOARD_READ_KEY"
SESSION_SECRET = "DASHBOARD_SESSION_SECRET"
PASSWORD_HASH = "DASHBOARD_ADMIN_PASSWORD_HASH"
KRAKEN_KEY = "KRAKEN_API_KEY"
KRAKEN_SECRET = "KRAKEN_API_SECRET"

LIVE_REQUIRED = (ADMIN_KEY, SESSION_SECRET, PASSWORD_HASH, KRAKEN_KEY, KRAKEN_SECRET)
GUARDED_MODES = frozenset({"live", "canary"})
# The same strength rules as the operator's live gate, so a bot and its operator agree.
MIN_LENGTH = {ADMIN_KEY: 24, READ_KEY: 24, SESSION_SECRET: 32, KRAKEN_KEY: 16, KRAKEN_SECRET: 16}
MIN_DISTINCT_CHARS = 8
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
_PLACEHOLDER = re.compile(
    r"^<.*>$|changeme|change-me|change_me|placeholder|your[_-]|example|dummy|xxxx|^test|"
    r"^secret$|^password$|strong-random|^todo",
    re.IGNORECASE,
)
GENERATED_PASSWORD_BYTES = 15  # 20 url-safe characters
GENERATED_HASH_ROUNDS = 12


def is_bcrypt_hash(value: str) -> bool:
    return _BCRYPT_HASH.match(value.strip()) is not None


def secret_weakness(name: str, value: str) -> str | None:
    """Why a present value is not a real secret, or None. Never echoes the value. The bot's
    start-up checks and the operator's live gate both judge with this one function."""
    if _PLACEHOLDER.search(value):
        return f"{name} is a placeholder, not a real secret"
    min_length = MIN_LENGTH.get(name, 16)
    if len(value) < min_length:
        return f"{name} is too short (under {min_length} characters)"
    if len(set(value)) < MIN_DISTINCT_CHARS:
        return f"{name} is too weak (fewer than {MIN_DISTINCT_CHARS} distinct characters)"
    if name == "KRAKEN_API_SECRET" and not _is_base64(value):
        return f"{name} is not base64 (Kraken issues API secrets base64-encoded)"
    return None


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _value(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def startup_problems(mode: str, environ: Mapping[str, str]) -> list[str]:
    """Every reason the bot must not start in `mode` with these variables (empty: it may).

    Live and canary modes need every variable of runbook 11, well-formed and of real strength.
    Paper mode only refuses values that are present and unusable (a malformed hash would
    lock the operator out of the dashboard)."""
    problems: list[str] = []
    guarded = mode in GUARDED_MODES
    for name in LIVE_REQUIRED:
        value = _value(environ, name)
        if not value:
            if guarded:
                problems.append(f"{name} is required in {mode} mode")
            continue
        if name == PASSWORD_HASH:
            if not is_bcrypt_hash(value):
                problems.append(f"{PASSWORD_HASH} is not a well-formed bcrypt hash "
                                "(generate one with bcrypt.hashpw)")
        elif guarded:
            weakness = secret_weakness(name, value)
            if weakness:
                problems.append(weakness)
    read_key = _value(environ, READ_KEY)
    if read_key:
        if read_key == _value(environ, ADMIN_KEY):
            problems.append(f"{READ_KEY} must differ from {ADMIN_KEY}")
        elif guarded:
            weakness = secret_weakness(READ_KEY, read_key)
            if weakness:
                problems.append(weakness)
    return problems


@dataclass(frozen=True)
class DashboardSecrets:
    """What the API needs to authenticate. `generated_password` is set only when this session
    made the password up (paper mode): shown once on the console, never stored."""

    admin_key: str = field(repr=False)
    session_secret: str = field(repr=False)
    password_hash: bytes = field(repr=False)
    read_key: str | None = field(default=None, repr=False)
    generated: tuple[str, ...] = ()
    generated_password: str | None = field(default=None, repr=False)

    def values(self) -> list[str]:
        """Every secret value, for tests and redaction checks."""
        found = [self.admin_key, self.session_secret, self.password_hash.decode()]
        found += [v for v in (self.read_key, self.generated_password) if v]
        return found


def hash_password(password: str, rounds: int = GENERATED_HASH_ROUNDS) -> bytes:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds))


def dashboard_secrets(environ: Mapping[str, str]) -> DashboardSecrets:
    """The dashboard secrets from the environment, generating each one that is missing (the
    caller has already run `startup_problems`, so in live mode none is missing)."""
    generated: list[str] = []

    def take(name: str) -> str:
        value = _value(environ, name)
        if value:
            return value
        generated.append(name)
        return token_source.token_urlsafe(32)

    admin_key = take(ADMIN_KEY)
    session_secret = take(SESSION_SECRET)
    password: str | None = None
    hash_text = _value(environ, PASSWORD_HASH)
    if hash_text:
        password_hash = hash_text.encode()
    else:
        password = token_source.token_urlsafe(GENERATED_PASSWORD_BYTES)
        password_hash = hash_password(password)
        generated.append(PASSWORD_HASH)
    return DashboardSecrets(admin_key=admin_key, session_secret=session_secret,
                            password_hash=password_hash,
                            read_key=_value(environ, READ_KEY) or None,
                            generated=tuple(generated), generated_password=password)


CREDENTIALS_FILE = "dashboard-login.txt"


def write_generated(dash: DashboardSecrets, path: Path) -> None:
    """The values generated for this session, in a file only its owner may read (0600): where
    they go when the console is not a terminal (a container's console is its log)."""
    lines = []
    if dash.generated_password is not None:
        lines.append(f"password={dash.generated_password}")
    if ADMIN_KEY in dash.generated:
        lines.append(f"{ADMIN_KEY}={dash.admin_key}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an older file may have had other bits
        handle.write("\n".join(lines) + "\n")


def login_banner(url: str, dash: DashboardSecrets, reveal: bool = True,
                 saved_to: Path | None = None, pod: str | None = None) -> str:
    """How to reach and log in to the dashboard, printed once to the console and never
    logged. Generated values appear only when `reveal` (the console is a terminal); else the
    banner says where they were saved (`saved_to`)."""
    lines = [f"NovaPulse dashboard: {url}"]
    if dash.generated_password is not None and reveal:
        lines.append(f"  log in with the password (this session only): {dash.generated_password}")
    elif dash.generated_password is None:
        lines.append(f"  log in with the password whose bcrypt hash is in {PASSWORD_HASH}")
    if ADMIN_KEY in dash.generated and reveal:
        lines.append(f"  API admin key (this session only): {dash.admin_key}")
        lines.append(f"  e.g. curl -s {url}/api/v1/status -H \"X-API-Key: {dash.admin_key}\"")
    elif ADMIN_KEY not in dash.generated:
        lines.append(f"  API: X-API-Key: ${ADMIN_KEY}")
    if dash.generated and not reveal:
        where = f"cat {saved_to}" if pod is None else f"kubectl exec {pod} -- cat {saved_to}"
        lines.append("  generated password and admin key (this session only) are not printed "
                     f"here, as this console is not a terminal; read them with: {where}")
    if dash.generated:
        lines.append("  (set " + ", ".join(dash.generated) + " to keep them across restarts)")
    return "\n".join(lines)
