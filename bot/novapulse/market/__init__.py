"""Market data: recorded candles, the Kraken WebSocket v2 client, the replay server, warm-up."""
