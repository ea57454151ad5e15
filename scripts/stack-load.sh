#!/usr/bin/env bash
# A short mixed load against a running shop: catalog reads, 404s, a 401, validation errors,
# checkouts (placed and, with PAYMENTS_SIM_DECLINE_RATE set on the shop, declined), so every
# series a dashboard or an alert rule uses exists. Usage: scripts/stack-load.sh http://127.0.0.1:8080
set -euo pipefail
base="${1:?usage: stack-load.sh BASE_URL}"
req() { curl -s -o /dev/null -w '%{http_code}\n' "$@"; }
for i in $(seq 1 20); do
  req "$base/v1/products"
  req "$base/v1/products/$(( (i % 5) + 1 ))"
  req "$base/v1/products/9999"          # 404 not_found
  req "$base/no-such-route-$i"          # 404 without a route
  req "$base/v1/me"                     # 401 unauthenticated
done
run="$(date +%s%N)"
email="load-$run@example.com"
token=$(curl -s "$base/v1/users" -H 'content-type: application/json' \
  -d "{\"email\":\"$email\",\"name\":\"Load\"}" | sed 's/.*"token":"\([^"]*\)".*/\1/')
req "$base/v1/me" -H "authorization: Bearer $token"
for i in $(seq 1 8); do
  req "$base/v1/orders" -H "authorization: Bearer $token" -H "idempotency-key: load-$run-$i" \
    -H 'content-type: application/json' -d '{"items":[{"product_id":1,"quantity":1}]}'
done
# out of stock, and a malformed body (validation)
req "$base/v1/orders" -H "authorization: Bearer $token" -H "idempotency-key: load-$run-big" \
  -H 'content-type: application/json' -d '{"items":[{"product_id":2,"quantity":100000}]}'
req "$base/v1/orders" -H "authorization: Bearer $token" -H "idempotency-key: load-$run-bad" \
  -H 'content-type: application/json' -d '{"items":'
req "$base/v1/users" -H 'content-type: application/json' -d '{"email":"not-an-email"}'
req "$base/v1/orders" -H "authorization: Bearer $token"
