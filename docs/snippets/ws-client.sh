# from a checkout of the repository; needs only aiohttp, which the proxy installs
python3 examples/ws_client.py http://127.0.0.1:8080 --market KXHIGHNY-26JUN12-B74.5 --count 2
