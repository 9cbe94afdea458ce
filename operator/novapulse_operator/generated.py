"""Generated paper-mode dashboard credentials (the only randomness in the operator)."""

from __future__ import annotations

import secrets

import bcrypt

from novapulse_operator import manifests
from novapulse_operator.manifests import Manifest, Owner


def dashboard_secret(owner: Owner) -> Manifest:
    password = secrets.token_urlsafe(18)
    password_hash = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=12)).decode()
    return manifests.dashboard_secret(
        owner,
        admin_key=secrets.token_urlsafe(32),
        session_secret=secrets.token_urlsafe(48),
        password=password,
        password_hash=password_hash,
    )


def how_to_read(owner: Owner) -> str:
    name = manifests.generated_dashboard_secret_name(owner)
    return (
        f"generated dashboard credentials in Secret {name}; read the password with: "
        f"kubectl -n {owner.namespace} get secret {name} "
        "-o jsonpath='{.data.DASHBOARD_ADMIN_PASSWORD}' | base64 -d"
    )
