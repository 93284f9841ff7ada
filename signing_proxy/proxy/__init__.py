"""The proxy: app factory, the guard and routing, forwarding, upstream policy."""
