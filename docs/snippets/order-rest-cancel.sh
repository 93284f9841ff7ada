# a 1-cent bid rests on the book (client order ids are unique per account: make a new one)
order_id=$(curl -s -X POST http://127.0.0.1:8080/trade-api/v2/portfolio/events/orders \
  -H 'Content-Type: application/json' \
  -d "{\"ticker\": \"KXHIGHNY-26JUN12-B74.5\", \"side\": \"bid\", \"count\": \"1.00\",
       \"price\": \"0.0100\", \"client_order_id\": \"$(python3 -c 'import uuid; print(uuid.uuid4())')\",
       \"time_in_force\": \"good_till_canceled\", \"self_trade_prevention_type\": \"taker_at_cross\"}" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["order_id"])')
curl -s -w '\n' -X DELETE "http://127.0.0.1:8080/trade-api/v2/portfolio/events/orders/$order_id"
