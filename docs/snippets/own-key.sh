signing-proxy init --new-key
# upload the public half; Kalshi answers with the key's id
python3 -c 'import json; print(json.dumps({"name": "my-bot", "public_key": open("kalshi-key.pub.pem").read()}))' \
  | curl -s -w '\n' -X POST http://127.0.0.1:8080/trade-api/v2/api_keys -H 'Content-Type: application/json' -d @-
