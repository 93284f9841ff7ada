"""Kalshi's protocol: request signing and what Kalshi expects of a signed request."""
