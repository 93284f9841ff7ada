curl -s -o /dev/null http://127.0.0.1:8080/trade-api/v2/portfolio/balance
curl -s http://127.0.0.1:8080/metrics | grep '^signing_proxy_requests_total'
