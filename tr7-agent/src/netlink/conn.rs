//! A netlink route socket bound to one network namespace.
//!
//! A netlink socket talks to the namespace it was created in for its whole life, so the
//! calling thread enters the namespace just for the socket's creation and comes straight
//! back; the connection task then runs on the caller's tokio runtime like any other.

use rtnetlink::Handle;

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
    let (connection, handle, events) = made.map_err(|source| ConnError::Socket {
        ns: super::ns_label(ns).to_owned(),
        source,
    })?;
    tokio::spawn(connection);
    Ok((handle, Box::pin(events)))
}
