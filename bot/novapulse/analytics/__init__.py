"""OpenSearch analytics (runbook 12): candles, trades, thoughts and metrics, bulk-indexed
into date-suffixed indices; a soft dependency that never stops trading."""

from novapulse.analytics.sink import AnalyticsHealth, AnalyticsSink, build_sink

__all__ = ["AnalyticsHealth", "AnalyticsSink", "build_sink"]
