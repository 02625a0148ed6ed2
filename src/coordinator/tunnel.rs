//! `--via HOST`: reaching a database that only the cluster can see, through the SSH connection
//! kamo already knows how to open, with nothing installed on the node.
//!
//! A listener on 127.0.0.1 and a port the kernel picks accepts local connections (sqlx's and
//! `pg_dump`'s), and forwards each over its own `direct-tcpip` channel of one russh connection
//! to HOST, which connects to the database address as HOST sees it (what `ssh -L` does). The
//! tunnel lives as long as the [`Tunnel`] value; dropping it stops accepting and closes the
//! connection. Only connections from this machine reach the listener (it is bound to
//! loopback), and each is forwarded to the one fixed address.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::transport::Target;
use crate::transport::ssh::{Session, SshContext};

/// A running tunnel.
pub struct Tunnel {
    /// Where local clients connect.
    pub local: SocketAddr,
    /// The host whose SSH server forwards.
    pub via: String,
    accept: JoinHandle<()>,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Connects to `via` (its target resolved by the caller, as `kamo exec` resolves hosts) and
/// starts forwarding to `host:port`. The first channel is opened before this returns, so a
/// server that refuses forwarding, or a database it cannot reach, is reported here.
pub async fn open(
    target: &Target,
    ctx: &SshContext,
    via: &str,
    host: &str,
    port: u16,
) -> Result<Tunnel> {
    let session = Session::connect(target, ctx)
        .await
        .map_err(|e| Error::Other(format!("--via {via}: {e}")))?;
    let session = Arc::new(session);
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::Other(format!("cannot listen on 127.0.0.1 for the tunnel: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Other(format!("tunnel listener: {e}")))?;
    // Probe once: a refusal is clearer here than as a reset connection inside sqlx.
    let probe = session
        .direct_tcpip(host, port, local)
        .await
        .map_err(|e| Error::Other(format!("--via {via}: {}", e.message)))?;
    drop(probe);
    let (host, via_name) = (host.to_owned(), via.to_owned());
    let accept = tokio::spawn(async move {
        loop {
            let Ok((mut tcp, peer)) = listener.accept().await else {
                break;
            };
            let (session, host) = (session.clone(), host.clone());
            let via_name = via_name.clone();
            tokio::spawn(async move {
                match session.direct_tcpip(&host, port, peer).await {
                    Ok(mut ch) => {
                        let _ = tokio::io::copy_bidirectional(&mut tcp, &mut ch).await;
                    }
                    Err(e) => tracing::warn!("tunnel through {via_name}: {}", e.message),
                }
            });
        }
    });
    Ok(Tunnel {
        local,
        via: via.to_owned(),
        accept,
    })
}
