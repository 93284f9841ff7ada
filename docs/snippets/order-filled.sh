# buy 1 YES contract at up to 99 cents, now or never: it fills at the best ask
curl -s -w '\n' -X POST http://127.0.0.1:8080/trade-api/v2/portfolio/events/orders \
  -H 'Content-Type: application/json' \
  -d '{"ticker": "KXHIGHNY-26JUN12-B74.5", "side": "bid", "count": "1.00", "price": "0.9900",
       "client_order_id": "6f1c0c5e-0d4f-4e59-9a51-6a1f0c1d2e3f",
       "time_in_force": "immediate_or_cancel", "self_trade_prevention_type": "taker_at_cross"}'
curl -s -w '\n' 'http://127.0.0.1:8080/trade-api/v2/portfolio/positions?ticker=KXHIGHNY-26JUN12-B74.5'
