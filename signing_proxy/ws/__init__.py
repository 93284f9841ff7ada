"""WebSocket: the relay of /trade-api/ws/v2."""
