curl -s -w '\n' http://127.0.0.1:8080/trade-api/v2/portfolio/balance
