signing-proxy check --config demo.yaml
signing-proxy check --config production.yaml
