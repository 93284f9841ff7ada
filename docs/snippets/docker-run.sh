docker build -t signing-proxy .
export BOT_TOKEN=$(openssl rand -hex 24)
chmod 600 ~/kalshi-demo.pem
# --user: run as the key file's owner, so a 0600 key stays 0600 and readable
docker run --rm -p 127.0.0.1:8080:8080 --user "$(id -u):$(id -g)" --stop-timeout 25 \
  -e KALSHI_API_KEY_ID=your-key-id -e BOT_TOKEN \
  -e KALSHI_PRIVATE_KEY_FILE=/run/secrets/kalshi_private_key \
  -v ~/kalshi-demo.pem:/run/secrets/kalshi_private_key:ro \
  -e SIGNING_PROXY_CONFIG=/config/signing-proxy.yaml \
  -v "$PWD/container.yaml:/config/signing-proxy.yaml:ro" \
  -v signing-proxy-journal:/var/lib/signing-proxy \
  signing-proxy
curl -s -H "Authorization: Bearer $BOT_TOKEN" http://127.0.0.1:8080/trade-api/v2/portfolio/balance
