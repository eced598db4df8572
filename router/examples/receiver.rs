//! A local stand-in for a chat webhook or any HTTP destination: prints every request it
//! receives and answers 200. `cargo run -p hookyard --example receiver -- 9000`

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args().nth(1).map_or(Ok(9000), |p| p.parse())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("receiver listening on 127.0.0.1:{port}");
    let app = axum::Router::new().fallback(
        |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| async move {
            let delivery = headers
                .get("hookyard-delivery-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            let shown = serde_json::from_slice::<serde_json::Value>(&body)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            println!("--> {method} {uri}  delivery {delivery}\n{shown}");
            "ok"
        },
    );
    axum::serve(listener, app).await?;
    Ok(())
}
