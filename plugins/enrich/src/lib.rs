//! `enrich`: "the webhook tells you something happened, the API tells you what". Fetches a
//! URL built from the event, and passes on the event together with what the API answered.
//!
//! ```toml
//! [plugins.order-details]
//! path = "plugins/enrich.wasm"
//! allow_http = ["api.example.com"]
//! secrets = { api_token = "${SHOP_API_TOKEN}" }
//! config = { url = "https://api.example.com/orders/{/data/object/id}", token_secret = "api_token", count_key = "orders-seen" }
//! ```
//!
//! `{/json/pointer}` in `url` is replaced by that value of the event body, encoded as one path
//! segment (`/` and `.` too, see [`path_segment`]; a value `.` or `..` fails the event).
//! With `token_secret`, the request carries `Authorization: Bearer <secret>`. With
//! `count_key`, a counter in the plugin's kv store goes up by one per event (atomically, so
//! concurrent events never lose a count) and is included.
//! The output is `{"event": <the event>, "fetched": <the answer>, "count": <n>}`. A non-2xx
//! answer fails the event (it can be replayed once the API is right).

use hookyard_sdk::prelude::*;
use serde::Deserialize;

/// The plugin's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The URL to fetch, with `{/pointer}` placeholders.
    pub url: String,
    /// The name of a granted secret to send as a bearer token.
    pub token_secret: Option<String>,
    /// A kv key counting events seen.
    pub count_key: Option<String>,
}

/// `template` with each `{/pointer}` replaced by that value of `doc`.
pub fn expand(template: &str, doc: &Value) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{/") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| Error::new("unclosed { in url"))?
            + start;
        let pointer = &rest[start + 1..end];
        let value = match doc.pointer(pointer) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(Error::new(format!(
                    "the event has no string or number at {pointer}"
                )));
            }
        };
        out.push_str(&path_segment(&value)?);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[plugin]
fn handle(event: Event) -> Result<Vec<Output>> {
    let config: Config = config()?;
    let payload: Value = event.json()?;
    let mut request =
        http::Request::get(expand(&config.url, &payload)?).header("accept", "application/json");
    if let Some(name) = &config.token_secret {
        request = request.bearer(&secret(name)?);
    }
    let response = request.send()?;
    if !response.ok() {
        return Err(Error::new(format!("lookup answered {}", response.status)));
    }
    let fetched: Value = response
        .json()
        .or_else(|_| response.text().map(|t| Value::String(t.to_string())))?;
    let mut out = json!({ "event": payload, "fetched": fetched });
    if let Some(key) = &config.count_key {
        // Atomic: events handled at the same time each count once.
        out["count"] = json!(kv::increment(key, 1, None)?);
    }
    Ok(vec![Output::json(&out)?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookyard_sdk::testing::FakeHost;

    #[test]
    fn fetches_with_the_secret_and_counts() {
        let host = FakeHost::new()
            .config(json!({"url": "https://api.example.com/orders/{/data/id}", "token_secret": "t", "count_key": "n"}))
            .secret("t", "tok")
            .kv("n", b"41")
            .respond("GET", "https://api.example.com/orders/or%2F1", 200, r#"{"total": 12}"#)
            .install();
        let out = handle(Event::new(r#"{"data":{"id":"or/1"}}"#, &[], None)).unwrap();
        let body = out[0].body_json().unwrap();
        assert_eq!(body["fetched"]["total"], 12);
        assert_eq!(body["count"], 42);
        assert_eq!(host.kv_value("n").as_deref(), Some(&b"42"[..]));
        let sent = &host.requests()[0];
        assert!(
            sent.headers
                .contains(&("authorization".into(), "Bearer tok".into()))
        );
    }

    #[test]
    fn an_id_cannot_climb_out_of_the_url_path() {
        let host = FakeHost::new()
            .config(json!({"url": "https://api.example.com/orders/{/id}", "token_secret": "t"}))
            .secret("t", "tok")
            .respond(
                "GET",
                "https://api.example.com/orders/%2E%2E%2Fadmin",
                404,
                "{}",
            )
            .install();
        let err = handle(Event::new(r#"{"id": "../admin"}"#, &[], None)).unwrap_err();
        assert_eq!(err.message, "lookup answered 404");
        assert_eq!(
            host.requests()[0].url,
            "https://api.example.com/orders/%2E%2E%2Fadmin"
        );
        let err = handle(Event::new(r#"{"id": ".."}"#, &[], None)).unwrap_err();
        assert!(err.message.contains("cannot be a path segment"), "{err}");
        assert_eq!(host.requests().len(), 1, "nothing fetched for '..'");
    }

    #[test]
    fn a_missing_field_or_a_failed_lookup_is_an_error() {
        FakeHost::new()
            .config(json!({"url": "https://api.example.com/orders/{/id}"}))
            .respond(
                "GET",
                "https://api.example.com/orders/7",
                404,
                r#"{"error": "no such order"}"#,
            )
            .install();
        assert!(
            handle(Event::new(r#"{}"#, &[], None))
                .unwrap_err()
                .message
                .contains("no string or number at /id")
        );
        assert_eq!(
            handle(Event::new(r#"{"id": 7}"#, &[], None))
                .unwrap_err()
                .message,
            "lookup answered 404"
        );
    }
}
