//! The streamable HTTP transport (feature `http`): rmcp's streamable HTTP service, one
//! [`Server`] per client session, served by hyper's HTTP/1.1 on a TCP listener.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::sync::watch;

use crate::server::{runtime, watch_generations, Server};
use crate::{Backend, ServeError, ServeOptions};

/// The path the MCP endpoint answers on (`http://ADDR/mcp`); other paths get 404.
pub const HTTP_PATH: &str = "/mcp";

/// Serves MCP's streamable HTTP transport on `addr` (`http://ADDR/mcp`) until the process
/// ends: the same tools, resources and notifications as [`serve_stdio`](crate::serve_stdio),
/// one session per client. `ready` is called with the bound address (port 0 picks one) once
/// the server accepts connections.
///
/// There is no authentication: anyone who can connect can call every tool, `forget` included.
/// So an address that is not loopback is refused unless [`ServeOptions::allow_remote`] is set,
/// and on loopback the `Host` header must name a loopback host (against DNS rebinding).
pub fn serve_http(
    backend: Arc<dyn Backend>,
    addr: SocketAddr,
    options: ServeOptions,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    if !addr.ip().is_loopback() && !options.allow_remote {
        return Err(ServeError::NotLoopback(addr));
    }
    let runtime = runtime()?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|e| ServeError::Bind(addr, e))?;
        let bound = listener.local_addr().map_err(|e| ServeError::Bind(addr, e))?;
        let (tx, rx) = watch::channel(backend.refresh().unwrap_or(0));
        tokio::spawn(watch_generations(backend.clone(), tx, options.poll));

        let mut config = StreamableHttpServerConfig::default()
            .with_max_request_body_bytes(options.max_line_bytes);
        config = if options.allow_remote {
            config.disable_allowed_hosts()
        } else {
            let mut hosts = config.allowed_hosts.clone();
            hosts.push(bound.ip().to_string());
            config.with_allowed_hosts(hosts)
        };
        let service = StreamableHttpService::new(
            move || Ok(Server::new(backend.clone(), rx.clone())),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        ready(bound);
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was accepted: the
                    // listener itself is fine; give the others a moment to close.
                    eprintln!("mcs mcp: accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let service = service.clone();
            tokio::spawn(async move {
                let handler = hyper::service::service_fn(move |request| {
                    let service = service.clone();
                    async move {
                        if request.uri().path() != HTTP_PATH {
                            return Ok::<_, Infallible>(not_found());
                        }
                        Ok(service.handle(request).await)
                    }
                });
                // A client that goes away mid-request ends only its own connection.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), handler)
                    .await;
            });
        }
    })
}

type Body = http_body_util::combinators::BoxBody<hyper::body::Bytes, Infallible>;

fn not_found() -> hyper::Response<Body> {
    use http_body_util::BodyExt;
    let body = http_body_util::Full::new(hyper::body::Bytes::from_static(
        b"not found: the MCP endpoint is /mcp\n",
    ))
    .boxed();
    let mut response = hyper::Response::new(body);
    *response.status_mut() = hyper::StatusCode::NOT_FOUND;
    response
}
