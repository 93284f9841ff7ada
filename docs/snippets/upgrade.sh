pipx upgrade signing-proxy                     # or: uv tool upgrade signing-proxy
signing-proxy --version
signing-proxy check --config /etc/signing-proxy/signing-proxy.yaml    # the new version reads your file
sudo systemctl restart signing-proxy           # a restart, not a reload: the code changed
