//! What the server says about itself: its version and store from `messaging_build_info` in
//! `GET /metrics`, and its limits from a `hello`.

use std::net::SocketAddr;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use super::Error;
use super::report::ServerInfo;

/// Fetches `GET /metrics` from `addr`.
///
/// # Errors
/// When the request fails or answers other than 200.
pub async fn metrics(addr: SocketAddr) -> Result<String, Error> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get("/metrics")
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    if !response.status().is_success() {
        return Err(format!("GET /metrics answered {}", response.status()).into());
    }
    let body = response.into_body().collect().await?.to_bytes();
    driver.abort();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The server's self-description (`limits` from a hello the caller received).
pub async fn describe(addr: SocketAddr, limits: Value) -> ServerInfo {
    let (version, store) = match metrics(addr).await {
        Ok(text) => build_info(&text).unwrap_or_else(|| ("unknown".into(), "unknown".into())),
        Err(error) => (format!("unknown ({error})"), "unknown".into()),
    };
    ServerInfo { version, store, limits }
}

/// `version` and `store` of the `messaging_build_info` line of a Prometheus text exposition.
#[must_use]
pub fn build_info(exposition: &str) -> Option<(String, String)> {
    let line = exposition.lines().find(|line| line.starts_with("messaging_build_info{"))?;
    let labels = line.strip_prefix("messaging_build_info{")?.rsplit_once('}')?.0;
    let label = |name: &str| {
        let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
        let end = start + labels[start..].find('"')?;
        Some(labels[start..end].to_owned())
    };
    Some((label("version")?, label("store")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_build_info_line() {
        let text = "# HELP x\nmessaging_build_info{version=\"0.1.0\",store=\"sqlite synchronous=FULL\"} 1\n";
        assert_eq!(build_info(text), Some(("0.1.0".into(), "sqlite synchronous=FULL".into())));
        assert_eq!(build_info("messaging_connections_open 3\n"), None);
    }
}
