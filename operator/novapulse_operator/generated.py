"""Generated paper-mode dashboard credentials (the only randomness in the operator)."""

from __future__ import annotations

import secrets

import bcrypt

from novapulse_operator import manifests
from novapulse_operator.manifests import Manifest, Owner

# The password is 144 random bits: no guessing reaches it at any hash cost, so bcrypt's
# work factor guards nothing here and the minimum (4 rounds, ~1 ms) keeps a burst of a
# thousand new bots from spending a minute of CPU on it (10 rounds: ~60 ms each).
BCRYPT_ROUNDS = 4


def dashboard_secrets(owner: Owner) -> tuple[Manifest, Manifest]:
    """(the Secret the pod uses, the password's own Secret). Blocks for bcrypt's ~1 ms."""
    password = secrets.token_urlsafe(18)
    password_hash = bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()
    pod_secret = manifests.dashboard_secret(
        owner,
        admin_key=secrets.token_urlsafe(32),
        session_secret=secrets.token_urlsafe(48),
        password_hash=password_hash,
    )
    return pod_secret, manifests.login_secret(owner, password)


def how_to_read(owner: Owner) -> str:
    name = manifests.generated_login_secret_name(owner)
    return (
        f"generated dashboard credentials; read the password with: "
        f"kubectl -n {owner.namespace} get secret {name} "
        f"-o jsonpath='{{.data.{manifests.PASSWORD_KEY}}}' | base64 -d"
    )
