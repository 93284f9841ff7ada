date -u                                                   # your clock, in UTC
curl -sI https://external-api.demo.kalshi.co/trade-api/v2/exchange/status | grep -i '^date:'   # Kalshi's
