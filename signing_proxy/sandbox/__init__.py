"""The offline exchange behind `signing-proxy sandbox`; the proxy never imports it."""
