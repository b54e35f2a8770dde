//! Captures on one interface, an AF_PACKET socket made in the interface's namespace (it
//! sees frames in both directions): [`FrameCapture`] keeps every frame with its direction,
//! [`AdvertCapture`] the VRRP adverts, each with the kernel's receive timestamp. From the adverts alone it answers the protocol question
//! "were two routers master at once, and for how long?": a router advertises (priority
//! above 0) only while it is master, once per interval.

use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::socket::{
    self as sock, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockProtocol, SockType,
    SockaddrStorage, sockopt,
};
use nix::sys::time::TimeVal;

/// One advert seen on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Kernel timestamp (CLOCK_REALTIME), only compared with other adverts of the capture.
    pub at: Duration,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub vrid: u8,
    pub priority: u8,
    pub interval_cs: u16,
}

/// A running capture on one interface: an AF_PACKET socket in its namespace and a thread
/// that keeps what `read` makes of each frame; stops when dropped.
struct Capture<T> {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<T>>>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Clone + Send + 'static> Capture<T> {
    /// `read` receives one frame from the socket (it may time out: `None`, as for a frame
    /// it does not keep).
    fn start(ns: &str, iface: &str, read: fn(&OwnedFd, &mut [u8]) -> Option<T>) -> Self {
        let fd = tr7::netns::within(Some(ns), || open(iface))
            .unwrap_or_else(|e| panic!("enter {ns}: {e}"))
            .unwrap_or_else(|e| panic!("AF_PACKET capture on {iface} in {ns}: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Some(item) = read(&fd, &mut buf) {
                        seen.lock().unwrap().push(item);
                    }
                }
            })
        };
        Self {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn items(&self) -> Vec<T> {
        self.seen.lock().unwrap().clone()
    }
}

impl<T> Drop for Capture<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The VRRP adverts on one interface, each with the kernel's receive timestamp.
pub struct AdvertCapture(Capture<Seen>);

impl AdvertCapture {
    /// Starts capturing on `iface` in namespace `ns`. Frames are timestamped by the kernel,
    /// so a busy machine delays the reading, not the times.
    pub fn start(ns: &str, iface: &str) -> Self {
        Self(Capture::start(ns, iface, read_advert))
    }

    /// Every advert captured so far, in wire order.
    pub fn adverts(&self) -> Vec<Seen> {
        self.0.items()
    }
}

fn open(iface: &str) -> nix::Result<OwnedFd> {
    let fd = sock::socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::EthAll,
    )?;
    // getifaddrs gives the interface's sockaddr_ll (ifindex; protocol 0 = the socket's).
    let addr = nix::ifaddrs::getifaddrs()?
        .filter(|a| a.interface_name == iface)
        .find_map(|a| a.address.filter(|s| s.as_link_addr().is_some()))
        .ok_or(nix::Error::ENODEV)?;
    sock::bind(fd.as_raw_fd(), &addr)?;
    sock::setsockopt(&fd, sockopt::ReceiveTimestampns, &true)?;
    // Wakes the reader every 50 ms to look at the stop flag.
    sock::setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(0, 50_000))?;
    Ok(fd)
}

/// One frame from `fd`, kept when it is an advert with a receive timestamp.
fn read_advert(fd: &OwnedFd, buf: &mut [u8]) -> Option<Seen> {
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let (len, at) = {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = sock::recvmsg::<SockaddrStorage>(
            fd.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .ok()?;
        let at = msg.cmsgs().ok().and_then(|mut c| {
            c.find_map(|m| match m {
                ControlMessageOwned::ScmTimestampns(t) => Some(Duration::from(t)),
                _ => None,
            })
        });
        (msg.bytes, at)
    };
    Some(Seen {
        at: at?,
        ..parse(&buf[..len])?
    })
}

/// An Ethernet frame carrying a VRRPv3 advert (IPv4, or IPv6 without extension headers).
fn parse(frame: &[u8]) -> Option<Seen> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = frame.get(14..)?;
    let (src, dst, vrrp) = match ethertype {
        0x0800 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            if *ip.get(9)? != 112 {
                return None;
            }
            let a = |at: usize| -> Option<IpAddr> {
                let b: [u8; 4] = ip.get(at..at + 4)?.try_into().ok()?;
                Some(IpAddr::V4(Ipv4Addr::from(b)))
            };
            (a(12)?, a(16)?, ip.get(ihl..)?)
        }
        0x86dd => {
            if *ip.get(6)? != 112 {
                return None;
            }
            let a = |at: usize| -> Option<IpAddr> {
                let b: [u8; 16] = ip.get(at..at + 16)?.try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(b)))
            };
            (a(8)?, a(24)?, ip.get(40..)?)
        }
        _ => return None,
    };
    if vrrp.first()? >> 4 != 3 {
        return None;
    }
    Some(Seen {
        at: Duration::ZERO,
        src,
        dst,
        vrid: *vrrp.get(1)?,
        priority: *vrrp.get(2)?,
        interval_cs: u16::from_be_bytes([*vrrp.get(4)?, *vrrp.get(5)?]) & 0x0fff,
    })
}

