# with the variables its header lists set (KALSHI_API_KEY_ID, BOT_TOKEN, the key's paths)
docker compose -f examples/docker-compose.yml up --build
