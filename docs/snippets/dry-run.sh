curl -s -w '\n' -X POST http://127.0.0.1:8080/trade-api/v2/portfolio/events/orders \
  -H 'X-Proxy-Dry-Run: 1' -H 'Content-Type: application/json' \
  -d '{"ticker": "KXHIGHNY-26JUN12-B74.5", "side": "bid", "count": "1.00", "price": "0.0100",
       "client_order_id": "0d3c0f9e-4b8e-4a8e-9d57-1c9a7c5e2b10",
       "time_in_force": "good_till_canceled", "self_trade_prevention_type": "taker_at_cross"}'
