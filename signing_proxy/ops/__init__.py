"""Operations: server lifecycle, client connections, logging, metrics, health."""
