"""signing-proxy: a local reverse proxy that signs Kalshi Trade API v2 requests."""

__version__ = "0.1.0"
