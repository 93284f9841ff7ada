sudo PIPX_HOME=/opt/pipx PIPX_BIN_DIR=/usr/local/bin pipx install '.[speed]'   # from a checkout
sudo useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin signing-proxy
sudo install -d -m 0750 -g signing-proxy /etc/signing-proxy
sudo signing-proxy init /etc/signing-proxy/signing-proxy.yaml      # then edit it
sudo install -m 0600 -o signing-proxy ~/kalshi-demo.pem /etc/signing-proxy/kalshi.pem
printf 'KALSHI_API_KEY_ID=%s\nKALSHI_PRIVATE_KEY_FILE=/etc/signing-proxy/kalshi.pem\n' your-key-id \
  | sudo install -m 0600 /dev/stdin /etc/signing-proxy/env
sudo chgrp signing-proxy /etc/signing-proxy/signing-proxy.yaml && sudo chmod 0640 /etc/signing-proxy/signing-proxy.yaml
sudo install -m 0644 examples/signing-proxy.service /etc/systemd/system/
sudo systemctl daemon-reload && sudo systemctl enable --now signing-proxy
journalctl -u signing-proxy -f                                       # its logs
sudo systemctl reload signing-proxy                                  # re-read the file and the key (SIGHUP)
