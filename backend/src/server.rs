//! Starting and stopping the server in-process.

use crate::config::BackendConfig;
use crate::edge::EdgeLimits;
use crate::engine::Engine;
use crate::error::StoreError;
use crate::http;
use crate::http::{AddressKey, Held, PerAddress};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;
use tower::{Service, ServiceExt};

/// Why the server could not start or stop cleanly.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("server task failed: {0}")]
    Task(String),
    /// The configuration cannot run (production mode without real providers, a limit that
    /// would be off by accident).
    #[error("{0}")]
    Config(String),
}

/// The reference backend.
#[derive(Debug)]
pub struct Backend;

impl Backend {
    /// Opens the database and key file, binds `config.listen` and serves until
    /// [`BackendHandle::shutdown`]. Must be called inside a tokio runtime.
    pub async fn start(mut config: BackendConfig) -> Result<BackendHandle, ServerError> {
        config
            .edge
            .check()
            .map_err(|e| ServerError::Config(format!("configuration: {e}")))?;
        let sandbox_gateway = crate::providers::prepare(&mut config)
            .await
            .map_err(ServerError::Config)?;
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let base = config
            .public_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("http://{addr}"));
        let sandbox = config.sandbox;
        let engine = tokio::task::spawn_blocking(move || Engine::open(config, base))
            .await
            .map_err(|e| ServerError::Task(e.to_string()))??;
        let engine = Arc::new(engine);
        let app = http::router(Arc::clone(&engine));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, app, engine.config().edge.clone(), rx));
        let every = engine.config().policy.reconcile_every_secs;
        let (jobs_stop, mut stop) = tokio::sync::watch::channel(false);
        let reconciler = {
            let engine = Arc::clone(&engine);
            tokio::spawn(async move {
                if every == 0 {
                    return;
                }
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(every));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.changed() => break,
                    }
                    // exactly one instance runs the jobs: the holder of the jobs lease
                    match http::blocking(&engine, |e| e.run_background_jobs()).await {
                        Ok(Some(run)) => tracing::debug!(?run, "background jobs ran"),
                        Ok(None) => tracing::debug!("background jobs run by another instance"),
                        Err(e) => tracing::warn!(error = %e, "background jobs failed"),
                    }
                }
            })
        };
        tracing::info!(%addr, sandbox, "backend listening");
        Ok(BackendHandle {
            addr,
            engine,
            shutdown: Some(tx),
            task,
            reconciler,
            jobs_stop,
            sandbox_gateway,
        })
    }
}

/// A running backend.
#[derive(Debug)]
pub struct BackendHandle {
    addr: SocketAddr,
    engine: Arc<Engine>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    reconciler: JoinHandle<()>,
    /// Tells the background-jobs loop to stop after the run in progress.
    jobs_stop: tokio::sync::watch::Sender<bool>,
    /// The sandbox gateway started in-process (sandbox mode without a gateway URL).
    sandbox_gateway: Option<crate::gateway_sandbox::SandboxGatewayHandle>,
}

impl BackendHandle {
    /// The bound address (with the real port when the configuration asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>` (or the configured public URL).
    pub fn url(&self) -> String {
        self.engine.base_url().to_string()
    }

    /// The sandbox gateway this backend started in-process, if it did.
    pub fn sandbox_gateway(&self) -> Option<&crate::gateway_sandbox::SandboxGatewayHandle> {
        self.sandbox_gateway.as_ref()
    }

    /// The engine, for in-process calls (demo, tools, benchmarks).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Graceful shutdown: stops accepting, lets in-flight requests finish (every acknowledged
    /// write is already committed), then checkpoints the database.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        // Let a background-jobs run in progress finish (for a while) before giving its lease
        // up; one that does not finish in time is left to its lease's lapse.
        let _ = self.jobs_stop.send(true);
        let finished = tokio::time::timeout(Duration::from_secs(10), &mut self.reconciler)
            .await
            .is_ok();
        if !finished {
            self.reconciler.abort();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task)
            .await
            .map_err(|e| ServerError::Task(e.to_string()))??;
        let engine = Arc::clone(&self.engine);
        tokio::task::spawn_blocking(move || {
            if finished {
                if let Err(e) = engine.release_jobs_lease() {
                    tracing::warn!(error = %e, "could not give the jobs lease up");
                }
            }
            engine.close()
        })
        .await
        .map_err(|e| ServerError::Task(e.to_string()))??;
        tracing::info!(addr = %self.addr, "backend stopped");
        Ok(())
    }
}

impl Drop for BackendHandle {
    /// Dropping the handle without [`BackendHandle::shutdown`] still stops the server gracefully
    /// (in the background).
    fn drop(&mut self) {
        self.reconciler.abort();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The accept loop: HTTP/1.1 connections (hyper) with a header-read timeout (a client that
/// does not send a whole request header in time, or idles that long between requests, is
/// disconnected) and at most `max_connections` open at once (one more is closed as soon as it
/// is accepted). Each request sees its peer address as `ConnectInfo<SocketAddr>`. On
/// `shutdown` it stops accepting and waits for the open connections to finish their
/// in-flight requests (the timeouts bound how long).
async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    edge: EdgeLimits,
    mut shutdown: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let mut make = app.into_make_service_with_connect_info::<SocketAddr>();
    let mut h1 = hyper::server::conn::http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(edge.header_read_timeout);
    let open = Arc::new(Semaphore::new(edge.max_connections.max(1)));
    let per_peer = PeerConnections::new(&edge);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            tracing::warn!(%peer, "connection refused: too many open connections");
            drop(stream);
            continue;
        };
        let Some(from_peer) = per_peer.enter(peer.ip()) else {
            tracing::warn!(%peer, "connection refused: too many open connections from one address");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok(svc) = make.call(peer).await;
        let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            svc.clone().oneshot(req.map(axum::body::Body::new))
        });
        let conn = graceful.watch(h1.serve_connection(TokioIo::new(stream), svc));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
            drop(from_peer);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Open connections per client address (IPv6: per /64), capped by
/// `EdgeLimits::max_connections_per_address`; a trusted proxy's are not counted.
struct PeerConnections {
    open: PerAddress,
    trusted: Vec<IpAddr>,
}

impl PeerConnections {
    fn new(edge: &EdgeLimits) -> Self {
        Self {
            open: PerAddress::new(edge.max_connections_per_address),
            trusted: edge
                .trusted_proxies
                .iter()
                .map(|ip| ip.to_canonical())
                .collect(),
        }
    }

    fn enter(&self, peer: IpAddr) -> Option<Option<Held>> {
        let peer = peer.to_canonical();
        if self.trusted.contains(&peer) {
            return Some(None);
        }
        self.open.enter(AddressKey::of(peer)).map(Some)
    }
}

/// Resolves on ctrl-c or (unix) SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
