"""NovaPulse operator: runs and heals TradingBot resources on Kubernetes."""

__version__ = "0.1.0"
