"""Order execution: paper (simulated fills) now; canary and live through ccxt later."""
