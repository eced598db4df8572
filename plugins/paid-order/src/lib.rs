//! `paid-order`: a Stripe `checkout.session.completed` event becomes the three things a shop
//! does when an order is paid. The event says a session completed; Stripe's API says what
//! was bought: the plugin fetches the session with its line items
//! (`GET /v1/checkout/sessions/{id}?expand[]=line_items`, secret key from `secret()`), then
//! emits an order update for the shop API (`PATCH /orders/{order_id}`), a confirmation email
//! to the customer, and a pick list for the warehouse. The order id is the session's
//! `client_reference_id` (or `metadata.order_id`); outputs carry it as `order_id`, so the
//! destinations can deliver them in order per order.
//!
//! ```toml
//! [plugins.paid-order]
//! path = "plugins/dist/paid-order.wasm"
//! allow_http = ["api.stripe.com"]
//! secrets = { stripe_key = "${STRIPE_SECRET_KEY}" }
//! config = { shop = "shop", mail = "mail", warehouse = "warehouse" }
//! ```

use hookyard_sdk::prelude::*;
use serde::Deserialize;

/// The plugin's configuration: destination names, and Stripe's API base (for tests).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Destination of the order update.
    pub shop: String,
    /// Destination of the confirmation email.
    pub mail: String,
    /// Destination of the pick list.
    pub warehouse: String,
    /// Stripe's API base URL.
    #[serde(default = "stripe_api")]
    pub stripe_api: String,
}

fn stripe_api() -> String {
    "https://api.stripe.com".into()
}

fn money(minor: i64, currency: &str) -> String {
    format!(
        "{}.{:02} {}",
        minor / 100,
        (minor % 100).abs(),
        currency.to_uppercase()
    )
}

/// The three outputs for a fetched Checkout Session.
pub fn outputs(config: &Config, session: &Value) -> Result<Vec<Output>> {
    let order_id = session["client_reference_id"]
        .as_str()
        .or_else(|| session["metadata"]["order_id"].as_str())
        .ok_or_else(|| Error::new("the session has no client_reference_id or metadata.order_id"))?;
    let currency = session["currency"].as_str().unwrap_or("usd");
    let items: Vec<Value> = session["line_items"]["data"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|li| {
            json!({
                "sku": li["price"]["product"],
                "description": li["description"],
                "quantity": li["quantity"],
                "amount_total": li["amount_total"],
            })
        })
        .collect();
    let total = session["amount_total"].as_i64().unwrap_or(0);
    let update = json!({
        "order_id": order_id,
        "status": "paid",
        "amount_total": total,
        "currency": currency,
        "payment_intent": session["payment_intent"],
        "items": items,
    });
    let mut outputs = vec![
        Output::json(&update)?
            .to(&config.shop)
            .method("PATCH")
            .path(format!("/orders/{}", path_segment(order_id)?)),
    ];
    if let Some(email) = session["customer_details"]["email"].as_str() {
        let name = session["customer_details"]["name"]
            .as_str()
            .unwrap_or("there");
        let lines: Vec<String> = items
            .iter()
            .map(|i| {
                format!(
                    "  {} x {}",
                    i["quantity"],
                    i["description"].as_str().unwrap_or("item")
                )
            })
            .collect();
        let text = format!(
            "Hi {name},\n\nthank you for your order {order_id}. We received your payment of {}.\n\n{}\n",
            money(total, currency),
            lines.join("\n")
        );
        let mail = Email::new(format!("Order {order_id} confirmed"))
            .to(email)
            .text(text);
        outputs.push(Output::email(&mail)?.to(&config.mail));
    }
    let pick = json!({
        "order_id": order_id,
        "items": items.iter().map(|i| json!({"sku": i["sku"], "quantity": i["quantity"]})).collect::<Vec<_>>(),
        "ship_to": session["shipping_details"],
    });
    outputs.push(Output::json(&pick)?.to(&config.warehouse));
    Ok(outputs)
}

fn check() -> Result<()> {
    config::<Config>().map(|_| ())
}

#[plugin(validate = check)]
fn handle(event: Event) -> Result<Vec<Output>> {
    let config: Config = config()?;
    let stripe_event: Value = event.json()?;
    if stripe_event["type"] != "checkout.session.completed" {
        return drop_event("not a checkout.session.completed event");
    }
    let id = stripe_event["data"]["object"]["id"]
        .as_str()
        .ok_or_else(|| Error::new("the event has no data.object.id"))?;
    let url = format!(
        "{}/v1/checkout/sessions/{}?expand[]=line_items",
        config.stripe_api,
        path_segment(id)?
    );
    let response = http::Request::get(url)
        .bearer(&secret("stripe_key")?)
        .send()?;
    if !response.ok() {
        let reason: Value = response.json().unwrap_or(Value::Null);
        let message = reason["error"]["message"].as_str().unwrap_or("no message");
        return Err(Error::new(format!(
            "Stripe answered {}: {message}",
            response.status
        )));
    }
    outputs(&config, &response.json()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookyard_sdk::testing::FakeHost;

    const SESSION: &str = r#"{"id":"cs_test_1","client_reference_id":"ord_1001","currency":"eur","amount_total":2198,
        "payment_intent":"pi_1","customer_details":{"email":"jenny.rosen@example.com","name":"Jenny Rosen"},
        "line_items":{"object":"list","data":[{"description":"T-shirt","quantity":2,"amount_total":2198,"price":{"product":"prod_tee"}}]},
        "shipping_details":{"name":"Jenny Rosen","address":{"city":"Berlin","country":"DE"}}}"#;

    fn host() -> FakeHost {
        FakeHost::new()
            .config(json!({"shop": "shop", "mail": "mail", "warehouse": "wh", "stripe_api": "https://stripe.test"}))
            .secret("stripe_key", "sk_test_1")
    }

    fn event(id: &str) -> Event {
        Event::new(
            format!(
                r#"{{"id":"evt_1","type":"checkout.session.completed","data":{{"object":{{"id":"{id}"}}}}}}"#
            ),
            &[],
            Some("checkout.session.completed"),
        )
    }

    #[test]
    fn a_paid_session_becomes_update_email_and_pick_list() {
        let host = host()
            .respond(
                "GET",
                "https://stripe.test/v1/checkout/sessions/cs_test_1?expand[]=line_items",
                200,
                SESSION,
            )
            .install();
        let out = handle(event("cs_test_1")).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].path.as_deref(), Some("/orders/ord_1001"));
        assert_eq!(out[0].body_json().unwrap()["amount_total"], 2198);
        assert!(
            out[1].body_json().unwrap()["text"]
                .as_str()
                .unwrap()
                .contains("21.98 EUR")
        );
        assert_eq!(
            out[2].body_json().unwrap()["items"][0],
            json!({"sku": "prod_tee", "quantity": 2})
        );
        assert!(
            host.requests()[0]
                .headers
                .contains(&("authorization".into(), "Bearer sk_test_1".into()))
        );
    }

    #[test]
    fn stripes_404_fails_the_event_with_its_message() {
        host()
            .respond("GET", "https://stripe.test/v1/checkout/sessions/cs_nope?expand[]=line_items", 404,
                r#"{"error":{"type":"invalid_request_error","message":"No such checkout.session: 'cs_nope'"}}"#)
            .install();
        let err = handle(event("cs_nope")).unwrap_err().message;
        assert_eq!(
            err,
            "Stripe answered 404: No such checkout.session: 'cs_nope'"
        );
    }
}
