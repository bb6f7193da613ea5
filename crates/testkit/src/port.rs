//! Free loopback ports for servers we start.

use crate::error::{Context, Result};

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is released before the caller's server binds it, so another process may take it in
/// between; callers retry their start on a bind failure.
pub(crate) fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("binding 127.0.0.1:0")?;
    Ok(listener
        .local_addr()
        .context("reading the bound address")?
        .port())
}
