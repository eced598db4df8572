//! What every console page shares: the frame (navigation, style), escaping, and times.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::store::{Millis, StoreError};

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A path segment or query value, percent-encoded.
pub fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A time as RFC 3339, to the second (UTC).
pub fn time(ms: Millis) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330}\
nav{background:#1d2330;padding:.6em 1em}nav a{color:#fff;margin-right:1.2em;text-decoration:none}\
nav form{display:inline;float:right}main{padding:1em}table{border-collapse:collapse;width:100%}\
td,th{border-bottom:1px solid #e3e6ec;padding:.35em .5em;text-align:left;vertical-align:top}\
th{background:#f4f6f9}pre{background:#f4f6f9;padding:.8em;overflow:auto;max-height:40em}\
.received,.pending,.retrying{color:#8a6100}.processed,.delivered{color:#17713a}\
.failed,.dead{color:#b3261e}.tabs a{margin-right:1em}button{cursor:pointer}code{font-size:13px}";

/// A console page: the navigation, the title, and `body` (HTML, already escaped).
pub fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{} · Hookyard</title>\
         <style>{STYLE}</style></head><body><nav><a href=\"/ui/events\">Events</a>\
         <a href=\"/ui/deliveries?status=dead\">Dead letters</a><a href=\"/ui/deliveries\">Deliveries</a>\
         <a href=\"/ui/destinations\">Destinations</a><a href=\"/ui/charts\">Charts</a><a href=\"/ui/tail\">Live tail</a>\
         <a href=\"/ui/shadow\">Shadow</a><a href=\"/ui/alerts\">Alerts</a><form method=\"post\" action=\"/ui/logout\">\
         <button>Sign out</button></form></nav><main><h1>{}</h1>{body}</main></body></html>",
        esc(title),
        esc(title)
    ))
}

/// [`page`] with a status.
pub fn page_response(status: StatusCode, title: &str, body: &str) -> Response {
    (status, page(title, body)).into_response()
}

/// The page for a store failure: logged here, not shown.
pub fn failure(e: StoreError) -> Response {
    tracing::error!(error = %e, "admin UI request failed");
    page_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Error",
        "<p>Internal error; see the router log.</p>",
    )
}
