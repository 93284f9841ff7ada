docker compose -f examples/docker-compose.yml up --build
