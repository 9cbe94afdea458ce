"""`novapulse-operator`: run the operator (default) or print the CRD.

    novapulse-operator run [--namespace NS ...] [--standalone] [--priority N]
    novapulse-operator crd > crds/tradingbot.yaml

Login is kopf's standard one: the in-cluster service account, else KUBECONFIG or
~/.kube/config — so it runs unchanged against kind, a real cluster or an emulator.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import kopf

from novapulse_operator import botapi, crd, metrics, netpol, webhook
from novapulse_operator.handlers import OperatorConfig, register

PROG = "novapulse-operator"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="novapulse-operator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run the operator (the default)")
    run.add_argument("--namespace", "-n", action="append", default=[],
                     help="watch this namespace (repeatable); default: all namespaces")
    run.add_argument("--standalone", action="store_true",
                     help="no peering: only for a single replica or local runs")
    run.add_argument("--priority", type=int, default=0,
                     help="peering priority; the highest active replica works, others wait")
    run.add_argument("--peering-name", default="novapulse")
    run.add_argument("--liveness", default="http://0.0.0.0:8080/healthz",
                     help="liveness endpoint URL ('' disables)")
    run.add_argument("--metrics-port", type=int, default=9090, help="0 disables")
    run.add_argument("--resync-seconds", type=float, default=30.0)
    run.add_argument("--bot-poll-seconds", type=float, default=5.0,
                     help="how often the auto-pilot polls each bot's API")
    run.add_argument("--flat-wait-seconds", type=float, default=60.0,
                     help="on deletion, how long to wait for close_all to make the bot flat")
    run.add_argument("--bot-endpoint-template", default=botapi.DEFAULT_ENDPOINT_TEMPLATE,
                     help="URL of a bot from {name} and {namespace}")
    run.add_argument("--allow-bot-endpoint-annotation", action="store_true",
                     help=f"honour the annotation {botapi.ENDPOINT_ANNOTATION} (local runs and "
                     "tests only: the bot's admin key is sent wherever it points); without "
                     "this flag it is ignored with a Warning Event")
    run.add_argument("--webhook-port", type=int, default=0,
                     help="serve the validating admission webhook (HTTPS) here; 0 disables")
    run.add_argument("--webhook-cert-dir", type=Path, default=Path("/etc/novapulse/webhook"),
                     help=f"holds the webhook's {webhook.CERT_FILE} and {webhook.KEY_FILE}")
    run.add_argument("--webhook-addr", default="0.0.0.0", help="the webhook's bind address")
    run.add_argument("--operator-namespace", default=None,
                     help="namespace of the operator's pods, the only ones (with each bot's "
                     "spec.network.ingressFrom) its NetworkPolicy admits; default: $POD_NAMESPACE,"
                     " else the service account's namespace, else none (outside a cluster)")
    run.add_argument("--operator-pod-label", action="append", default=[], metavar="KEY=VALUE",
                     help="a label of the operator's pods (repeatable); default "
                     "app.kubernetes.io/name=novapulse-operator")
    run.add_argument("--verbose", "-v", action="store_true")
    sub.add_parser("crd", help="print the TradingBot CRD (YAML)")
    return parser


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def operator_peer(args: argparse.Namespace) -> netpol.OperatorPeer:
    namespace = args.operator_namespace or os.environ.get("POD_NAMESPACE")
    if not namespace and SERVICE_ACCOUNT_NAMESPACE.is_file():
        namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    labels = dict(item.split("=", 1) for item in args.operator_pod_label if "=" in item)
    return netpol.OperatorPeer(namespace=namespace or None,
                               labels=labels or dict(netpol.DEFAULT_OPERATOR_LABELS))


@dataclass(frozen=True)
class Listener:
    """A port the operator serves: what for, and how a user changes it."""

    what: str  # "metrics", "liveness", "the admission webhook"
    host: str
    port: int
    flag: str  # the command-line flag that sets it
    how: str  # what else to know about the flag (its current value, how to disable it)
    helm_value: str  # the chart's value that sets it

    def refused(self, why: str) -> str:
        """One line: which port, why, and the setting to change."""
        return (f"{PROG}: cannot listen on {self.host}:{self.port} for {self.what}: {why} — "
                f"free the port, or choose another with {self.flag} ({self.how}; Helm value "
                f"{self.helm_value})")


def bind_problem(host: str, port: int) -> str | None:
    """Why nothing can listen on host:port now (e.g. "Address already in use"); None: it can.
    The socket is closed at once: a check, taken the way the servers bind (SO_REUSEADDR)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return exc.strerror or str(exc)
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def liveness_listener(url: str) -> Listener:
    """Where kopf's liveness endpoint listens (kopf's reading of the URL: localhost, port 80
    when the URL names none)."""
    parts = urlsplit(url)
    try:
        port = parts.port or 80
    except ValueError:
        raise SystemExit(f"{PROG}: --liveness {url}: not a valid port") from None
    return Listener("liveness", parts.hostname or "localhost", port, "--liveness",
                    f"now {url}; '' disables it", "operator.livenessPort")


def serve_metrics(port: int) -> None:
    """Serve /metrics now, or exit with one line naming the port and the flag: an operator
    that cannot serve its ports would otherwise retry every minute and reconcile nothing."""
    if not port:
        return
    listener = Listener("metrics", "0.0.0.0", port, "--metrics-port", "0 disables metrics",
                        "operator.metricsPort")
    try:
        metrics.serve(port)
    except OSError as exc:
        raise SystemExit(listener.refused(exc.strerror or str(exc))) from None


def check_ports(args: argparse.Namespace) -> None:
    """Exit with one line when a port kopf will serve (liveness, webhook) is taken."""
    listeners = []
    if args.liveness:
        listeners.append(liveness_listener(args.liveness))
    if args.webhook_port:
        listeners.append(Listener("the admission webhook", args.webhook_addr,
                                  args.webhook_port, "--webhook-port", "0 disables it",
                                  "webhook.port"))
    for listener in listeners:
        problem = bind_problem(listener.host, listener.port)
        if problem is not None:
            raise SystemExit(listener.refused(problem))


def run(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    check_ports(args)
    serve_metrics(args.metrics_port)
    cfg = OperatorConfig(
        resync_seconds=args.resync_seconds,
        endpoint_template=args.bot_endpoint_template,
        allow_endpoint_annotation=args.allow_bot_endpoint_annotation,
        operator_peer=operator_peer(args),
        flat_wait_seconds=args.flat_wait_seconds,
        bot_poll_seconds=args.bot_poll_seconds,
        peering_name=args.peering_name,
        priority=args.priority,
        metrics_port=0,  # served above: a port taken stops the operator at once
        webhook=webhook.WebhookConfig(port=args.webhook_port, cert_dir=args.webhook_cert_dir,
                                      addr=args.webhook_addr) if args.webhook_port else None,
    )
    registry = kopf.OperatorRegistry()
    register(registry, cfg)
    asyncio.run(kopf.operator(
        registry=registry,
        standalone=args.standalone,
        priority=args.priority,
        # A peering name makes peering mandatory (the peering CRD must exist): not standalone.
        peering_name=None if args.standalone else args.peering_name,
        liveness_endpoint=args.liveness or None,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
    ))


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "crd":
        sys.stdout.write(crd.render_crd_yaml())
        return
    if args.command is None:
        args = _parser().parse_args(["run", *(sys.argv[1:] if argv is None else argv)])
    run(args)


if __name__ == "__main__":
    main()
