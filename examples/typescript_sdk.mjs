// Kalshi's official TypeScript SDK (npm kalshi-typescript) pointed at signing-proxy, with no key.
//
//     npm install kalshi-typescript
//     node examples/typescript_sdk.mjs [PROXY_URL]      (default http://127.0.0.1:8080)
//
// The SDK signs only when its Configuration has apiKey and a private key; given neither
// it sends unsigned requests to basePath, and the proxy signs them. PROXY_TOKEN, when
// set, goes out as "Authorization: Bearer ..." through the SDK's baseOptions.
//
// Walks what a trading bot calls: exchange and market data, the order book, trades,
// events and series, the account's limits, then a V2 order placed far from the market,
// read back, amended, decreased and cancelled, a batch placed and cancelled, and the
// portfolio (balance, positions, fills). Each call prints "name -> status"; the script
// exits 1 on the first call that fails. Against production this places real orders
// (and cancels them): try it with `signing-proxy sandbox`.
import { randomUUID } from "node:crypto";
import {
  AccountApi, Configuration, EventsApi, ExchangeApi, MarketApi, OrdersApi, PortfolioApi,
} from "kalshi-typescript";

const proxy = (process.argv[2] || "http://127.0.0.1:8080").replace(/\/$/, "");
const token = process.env.PROXY_TOKEN;
const config = new Configuration({
  basePath: `${proxy}/trade-api/v2`,
  baseOptions: token ? { headers: { Authorization: `Bearer ${token}` } } : {},
});
const [account, events, exchange, markets, orders, portfolio] = [
  AccountApi, EventsApi, ExchangeApi, MarketApi, OrdersApi, PortfolioApi,
].map((Api) => new Api(config));

async function call(name, promise) {
  try {
    const reply = await promise;
    console.log(`${name} -> ${reply.status}`);
    return reply.data;
  } catch (error) {
    const status = error.response ? error.response.status : error.message;
    const body = error.response ? JSON.stringify(error.response.data) : "";
    console.error(`${name} -> ${status} ${body}`);
    process.exit(1);
  }
}

await call("getExchangeStatus", exchange.getExchangeStatus());
const open = await call("getMarkets", markets.getMarkets(5, undefined, undefined, undefined,
  undefined, undefined, undefined, undefined, undefined, undefined, undefined, "open"));
const market = open.markets[0];
await call("getMarket", markets.getMarket(market.ticker));
await call("getMarketOrderbook", markets.getMarketOrderbook(market.ticker, 5));
await call("getMarketOrderbooks", markets.getMarketOrderbooks([market.ticker]));
await call("getTrades", markets.getTrades(10, undefined, market.ticker));
await call("getEvents", events.getEvents(5));
await call("getEvent", events.getEvent(market.event_ticker));
const series = await call("getSeriesList", markets.getSeriesList());
await call("getSeries", markets.getSeries(series.series[0].ticker));
await call("getAccountApiLimits", account.getAccountApiLimits());
await call("getAccountEndpointCosts", account.getAccountEndpointCosts());

// A 1-cent YES bid: far below the market, so it rests.
const order = {
  ticker: market.ticker, side: "bid", price: "0.0100", count: "2.00",
  client_order_id: randomUUID(), time_in_force: "good_till_canceled",
  self_trade_prevention_type: "taker_at_cross",
};
const placed = await call("createOrderV2", orders.createOrderV2(order));
await call("getOrder", orders.getOrder(placed.order_id));
await call("getOrderQueuePosition", orders.getOrderQueuePosition(placed.order_id));
await call("amendOrderV2", orders.amendOrderV2(placed.order_id, {
  ticker: market.ticker, side: "bid", price: "0.0200", count: "3.00",
}));
await call("decreaseOrderV2", orders.decreaseOrderV2(placed.order_id, { reduce_by: "1.00" }));
await call("cancelOrderV2", orders.cancelOrderV2(placed.order_id));
const batch = await call("batchCreateOrdersV2", orders.batchCreateOrdersV2({
  orders: [{ ...order, client_order_id: randomUUID() }, { ...order, client_order_id: randomUUID() }],
}));
await call("batchCancelOrdersV2", orders.batchCancelOrdersV2({
  orders: batch.orders.map((placedOrder) => ({ order_id: placedOrder.order_id })),
}));
await call("createOrderV2", orders.createOrderV2({ ...order, client_order_id: randomUUID() }));
await call("cancelAllOrders", orders.cancelAllOrders());
await call("getOrders", orders.getOrders(market.ticker));
await call("getBalance", portfolio.getBalance());
await call("getPositions", portfolio.getPositions());
await call("getFills", portfolio.getFills());
await call("getSubaccountBalances", portfolio.getSubaccountBalances());
console.log("typescript_sdk.mjs: every call answered 2xx");
