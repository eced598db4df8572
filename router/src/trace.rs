//! OpenTelemetry traces: one trace per event, exported over OTLP/HTTP (protobuf) when
//! `[telemetry] otlp_endpoint` is set, off otherwise.
//!
//! The spans are ordinary `tracing` spans with the target [`TARGET`]; the
//! `tracing-opentelemetry` layer turns them into OpenTelemetry spans. Every stage joins the
//! event's trace through a W3C `traceparent` kept with the event and with each delivery in the
//! store, so one trace follows the event through the queue, a restart or another node:
//!
//! - `ingress`, continuing the sender's `traceparent` if it sent one, with `verify` and
//!   `journal` inside;
//! - `process`, with a `plugin <name>` span per step (time, fuel if metered, outputs) and a
//!   `fetch <host>` span per `http.fetch`;
//! - `delivery <destination>`, one per attempt (status, latency, outcome).
//!
//! Outbound HTTP requests (deliveries and fetches) carry the `traceparent` of their span, so
//! the receiver's own trace joins. With traces off no layer wants these spans, so they are
//! disabled where they are created and cost nothing.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

use crate::config::TelemetryConfig;

/// The `tracing` target of the spans exported as traces.
pub const TARGET: &str = "hookyard::trace";

/// How long one export to the collector may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest collector answer read (they are a few bytes).
const MAX_ANSWER: usize = 64 * 1024;

/// The exporter, kept for the life of the process; dropping it sends what is still buffered.
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("traces: could not send the last spans: {e}");
        }
    }
}

/// The layer that exports this crate's trace spans to `config.otlp_endpoint`, and the
/// exporter behind it. Exports are sent from `runtime`.
pub fn layer<S>(
    config: &TelemetryConfig,
    endpoint: &str,
    runtime: tokio::runtime::Handle,
) -> anyhow::Result<(impl Layer<S> + use<S>, Exporter)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces_url(endpoint))
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(Collector {
            client: reqwest::Client::new(),
            runtime,
        })
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("hookyard"))
        .with_location(false)
        .with_threads(false)
        .with_level(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(Targets::new().with_target(TARGET, tracing::Level::TRACE));
    Ok((layer, Exporter { provider }))
}

/// `http://collector:4318` -> `http://collector:4318/v1/traces`; a URL that already names a
/// path is used as it is.
fn traces_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    match url::Url::parse(trimmed) {
        Ok(u) if u.path() != "/" && !u.path().is_empty() => trimmed.to_string(),
        _ => format!("{trimmed}/v1/traces"),
    }
}

/// The context a request's `traceparent` (and `tracestate`) names, if it has a valid one.
pub fn sender_context(headers: &http::HeaderMap) -> Option<opentelemetry::Context> {
    let cx = TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    cx.span().span_context().is_valid().then_some(cx)
}

/// Makes `span` part of the trace `traceparent` names (kept with an event or a delivery).
pub fn join(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// `span` as a W3C `traceparent`, to keep with what it made; `None` when traces are off.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove("traceparent")
}

/// The headers that carry `span`'s context to a receiver (`traceparent`, and `tracestate`
/// when there is one); empty when traces are off.
pub fn outbound_headers(span: &tracing::Span) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    TraceContextPropagator::new().inject_context(
        &span.context(),
        &mut opentelemetry_http::HeaderInjector(&mut headers),
    );
    headers
}

/// The trace id in a `traceparent` (`00-<trace id>-<span id>-<flags>`), for people to look up.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let id = traceparent.split('-').nth(1)?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Sends OTLP exports with the router's HTTP client on its runtime. The exporter's batch
/// thread waits for the answer; the request itself runs where the router's I/O runs.
#[derive(Debug)]
struct Collector {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait]
impl opentelemetry_http::HttpClient for Collector {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let request = reqwest::Request::try_from(request)?;
            let mut response = client.execute(request).await?;
            let mut answer = http::Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                headers.extend(response.headers().clone());
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > MAX_ANSWER {
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, opentelemetry_http::HttpError>(answer.body(Bytes::from(body))?)
        });
        sent.await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_added_to_a_bare_endpoint_only() {
        assert_eq!(
            traces_url("http://collector:4318"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://otlp.example.com/api/v1/traces"),
            "https://otlp.example.com/api/v1/traces"
        );
    }

    #[test]
    fn trace_ids_are_read_from_valid_traceparents_only() {
        assert_eq!(
            trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id("00-xyz-00f067aa0ba902b7-01"), None);
        assert_eq!(trace_id("garbage"), None);
    }

    #[test]
    fn with_traces_off_nothing_is_kept_or_sent() {
        let span = tracing::info_span!(target: TARGET, "ingress");
        join(
            &span,
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        assert_eq!(traceparent(&span), None);
        assert!(outbound_headers(&span).is_empty());
    }

    #[test]
    fn a_senders_traceparent_is_read_and_a_malformed_one_ignored() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        let cx = sender_context(&headers).expect("valid");
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            ),
        );
        assert!(sender_context(&headers).is_none());
    }
}
