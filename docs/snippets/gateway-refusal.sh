curl -s -w '\n' -X POST http://127.0.0.1:8080/trade-api/v2/portfolio/events/orders \
  -H "Authorization: Bearer $TAKER_TOKEN" -H 'Content-Type: application/json' \
  -d '{"ticker": "KXHIGHNY-26JUN12-B74.5", "side": "bid", "count": "100.00", "price": "0.0100",
       "client_order_id": "9b2f6a4e-1c3d-4e5f-8a7b-6c5d4e3f2a1b",
       "time_in_force": "good_till_canceled", "self_trade_prevention_type": "taker_at_cross"}'
