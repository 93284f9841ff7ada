chmod 600 ~/kalshi-demo.pem                  # the proxy refuses a key others can read
export KALSHI_API_KEY_ID=your-key-id         # the key id Kalshi showed you (a UUID)
export KALSHI_PRIVATE_KEY_FILE=~/kalshi-demo.pem
signing-proxy check                          # reads and checks everything; calls nobody
