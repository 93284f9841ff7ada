export SIGNING_PROXY_CONFIG=gateway.yaml
signing-proxy halt --cancel-orders --reason "fat finger"   # everyone stops; resting orders cancelled
signing-proxy status                                       # what is halted, since when, why
signing-proxy resume
signing-proxy halt --client taker                          # one bot only
signing-proxy resume --client taker
signing-proxy journal --since 1h --client taker            # what it sent, and what the proxy or Kalshi said
