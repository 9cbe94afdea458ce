"""NovaPulse: an asyncio crypto trading bot for Kraken."""

__version__ = "0.1.0"
