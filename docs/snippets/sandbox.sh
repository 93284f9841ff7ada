signing-proxy sandbox