/// When one router was master, as its adverts show: from its first advert of a run to
/// its last, where a run ends at a priority-0 advert or a silence of two intervals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub src: IpAddr,
    pub first: Duration,
    pub last: Duration,
    pub adverts: usize,
}

/// The mastership spans of every source of `vrid`, given the advert interval.
pub fn spans(adverts: &[Seen], vrid: u8, interval: Duration) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    // Unicast sends one copy per peer; a capture on a sender's link also sees each once.
    for a in adverts.iter().filter(|a| a.vrid == vrid) {
        let current = open.iter().position(|&i| out[i].src == a.src);
        if let Some(pos) = current {
            let i = open[pos];
            if a.priority == 0 || a.at > out[i].last + 2 * interval {
                open.swap_remove(pos);
            } else {
                out[i].last = a.at;
                out[i].adverts += 1;
                continue;
            }
        }
        if a.priority != 0 {
            out.push(Span {
                src: a.src,
                first: a.at,
                last: a.at,
                adverts: 1,
            });
            open.push(out.len() - 1);
        }
    }
    out
}

/// The worst overlap of two routers' mastership spans: its length, and how many adverts
/// the two sent within it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overlap {
    pub length: Duration,
    pub adverts: usize,
}

/// The longest time two different sources were both master, from [`spans`].
pub fn worst_overlap(adverts: &[Seen], vrid: u8, interval: Duration) -> Overlap {
    let spans = spans(adverts, vrid, interval);
    let mut worst = Overlap::default();
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            if a.src == b.src {
                continue;
            }
            let (from, to) = (a.first.max(b.first), a.last.min(b.last));
            if to < from {
                continue;
            }
            let inside = adverts
                .iter()
                .filter(|x| x.vrid == vrid && x.priority != 0 && x.at >= from && x.at <= to)
                .filter(|x| x.src == a.src || x.src == b.src)
                .count();
            if to - from > worst.length || inside > worst.adverts {
                worst = Overlap {
                    length: (to - from).max(worst.length),
                    adverts: inside.max(worst.adverts),
                };
            }
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(ms: u64, last: u8, priority: u8) -> Seen {
        Seen {
            at: Duration::from_millis(ms),
            src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99)),
            vrid: 1,
            priority,
            interval_cs: 10,
        }
    }

    // Proves the span logic: a silence of more than two intervals or a priority 0 ends a
    // span, and the overlap counts only time both were advertising.
    #[test]
    fn spans_and_overlap() {
        let i = Duration::from_millis(100);
        let mut a: Vec<Seen> = (0..5).map(|n| seen(n * 100, 1, 100)).collect();
        // .2 starts at 350 ms; .1 sends one more at 400 ms and goes quiet.
        a.push(seen(350, 2, 200));
        a.push(seen(450, 2, 200));
        a.sort_by_key(|s| s.at);
        let s = spans(&a, 1, i);
        assert_eq!(s.len(), 2, "{s:?}");
        let o = worst_overlap(&a, 1, i);
        assert_eq!(o.length, Duration::from_millis(50));
        assert_eq!(o.adverts, 2);
        // A priority 0 ends the span; a later advert starts a new one.
        let b = vec![
            seen(0, 1, 100),
            seen(100, 1, 0),
            seen(150, 2, 100),
            seen(500, 1, 100),
        ];
        let s = spans(&b, 1, i);
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(worst_overlap(&b, 1, i), Overlap::default());
    }
}

/// One frame seen by a [`FrameCapture`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenFrame {
    /// `sll_pkttype`: 4 (`PACKET_OUTGOING`) for frames the interface sent, else received.
    pub pkttype: u8,
    pub bytes: Vec<u8>,
}

impl SeenFrame {
    pub const OUTGOING: u8 = 4;

    pub fn src_mac(&self) -> Option<[u8; 6]> {
        self.bytes.get(6..12)?.try_into().ok()
    }
}

/// Every frame on one interface, both directions, as an AF_PACKET socket in its namespace
/// sees them; stops when dropped.
pub struct FrameCapture(Capture<SeenFrame>);

impl FrameCapture {
    pub fn start(ns: &str, iface: &str) -> Self {
        Self(Capture::start(ns, iface, read_frame))
    }

    /// Every frame captured so far, in order.
    pub fn frames(&self) -> Vec<SeenFrame> {
        self.0.items()
    }
}

/// One frame from `fd`, with its direction.
fn read_frame(fd: &OwnedFd, buf: &mut [u8]) -> Option<SeenFrame> {
    let (len, from) = sock::recvfrom::<SockaddrStorage>(fd.as_raw_fd(), buf).ok()?;
    Some(SeenFrame {
        pkttype: from?.as_link_addr().map_or(0, |l| l.pkttype()),
        bytes: buf[..len].to_vec(),
    })
}
