"""chia-prometheus-exporter: Prometheus metrics for Chia full nodes, farmers, harvesters and wallets."""

__version__ = "0.1.0"
