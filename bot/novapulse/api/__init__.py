"""The bot's HTTP control API and dashboard (the contract: README, "Control API and
dashboard"). `create_app` builds it over a `BotService`; `ApiServer` serves it on its own thread."""

from novapulse.api.app import create_app
from novapulse.api.auth import AuthSettings
from novapulse.api.gateway import BotGateway
from novapulse.api.metrics import BotMetrics

__all__ = ["AuthSettings", "BotGateway", "BotMetrics", "create_app"]
