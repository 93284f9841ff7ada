// Trade through signing-proxy from Node (18 or newer) with the built-in fetch: no key,
// no signing code, no dependency.
//
//   node examples/node_fetch.mjs [PROXY_URL]      (default http://127.0.0.1:8080)
//
// Asks for the balance, finds an open market, places a 1-cent bid for 1 contract on it
// (far below the market, so it rests) and cancels it at once. PROXY_TOKEN, when set, is
// sent as "Authorization: Bearer ...". Exits 1 at the first answer that is not 2xx. Try
// it with `signing-proxy sandbox`; against production this places a real order (and
// cancels it).
import { randomUUID } from "node:crypto";

const proxy = (process.argv[2] ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
const base = `${proxy}/trade-api/v2`;
const headers = process.env.PROXY_TOKEN
  ? { Authorization: `Bearer ${process.env.PROXY_TOKEN}` }
  : {};

async function call(method, path, body) {
  const init = { method, headers: { ...headers }, signal: AbortSignal.timeout(30_000) };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const answer = await fetch(base + path, init);
  const text = await answer.text();
  console.log(`${method} /trade-api/v2${path} -> ${answer.status}`);
  console.log(text);
  if (!answer.ok) {
    // Kalshi's errors and the proxy's own share one shape: {"error": {"code", ...}}.
    console.error(`node_fetch.mjs: ${method} ${path} answered ${answer.status}`);
    process.exit(1);
  }
  return JSON.parse(text);
}

const balance = await call("GET", "/portfolio/balance");
console.log(`balance: ${balance.balance_dollars} dollars`);

const { markets } = await call("GET", "/markets?status=open&limit=1");
if (markets.length === 0) {
  console.error("node_fetch.mjs: no open market");
  process.exit(1);
}
const placed = await call("POST", "/portfolio/events/orders", {
  ticker: markets[0].ticker,
  side: "bid",
  count: "1.00",
  price: "0.0100",
  client_order_id: randomUUID(),
  time_in_force: "good_till_canceled",
  self_trade_prevention_type: "taker_at_cross",
});
const canceled = await call("DELETE", `/portfolio/events/orders/${placed.order_id}`);
console.log(JSON.stringify({ placed: placed.order_id, reduced_by: canceled.reduced_by }));
