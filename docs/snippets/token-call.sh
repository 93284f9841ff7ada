curl -s -w '\n' -H "Authorization: Bearer $DASHBOARD_TOKEN" http://127.0.0.1:8080/trade-api/v2/portfolio/balance
curl -s -w '\n' -H "Authorization: Bearer $DASHBOARD_TOKEN" -X DELETE \
  http://127.0.0.1:8080/trade-api/v2/portfolio/events/orders/0d3c0f9e-4b8e-4a8e-9d57-1c9a7c5e2b10
curl -s -w '\n' http://127.0.0.1:8080/trade-api/v2/portfolio/balance      # no token
