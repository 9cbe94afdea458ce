"""Generated paper-mode dashboard credentials (the only randomness in the operator)."""

from __future__ import annotations

import secrets

import bcrypt

from novapulse_operator import manifests
from novapulse_operator.manifests import Manifest, Owner

# The password is 144 random bits, so the hash cost guards nothing a guess could reach; 10
# rounds keeps a burst of new bots cheap (~60 ms each, off the event loop).
BCRYPT_ROUNDS = 10


def dashboard_secrets(owner: Owner) -> tuple[Manifest, Manifest]:
    """(the Secret the pod uses, the password's own Secret). Blocking (bcrypt): call it in a
    thread."""
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
