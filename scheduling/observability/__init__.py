"""What operators watch: /healthz, /metrics and the worker heartbeat behind them."""
