signing-proxy run --config gateway.yaml
