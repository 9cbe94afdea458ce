"""NovaPulse operator: runs and heals TradingBot resources on Kubernetes."""

from novapulse_operator import client_core

# Before kopf or kube.py import kubernetes_asyncio: its ApiClient without ~39 MB of models.
client_core.load()

__version__ = "0.1.0"
