"""The live gate end to end: no live pod until the Secrets hold every key of runbook 11."""

from __future__ import annotations

from typing import Any

import bcrypt

from .conftest import Cluster, eventually, operator

BOT = "/apis/novapulse.io/v1alpha1/namespaces/default/tradingbots/bot1"
STRONG_DASHBOARD = {
    "DASHBOARD_ADMIN_KEY": "k3Yq9vR2mX7pL0sT4wZ8bN6cF1hJ5dG",
    "DASHBOARD_SESSION_SECRET": "s8Fq2LmZ0xR7vT3kW9pB5nC1yH6jD4gA",
    "DASHBOARD_ADMIN_PASSWORD_HASH": bcrypt.hashpw(b"a real password", bcrypt.gensalt(4)).decode(),
}
STRONG_EXCHANGE = {
    "KRAKEN_API_KEY": "Qm7Zt2Lx9Rv4Kp1Ws8Nc3Bf6Hj0Dg5Ay",
    "KRAKEN_API_SECRET": "Xw4Pb9Lm2Zq7Rt1Kv6Nc3Hs8Fj0Dg5Ay+/w=",
}
LIVE: dict[str, Any] = {
    "mode": "live",
    "exchange": {"credentialsSecretRef": {"name": "kraken"}},
    "dashboard": {"secretRef": {"name": "dash"}},
}


def condition(bot: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for cond in ((bot or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


async def _deployment(cluster: Cluster) -> dict[str, Any] | None:
    return await cluster.child("apps/v1", "deployments", "bot1")


def _mode_and_replicas(dep: dict[str, Any] | None) -> tuple[str, int] | None:
    if dep is None:
        return None
    mode = dep["spec"]["template"]["metadata"]["labels"]["novapulse.io/mode"]
    return mode, int(dep["spec"]["replicas"])


async def test_live_waits_for_the_missing_key_then_switches(cluster: Cluster) -> None:
    await cluster.create_secret("dash", STRONG_DASHBOARD)
    await cluster.create_secret("kraken", {"KRAKEN_API_KEY": STRONG_EXCHANGE["KRAKEN_API_KEY"]})
    async with operator():
        await cluster.create_bot("bot1", LIVE)

        async def blocked() -> dict[str, Any] | None:
            bot = await cluster.bot("bot1")
            return bot if condition(bot, "LivePrerequisitesMet").get("status") == "False" else None

        bot = await eventually(blocked, what="LivePrerequisitesMet=False")
        cond = condition(bot, "LivePrerequisitesMet")
        assert cond["reason"] == "SecretsIncomplete"
        assert cond["message"] == "Secret kraken lacks KRAKEN_API_SECRET"
        assert bot["status"]["phase"] == "Blocked"
        # Nothing ran before, so nothing runs now: no live pod.
        assert _mode_and_replicas(await _deployment(cluster)) == ("none", 0)
        warnings = await eventually(lambda: _events(cluster, "LivePrerequisitesMissing"),
                                    what="a Warning Event")
        assert warnings[0]["type"] == "Warning"
        assert "KRAKEN_API_SECRET" in warnings[0]["message"]

        # Adding the key to the Secret completes the switch; the TradingBot is not touched.
        await cluster.patch_secret("kraken", STRONG_EXCHANGE)

        async def live() -> bool:
            return _mode_and_replicas(await _deployment(cluster)) == ("live", 1)

        await eventually(live, what="a live Deployment")
        bot = await eventually(lambda: _cond_is(cluster, "LivePrerequisitesMet", "True"))
        assert bot["status"]["effectiveMode"] == "live"
        dep = await _deployment(cluster)
        env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["KRAKEN_API_SECRET"]["valueFrom"]["secretKeyRef"] == {
            "name": "kraken", "key": "KRAKEN_API_SECRET"}
        assert "value" not in env["KRAKEN_API_SECRET"]


async def _events(cluster: Cluster, reason: str) -> list[dict[str, Any]]:
    return await cluster.events(reason)


async def _cond_is(cluster: Cluster, type_: str, value: str) -> dict[str, Any] | None:
    bot = await cluster.bot("bot1")
    return bot if condition(bot, type_).get("status") == value else None


async def test_paper_keeps_running_while_live_is_gated_and_down_is_free(cluster: Cluster,
                                                                        ) -> None:
    await cluster.create_secret("dash", {**STRONG_DASHBOARD, "DASHBOARD_ADMIN_KEY": "changeme"})
    await cluster.create_secret("kraken", STRONG_EXCHANGE)
    async with operator():
        await cluster.create_bot("bot1", {**LIVE, "mode": "paper"})

        async def mode_is(mode: str, replicas: int) -> bool:
            return _mode_and_replicas(await _deployment(cluster)) == (mode, replicas)

        await eventually(lambda: mode_is("paper", 1), what="a paper Deployment")
        await cluster.patch(BOT, {"spec": {"mode": "live"}})
        bot = await eventually(lambda: _cond_is(cluster, "LivePrerequisitesMet", "False"))
        assert "DASHBOARD_ADMIN_KEY is a placeholder" in condition(
            bot, "LivePrerequisitesMet")["message"]
        assert "changeme" not in str(bot)  # the reason, never the value
        bot = await eventually(lambda: _phase(cluster, "Degraded"), what="phase Degraded")
        assert await mode_is("paper", 1)  # the previous mode keeps running

        await cluster.patch(BOT, {"spec": {"mode": "paper"}})  # going down: always allowed
        await eventually(lambda: _phase(cluster, "Starting"), what="paper again")
        assert await mode_is("paper", 1)


async def _phase(cluster: Cluster, phase: str) -> dict[str, Any] | None:
    bot = await cluster.bot("bot1")
    return bot if ((bot or {}).get("status") or {}).get("phase") == phase else None
