unset KALSHI_PRIVATE_KEY_FILE          # one source of the key at a time
# what docker --env-file and many .env loaders keep of a multi-line value: its first line
KALSHI_PRIVATE_KEY='-----BEGIN PRIVATE KEY-----' signing-proxy check || echo "exit code $?"
# the whole PEM, with real newlines (or literal \n sequences) works
export KALSHI_PRIVATE_KEY="$(cat ~/kalshi-demo.pem)"
signing-proxy check | tail -n 1
