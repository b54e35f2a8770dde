//! A netlink route socket bound to one network namespace.
//!
//! A netlink socket talks to the namespace it was created in for its whole life, so the
//! calling thread enters the namespace just for the socket's creation and comes straight
//! back; the connection task then runs on the caller's tokio runtime like any other.

use nix::sys::socket::{setsockopt, sockopt};
use rtnetlink::Handle;
use rtnetlink::sys::AsyncSocket as _;

use crate::netns::{self, NetnsError};

/// Why a namespace's netlink socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("cannot open a netlink socket in namespace `{ns}`: {source}")]
    Socket { ns: String, source: std::io::Error },
}

/// Opens a route netlink connection inside the `ip netns` namespace `ns` (`None`: the
/// calling thread's). Must run inside a tokio runtime with I/O enabled.
pub fn connect(ns: Option<&str>) -> Result<Handle, ConnError> {
    let made = netns::within(ns, rtnetlink::new_connection)?;
    let (connection, handle, _) = made.map_err(|source| ConnError::Socket {
        ns: super::ns_label(ns).to_owned(),
        source,
    })?;
    tokio::spawn(connection);
    Ok(handle)
}

/// Receive buffer of an event socket: 8 MiB.
const EVENT_BUFFER: usize = 8 << 20;

/// The rtnetlink events of a subscribed socket, in arrival order.
pub type Events = futures_util::stream::BoxStream<
    'static,
    (
        rtnetlink::packet_core::NetlinkMessage<rtnetlink::packet_route::RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    ),
>;

/// Opens a route netlink connection inside namespace `ns` that is subscribed to `groups`
/// from its creation on; returns its handle (for dumps) and the stream of events.
pub fn connect_multicast(
    ns: Option<&str>,
    groups: &[rtnetlink::MulticastGroup],
) -> Result<(Handle, Events), ConnError> {
    let made = netns::within(ns, || rtnetlink::new_multicast_connection(groups))?;
    let (mut connection, handle, events) = made.map_err(|source| ConnError::Socket {
        ns: super::ns_label(ns).to_owned(),
        source,
    })?;
    // Events wait in the socket until the connection task reads them; when they outgrow
    // the buffer the kernel drops them (ENOBUFS). A burst of link changes is ~2 KiB per
    // event, and the default 208 KiB holds about a hundred: take room for thousands
    // (SO_RCVBUFFORCE, which root may set above rmem_max; plain SO_RCVBUF otherwise).
    let socket = connection.socket_mut().socket_mut();
    if setsockopt(&*socket, sockopt::RcvBufForce, &EVENT_BUFFER).is_err() {
        let _ = setsockopt(&*socket, sockopt::RcvBuf, &EVENT_BUFFER);
    }
    tokio::spawn(connection);
    Ok((handle, Box::pin(events)))
}

/// Runs the future `start` makes on a thread of its own, with its own runtime: for a
/// netlink exchange from synchronous code, whether or not the caller is inside a tokio
/// runtime already (`block_on` there would panic).
pub fn on_own_thread<T: Send, F: Future<Output = std::io::Result<T>>>(
    start: impl FnOnce() -> F + Send,
) -> std::io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(start())
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("a netlink exchange panicked")))
    })
}
