# not a route of the proxy: 404, never forwarded
curl -s -w '\n' http://127.0.0.1:8080/elsewhere
# a V1 order write, which Kalshi removed: 410, naming the V2 route
curl -s -w '\n' -X POST http://127.0.0.1:8080/trade-api/v2/portfolio/orders -d '{}'
