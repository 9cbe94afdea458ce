"""One bot per exchange account, end to end: a second canary/live TradingBot on a Kraken key
another one already uses gets no pod until the first lets the account go."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import bcrypt

from .conftest import Cluster, eventually, operator

BOTS = "/apis/novapulse.io/v1alpha1/namespaces/default/tradingbots"
SHARED_KEY = "Qm7Zt2Lx9Rv4Kp1Ws8Nc3Bf6Hj0Dg5AyQm7Zt2Lx9Rv4Kp1Ws8Nc3Bf6"
DASHBOARD = {
    "DASHBOARD_ADMIN_KEY": "k3Yq9vR2mX7pL0sT4wZ8bN6cF1hJ5dG",
    "DASHBOARD_SESSION_SECRET": "s8Fq2LmZ0xR7vT3kW9pB5nC1yH6jD4gA",
    "DASHBOARD_ADMIN_PASSWORD_HASH": bcrypt.hashpw(b"a real password", bcrypt.gensalt(4)).decode(),
}
# Two Secrets, two API secrets, one API key: one exchange account.
KRAKEN_A = {"KRAKEN_API_KEY": SHARED_KEY,
            "KRAKEN_API_SECRET": "Xw4Pb9Lm2Zq7Rt1Kv6Nc3Hs8Fj0Dg5Ay+/w="}
KRAKEN_B = {"KRAKEN_API_KEY": SHARED_KEY,
            "KRAKEN_API_SECRET": "Lp3Vb8Nm1Qz6Wt0Kr5Hc2Js7Fd9Gx4Ey+/w="}
# Deletion pauses the bot first: nobody listens here, and leaveOpen lets it go at once.
UNREACHABLE = {"novapulse.io/bot-endpoint": "http://127.0.0.1:1"}
WITHIN = 30.0  # generous for a loaded machine: every wait returns as soon as it holds


def live(secret: str) -> dict[str, Any]:
    return {"mode": "live", "onDelete": "leaveOpen",
            "exchange": {"credentialsSecretRef": {"name": secret}},
            "dashboard": {"secretRef": {"name": "dash"}}}


async def setup_secrets(cluster: Cluster) -> None:
    await cluster.create_secret("dash", DASHBOARD)
    await cluster.create_secret("kraken-a", KRAKEN_A)
    await cluster.create_secret("kraken-b", KRAKEN_B)


async def pod_mode(cluster: Cluster, name: str) -> tuple[str, int] | None:
    """(mode label, replicas) of the bot's Deployment; None before it exists."""
    dep = await cluster.child("apps/v1", "deployments", name)
    if dep is None:
        return None
    return dep["spec"]["template"]["metadata"]["labels"]["novapulse.io/mode"], int(
        dep["spec"]["replicas"])


def gate_condition(bot: dict[str, Any] | None) -> dict[str, Any]:
    for cond in ((bot or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == "LivePrerequisitesMet":
            return dict(cond)
    return {}


async def refused(cluster: Cluster, name: str) -> dict[str, Any] | None:
    bot = await cluster.bot(name)
    return bot if gate_condition(bot).get("reason") == "ExchangeAccountInUse" else None


async def test_a_second_live_bot_on_one_key_waits_until_the_first_goes_paper(
        cluster: Cluster) -> None:
    await setup_secrets(cluster)
    async with operator():
        await cluster.create_bot("first", live("kraken-a"), UNREACHABLE)

        async def first_live() -> bool:
            return await pod_mode(cluster, "first") == ("live", 1)

        await eventually(first_live, within=WITHIN, what="the first bot live")
        await cluster.create_bot("second", live("kraken-b"), UNREACHABLE)

        second = await eventually(lambda: refused(cluster, "second"), within=WITHIN,
                                  what="the second refused for the account")
        cond = gate_condition(second)
        assert cond["status"] == "False"
        assert "TradingBot default/first" in cond["message"]
        assert second["status"]["phase"] == "Blocked"
        assert await pod_mode(cluster, "second") == ("none", 0)  # no live pod
        assert await pod_mode(cluster, "first") == ("live", 1)  # the first keeps running
        first = await cluster.bot("first")
        assert first is not None
        account = second["status"]["exchangeAccount"]
        assert account == first["status"]["exchangeAccount"]  # the same account, by hash

        warnings = await eventually(lambda: cluster.events("ExchangeAccountInUse"),
                                    within=WITHIN, what="a Warning Event")
        assert warnings[0]["type"] == "Warning"
        assert "default/first" in warnings[0]["message"]
        shown = json.dumps([first, second, await cluster.events()])
        assert SHARED_KEY not in shown  # status and Events show a hash, never the key

        await cluster.patch(f"{BOTS}/first", {"spec": {"mode": "paper"}})

        async def second_live() -> bool:
            return await pod_mode(cluster, "second") == ("live", 1)

        await eventually(second_live, within=WITHIN,
                         what="the second bot live once the first is paper")
        assert await pod_mode(cluster, "first") == ("paper", 1)
        first = await cluster.bot("first")
        assert "exchangeAccount" not in (first or {}).get("status", {})


async def test_two_bots_created_together_never_both_run_and_deletion_frees_the_account(
        cluster: Cluster) -> None:
    await setup_secrets(cluster)
    async with operator():
        await asyncio.gather(cluster.create_bot("one", live("kraken-a"), UNREACHABLE),
                             cluster.create_bot("two", live("kraken-b"), UNREACHABLE))
        running: set[str] = set()

        async def settled() -> tuple[str, str] | None:
            modes = {name: await pod_mode(cluster, name) for name in ("one", "two")}
            running.update(name for name, mode in modes.items() if mode == ("live", 1))
            assert len(running) < 2, f"both bots ran live at some point: {modes}"
            for winner, loser in (("one", "two"), ("two", "one")):
                if modes[winner] == ("live", 1) and await refused(cluster, loser):
                    return winner, loser
            return None

        winner, loser = await eventually(settled, within=WITHIN,
                                         what="one live bot, the other refused")
        assert f"TradingBot default/{winner}" in gate_condition(
            await cluster.bot(loser))["message"]

        await cluster.delete(f"{BOTS}/{winner}")

        async def loser_live() -> bool:
            return await pod_mode(cluster, loser) == ("live", 1)

        await eventually(loser_live, within=WITHIN,
                         what="the other bot live once the first is gone")
