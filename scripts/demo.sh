#!/usr/bin/env bash
# `make demo`: with a Kubernetes cluster that answers (the current kubectl context), install
# NovaPulse there with Helm and apply the paper example; otherwise run the local paper demo
# (scripts/local_demo.py: the replay server and the bot, continuing where the last run
# stopped; `make demo-reset` starts it over). It says which one it runs, and why.
set -euo pipefail
cd "$(dirname "$0")/.."
KUBECTL=${KUBECTL:-.tools/kubectl}
HELM=${HELM:-.tools/helm}
NOVAPULSE_PYTHON=${NOVAPULSE_PYTHON:-.venv/bin/python}
NAMESPACE=${NAMESPACE:-novapulse}
SPEED=${SPEED:-600}

reason=""
if [ "${NOVAPULSE_DEMO:-}" = local ]; then
  reason="NOVAPULSE_DEMO=local"
elif ! context=$("$KUBECTL" config current-context 2>/dev/null); then
  reason="no kubectl context is configured"
elif ! "$KUBECTL" --request-timeout=5s get --raw=/version >/dev/null 2>&1; then
  reason="kubectl context '$context' does not answer"
fi

if [ -z "$reason" ]; then
  echo "make demo: kubectl context '$context' answers: installing NovaPulse there."
  echo "           (the image novapulse:0.1.0 must be pullable by that cluster; for kind,"
  echo "           'make kind-demo' builds and loads it. NOVAPULSE_DEMO=local runs the local demo.)"
  "$HELM" upgrade --install novapulse charts/novapulse --namespace "$NAMESPACE" \
    --create-namespace --wait --timeout 5m
  "$KUBECTL" apply -f examples/tradingbot-paper.yaml
  "$KUBECTL" wait tradingbot/paper-eth --for=condition=Ready --timeout=10m || true
  "$KUBECTL" get tradingbots
  echo "Dashboard: $KUBECTL port-forward svc/paper-eth 8090:8090, then http://localhost:8090/"
  echo "Its password: $KUBECTL describe tradingbot paper-eth (the Event says where it is)."
else
  echo "make demo: $reason: running the local paper demo (recorded candles at ${SPEED}x;"
  echo "           the bot's own embedded PostgreSQL under data/demo/). Ctrl-C stops it;"
  echo "           the next 'make demo' continues from there, 'make demo-reset' starts over."
  exec "$NOVAPULSE_PYTHON" scripts/local_demo.py --speed "$SPEED" "$@"
fi
