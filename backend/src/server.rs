//! Starting and stopping the server in-process.

use crate::config::BackendConfig;
use crate::engine::Engine;
use crate::error::StoreError;
use crate::http;
use std::net::SocketAddr;
use std::sync::Arc;
use thiserror::Error;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Why the server could not start or stop cleanly.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("server task failed: {0}")]
    Task(String),
}

/// The reference backend.
#[derive(Debug)]
pub struct Backend;

impl Backend {
    /// Opens the database and key file, binds `config.listen` and serves until
    /// [`BackendHandle::shutdown`]. Must be called inside a tokio runtime.
    pub async fn start(config: BackendConfig) -> Result<BackendHandle, ServerError> {
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
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
        });
        let every = engine.config().policy.reconcile_every_secs;
        let reconciler = {
            let engine = Arc::clone(&engine);
            tokio::spawn(async move {
                if every == 0 {
                    return;
                }
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(every));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(e) = http::blocking(&engine, |e| e.reconcile_topups()).await {
                        tracing::warn!(error = %e, "top-up reconciliation failed");
                    }
                    if let Err(e) = http::blocking(&engine, |e| e.purge_expired()).await {
                        tracing::warn!(error = %e, "purge of expired sessions and codes failed");
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

    /// The engine, for in-process calls (demo, tools, benchmarks).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Graceful shutdown: stops accepting, lets in-flight requests finish (every acknowledged
    /// write is already committed), then checkpoints the database.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        self.reconciler.abort();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task)
            .await
            .map_err(|e| ServerError::Task(e.to_string()))??;
        let engine = Arc::clone(&self.engine);
        tokio::task::spawn_blocking(move || engine.close())
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
