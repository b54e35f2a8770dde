//! `/metrics`: the agent's VRRP state and counters and the data plane's counters in the
//! Prometheus text format (0.0.4), encoded by `prometheus-client`, served by a small HTTP/1.x
//! responder of our own.
//!
//! Every scrape builds a fresh [`StatusReport`] (the same one `tr7 status` shows) and reads
//! the per-attachment counters, and a [`Collector`] writes them as constant metrics: the
//! values live in the VRRP drivers and in per-CPU BPF maps, not in the agent's memory, so
//! there is nothing to keep in sync between scrapes.
//!
//! The listener is bound in the node's host namespace (`--netns`), on loopback by
//! default, so two agents of a lab in two namespaces both use the default address.
//!
//! The responder is deliberately small: one request per connection, `GET` or `HEAD` of
//! `/metrics` → 200, another path → 404, another method → 405, anything malformed → 400;
//! the request head is bounded in size ([`MAX_HEAD`]) and time ([`REQUEST_TIMEOUT`]), and
//! connections served at once are bounded too.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use thiserror::Error;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tr7_common::Reason;
use tracing::{debug, info, warn};

use super::status::{Reporter, RouterState, RouterStatus, SignalState, StatusReport};
use crate::dataplane::{IfaceEntry, Maps};
use crate::netns;

/// Where `/metrics` is served unless `--metrics` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9107";

/// The largest request head read; a longer one gets 431.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 8;

/// `--metrics ADDR:PORT`, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsListen(pub Option<SocketAddr>);

impl FromStr for MetricsListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "off" {
            return Ok(Self(None));
        }
        s.parse().map(|a| Self(Some(a))).map_err(|_| {
            format!("`{s}` is not ADDR:PORT (e.g. {DEFAULT_LISTEN} or [::1]:9107) nor `off`")
        })
    }
}

impl fmt::Display for MetricsListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("off"),
        }
    }
}

#[derive(Debug, Error)]
pub enum MetricsError {
    #[error(transparent)]
    Netns(#[from] netns::NetnsError),
    #[error(
        "cannot listen for /metrics on {addr}{}: {source}; choose another --metrics ADDR:PORT, or --metrics off",
        netns.as_deref().map_or(String::new(), |n| format!(" in network namespace `{n}`"))
    )]
    Bind {
        addr: SocketAddr,
        netns: Option<String>,
        source: io::Error,
    },
}

/// Binds the `/metrics` listener inside `netns` (the node's host namespace; `None`: the
/// agent's own). The socket keeps its namespace after the thread returns.
pub fn bind(addr: SocketAddr, netns: Option<&str>) -> Result<std::net::TcpListener, MetricsError> {
    let bind_err = |source| MetricsError::Bind {
        addr,
        netns: netns.map(str::to_owned),
        source,
    };
    let listener = netns::within(netns, || std::net::TcpListener::bind(addr))?.map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    info!(%addr, netns = ?netns, "metrics listener bound (GET /metrics)");
    Ok(listener)
}

/// Serves `/metrics` until the runtime stops; call from a task on the agent's runtime.
pub async fn serve(listener: std::net::TcpListener, reporter: Reporter) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(error) => {
            warn!(%error, "metrics listener cannot be served");
            return;
        }
    };
    let reporter = Arc::new(reporter);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(error) => {
                warn!(%error, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let reporter = reporter.clone();
        tokio::spawn(async move {
            if let Err(error) = handle(stream, &reporter).await {
                debug!(%peer, %error, "metrics request not answered");
            }
            drop(permit);
        });
    }
}

async fn handle(mut stream: TcpStream, reporter: &Reporter) -> io::Result<()> {
    let head = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await;
    let response = match head {
        Err(_) => plain(408, "request head not complete in time\n"),
        Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidData => {
            plain(431, "request head too large\n")
        }
        Ok(Err(e)) => return Err(e),
        Ok(Ok(head)) => match parse_request(&head) {
            Err(e) => e.response(),
            Ok(request) => {
                let body = match reporter.report_and_maps().await {
                    Ok((report, maps)) => render(&report, &attachments(maps.as_ref(), &report)),
                    Err(message) => {
                        let r = plain(503, &format!("{message}\n"));
                        return write(&mut stream, &r).await;
                    }
                };
                match body {
                    Ok(body) => ok(request, &body),
                    Err(_) => plain(500, "metrics could not be encoded\n"),
                }
            }
        },
    };
    write(&mut stream, &response).await
}

async fn write(stream: &mut TcpStream, response: &[u8]) -> io::Result<()> {
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        stream.write_all(response).await?;
        stream.shutdown().await
    })
    .await
    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// Reads up to the blank line that ends the head; `InvalidData` past [`MAX_HEAD`].
async fn read_head(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
        if head_end(&buf).is_some() {
            return Ok(buf);
        }
        if buf.len() > MAX_HEAD {
            return Err(io::ErrorKind::InvalidData.into());
        }
    }
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n"))
}

/// What a well-formed request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    Get,
    Head,
}

/// Why a request gets no metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HttpError {
    BadRequest(&'static str),
    NotFound,
    MethodNotAllowed,
    VersionNotSupported,
}

impl HttpError {
    fn response(&self) -> Vec<u8> {
        match self {
            HttpError::BadRequest(why) => plain(400, &format!("bad request: {why}\n")),
            HttpError::NotFound => plain(404, "not found; metrics are at /metrics\n"),
            HttpError::MethodNotAllowed => plain(405, "only GET and HEAD\n"),
            HttpError::VersionNotSupported => plain(505, "HTTP/1.0 or HTTP/1.1 only\n"),
        }
    }
}

/// Parses a request head: the request line `METHOD TARGET HTTP/1.x` and header lines,
/// which are only checked to be lines (nothing in them changes the answer).
pub(crate) fn parse_request(head: &[u8]) -> Result<Request, HttpError> {
    let end = head_end(head).ok_or(HttpError::BadRequest("incomplete request head"))?;
    let text = std::str::from_utf8(&head[..end])
        .map_err(|_| HttpError::BadRequest("request head is not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequest(
            "request line is not METHOD TARGET VERSION",
        ));
    };
    if !version.starts_with("HTTP/") {
        return Err(HttpError::BadRequest("no HTTP version"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HttpError::VersionNotSupported);
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(HttpError::BadRequest("malformed method"));
    }
    for header in lines {
        if !header.contains(':') || header.starts_with([' ', '\t']) {
            return Err(HttpError::BadRequest("malformed header line"));
        }
    }
    let request = match method {
        "GET" => Request::Get,
        "HEAD" => Request::Head,
        _ => return Err(HttpError::MethodNotAllowed),
    };
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path != "/metrics" {
        return Err(HttpError::NotFound);
    }
    Ok(request)
}

fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

fn response(code: u16, content_type: &str, body: &str, send_body: bool) -> Vec<u8> {
    let allow = if code == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        reason_phrase(code),
        body.len()
    )
    .into_bytes();
    if send_body {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

fn plain(code: u16, body: &str) -> Vec<u8> {
    response(code, "text/plain; charset=utf-8", body, true)
}

fn ok(request: Request, body: &str) -> Vec<u8> {
    response(
        200,
        prometheus_text::CONTENT_TYPE,
        body,
        request == Request::Get,
    )
}

/// One data-plane attachment with the interface name the agent knows it by.
#[derive(Clone, Debug)]
pub(crate) struct AttachmentCounters {
    pub entry: IfaceEntry,
    /// `None`: an attachment of an interface that is not one of this agent's routers'
    /// (e.g. made by hand with `tr7 dataplane attach`).
    pub iface: Option<String>,
}

/// The attachments in the map, named after the routers' interfaces where they match.
fn attachments(maps: Option<&Maps>, report: &StatusReport) -> Vec<AttachmentCounters> {
    let Some(entries) = maps.and_then(|m| m.ifaces().ok()) else {
        return Vec::new();
    };
    let mut names = std::collections::BTreeMap::new();
    for r in &report.routers {
        let key = (r.netns.clone(), r.iface.clone());
        if names.values().any(|k| *k == key) {
            continue;
        }
        let ns = r.netns.as_deref();
        let id = netns::inode(ns).ok().and_then(|inode| {
            netns::within(ns, || nix::net::if_::if_nametoindex(r.iface.as_str()))
                .ok()?
                .ok()
                .map(|ifindex| (inode, ifindex))
        });
        if let Some(id) = id {
            names.insert(id, key);
        }
    }
    entries
        .into_iter()
        .map(|entry| {
            let iface = names
                .get(&(entry.netns, entry.ifindex))
                .map(|(_, name)| name.clone());
            AttachmentCounters { entry, iface }
        })
        .collect()
}

/// The Prometheus text of a report and the attachments' counters.
pub(crate) fn render(
    report: &StatusReport,
    attachments: &[AttachmentCounters],
) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        report: report.clone(),
        attachments: attachments.to_vec(),
    }));
    let mut out = String::new();
    prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// One scrape's values, written as constant metrics.
#[derive(Debug)]
struct Scrape {
    report: StatusReport,
    attachments: Vec<AttachmentCounters>,
}

type Labels = Vec<(&'static str, String)>;

fn router_labels(r: &RouterStatus) -> Labels {
    vec![
        ("iface", r.iface.clone()),
        ("slot", r.slot.clone()),
        (
            "family",
            match r.family {
                super::status::AddressFamily::Ipv4 => "ipv4",
                super::status::AddressFamily::Ipv6 => "ipv6",
            }
            .to_owned(),
        ),
        ("vrid", r.vrid.to_string()),
    ]
}

fn with(mut labels: Labels, extra: &[(&'static str, String)]) -> Labels {
    labels.extend_from_slice(extra);
    labels
}

/// Writes one metric family: a descriptor and a sample per label set.
fn family<V>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, V)>,
) -> Result<(), fmt::Error>
where
    V: prometheus_client::encoding::EncodeGaugeValue
        + prometheus_client::encoding::EncodeCounterValue,
{
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let sample = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(value).encode(sample)?,
            _ => ConstGauge::new(value).encode(sample)?,
        }
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), fmt::Error> {
        use MetricType::{Counter, Gauge};
        let r = &self.report;
        let none = || Vec::<(&'static str, String)>::new();
        family(
            &mut e,
            "tr7_agent_start_time_seconds",
            "When the agent started, in seconds since the Unix epoch",
            Gauge,
            [(none(), r.started_unix_ms as f64 / 1000.0)],
        )?;
        let dp = &r.dataplane;
        family(
            &mut e,
            "tr7_dataplane_maps_readable",
            "1 when the agent could read the data plane's pinned maps for this scrape",
            Gauge,
            [(none(), u64::from(dp.error.is_none()))],
        )?;
        family(
            &mut e,
            "tr7_dataplane_fenced",
            "1 while the liveness heartbeat is older than the fence: the data plane claims no VIP",
            Gauge,
            [(none(), u64::from(dp.fenced))],
        )?;
        family(
            &mut e,
            "tr7_dataplane_fence_seconds",
            "The liveness fence (0: disabled)",
            Gauge,
            [(none(), dp.fence_ms / 1000.0)],
        )?;
        family(
            &mut e,
            "tr7_dataplane_heartbeat_age_seconds",
            "Age of the agent's last liveness heartbeat",
            Gauge,
            dp.heartbeat_age_ms.map(|a| (none(), a / 1000.0)),
        )?;
        self.encode_vrrp(&mut e)?;
        self.encode_vips(&mut e)?;
        family(
            &mut e,
            "tr7_dataplane_packets",
            "Frames seen by a data-plane attachment (XDP gate, TC guard), by verdict reason",
            Counter,
            self.attachments.iter().flat_map(|a| {
                let base: Labels = vec![
                    ("iface", a.iface.clone().unwrap_or_default()),
                    ("netns", a.entry.netns.to_string()),
                    ("ifindex", a.entry.ifindex.to_string()),
                ];
                Reason::ALL.map(move |reason| {
                    (
                        with(base.clone(), &[("reason", reason.label().to_owned())]),
                        a.entry.packets.get(reason),
                    )
                })
            }),
        )?;
        Ok(())
    }
}

impl Scrape {
    fn encode_vrrp(&self, e: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        use MetricType::{Counter, Gauge};
        let routers = &self.report.routers;
        family(
            e,
            "tr7_vrrp_state",
            "VRRP state of a virtual router: 1 for the current state, 0 for the others",
            Gauge,
            routers.iter().flat_map(|r| {
                RouterState::ALL.map(|s| {
                    (
                        with(router_labels(r), &[("state", s.as_str().to_owned())]),
                        u64::from(r.state == s),
                    )
                })
            }),
        )?;
        family(
            e,
            "tr7_vrrp_state_change_time_seconds",
            "When the virtual router entered its current state, in seconds since the Unix epoch",
            Gauge,
            routers
                .iter()
                .map(|r| (router_labels(r), r.since_unix_ms as f64 / 1000.0)),
        )?;
        family(
            e,
            "tr7_vrrp_priority",
            "Configured VRRP priority",
            Gauge,
            routers
                .iter()
                .map(|r| (router_labels(r), u64::from(r.priority))),
        )?;
        family(
            e,
            "tr7_vrrp_effective_priority",
            "VRRP priority advertised and compared with (lower while a tracked signal is down)",
            Gauge,
            routers
                .iter()
                .map(|r| (router_labels(r), u64::from(r.effective_priority))),
        )?;
        family(
            e,
            "tr7_vrrp_master_priority",
            "Priority of the master a backup hears (absent while master or none heard)",
            Gauge,
            routers.iter().filter_map(|r| {
                let m = r.master?;
                Some((
                    with(router_labels(r), &[("master", m.address.to_string())]),
                    u64::from(m.priority),
                ))
            }),
        )?;
        let counter =
            |e: &mut DescriptorEncoder, name: &str, help: &str, get: fn(&RouterStatus) -> u64| {
                family(
                    e,
                    name,
                    help,
                    Counter,
                    routers.iter().map(|r| (router_labels(r), get(r))),
                )
            };
        family(
            e,
            "tr7_vrrp_transitions",
            "VRRP state transitions, by the state entered",
            Counter,
            routers.iter().flat_map(|r| {
                let c = &r.counters;
                [
                    ("master", c.became_master),
                    ("backup", c.became_backup),
                    ("initialize", c.became_initialize),
                ]
                .map(|(to, n)| (with(router_labels(r), &[("to", to.to_owned())]), n))
            }),
        )?;
        counter(
            e,
            "tr7_vrrp_adverts_sent",
            "VRRP adverts sent (one per advert, whatever the number of unicast peers)",
            |r| r.counters.adverts_sent,
        )?;
        counter(
            e,
            "tr7_vrrp_adverts_received",
            "VRRP adverts that passed every check and were processed",
            |r| r.counters.adverts_received,
        )?;
        counter(
            e,
            "tr7_vrrp_priority_zero_adverts_sent",
            "VRRP adverts with priority 0 sent (giving up mastership)",
            |r| r.counters.priority_zero_sent,
        )?;
        counter(
            e,
            "tr7_vrrp_priority_zero_adverts_received",
            "VRRP adverts with priority 0 received",
            |r| r.counters.priority_zero_received,
        )?;
        counter(
            e,
            "tr7_vrrp_packets_sent",
            "VRRP packets put on the wire (one per advert and destination)",
            |r| r.counters.packets_sent,
        )?;
        counter(
            e,
            "tr7_vrrp_packets_received",
            "VRRP packets read from the socket, before any check",
            |r| r.counters.packets_received,
        )?;
        counter(
            e,
            "tr7_vrrp_send_errors",
            "VRRP packets the socket refused to send",
            |r| r.counters.send_errors,
        )?;
        counter(
            e,
            "tr7_vrrp_receive_errors",
            "Errors reading the VRRP socket",
            |r| r.counters.recv_errors,
        )?;
        counter(
            e,
            "tr7_vrrp_announcements",
            "Gratuitous ARP / unsolicited NA bursts started",
            |r| r.counters.announces,
        )?;
        counter(
            e,
            "tr7_vrrp_address_list_mismatches",
            "Adverts whose VIP list differs from ours (logged, not dropped; RFC 9568 7.1)",
            |r| r.counters.address_list_mismatch,
        )?;
        family(
            e,
            "tr7_vrrp_packets_dropped",
            "VRRP packets dropped, by stage (ip, decode, vrrp) and reason",
            Counter,
            routers.iter().flat_map(|r| {
                r.counters.dropped.iter().flat_map(move |(stage, reasons)| {
                    reasons.iter().map(move |(reason, n)| {
                        (
                            with(
                                router_labels(r),
                                &[("stage", stage.clone()), ("reason", reason.clone())],
                            ),
                            *n,
                        )
                    })
                })
            }),
        )?;
        // Issue 6: the link and gateway signals each router tracks (docs/signals.md).
        let signals = || {
            routers.iter().flat_map(|r| {
                r.signals.iter().map(move |s| {
                    (
                        with(
                            router_labels(r),
                            &[
                                ("signal", s.name.clone()),
                                ("mechanism", s.mechanism.clone()),
                            ],
                        ),
                        s,
                    )
                })
            })
        };
        family(
            e,
            "tr7_signal_up",
            "A tracked link or gateway signal: 1 up, 0 down or not yet observed",
            Gauge,
            signals().map(|(l, s)| (l, u64::from(s.state == SignalState::Up))),
        )?;
        family(
            e,
            "tr7_signal_change_time_seconds",
            "When the signal last changed state, in seconds since the Unix epoch (0: never)",
            Gauge,
            signals().map(|(l, s)| (l, s.since_unix_ms as f64 / 1000.0)),
        )?;
        family(
            e,
            "tr7_signal_transitions_total",
            "State changes of the signal since the agent started",
            Counter,
            signals().map(|(l, s)| (l, s.transitions)),
        )?;
        Ok(())
    }

    fn encode_vips(&self, e: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        use MetricType::{Counter, Gauge};
        let vips = || {
            self.report.routers.iter().flat_map(|r| {
                r.vips.iter().map(move |v| {
                    let labels: Labels = vec![
                        ("vip", v.address.to_string()),
                        ("zone", v.zone.clone()),
                        ("iface", r.iface.clone()),
                        ("slot", r.slot.clone()),
                    ];
                    (labels, v)
                })
            })
        };
        family(
            e,
            "tr7_vip_owned",
            "1 when this node's ownership map says it answers for the VIP (the fence may still withdraw it)",
            Gauge,
            vips().filter_map(|(l, v)| Some((l, u64::from(v.owned?)))),
        )?;
        let verdicts = |bytes: bool| {
            vips().flat_map(move |(l, v)| {
                let t = v.traffic.unwrap_or_default();
                let counts = if bytes {
                    [t.passed_bytes, t.dropped_bytes, t.guarded_bytes]
                } else {
                    [t.passed_packets, t.dropped_packets, t.guarded_packets]
                };
                let present = v.traffic.is_some();
                ["passed", "dropped", "guarded"]
                    .into_iter()
                    .zip(counts)
                    .filter(move |_| present)
                    .map(move |(verdict, n)| {
                        (with(l.clone(), &[("verdict", verdict.to_owned())]), n)
                    })
            })
        };
        family(
            e,
            "tr7_vip_packets",
            "Packets of a VIP in the data plane: passed (ingress, owned), dropped (ingress, not owned or fenced), guarded (egress speaking for a VIP not owned)",
            Counter,
            verdicts(false),
        )?;
        family(
            e,
            "tr7_vip_bytes",
            "Bytes of a VIP in the data plane, by verdict as tr7_vip_packets_total",
            Counter,
            verdicts(true),
        )?;
        Ok(())
    }
}

/// One sample of an exposition: metric name, labels in order, value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A strict reader of the Prometheus text format 0.0.4 as `/metrics` writes it, for the
/// tests (unit and lab) to check an exposition: every line is a `# HELP`, a `# TYPE` or a
/// sample `name{label="value",...} number`; every sample belongs to the family of the last
/// `# TYPE`; counters' samples end in `_total`; every family is `tr7_`-prefixed and
/// declared once; no sample (name and labels) repeats. Returns the samples.
pub fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut declared = std::collections::BTreeSet::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut current: Option<(String, String)> = None;
    let mut samples = Vec::new();
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the exposition does not end with a newline".into());
    }
    for line in text.lines() {
        let bad = |why: &str| Err(format!("{why}: {line}"));
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if !valid_name(rest.split(' ').next().unwrap_or_default()) {
                return bad("bad HELP name");
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut w = rest.split(' ');
            let (Some(name), Some(kind), None) = (w.next(), w.next(), w.next()) else {
                return bad("bad TYPE line");
            };
            if !valid_name(name) || !name.starts_with("tr7_") {
                return bad("bad or not tr7_-prefixed TYPE name");
            }
            if !["counter", "gauge", "untyped", "histogram", "summary"].contains(&kind) {
                return bad("unknown type");
            }
            if !declared.insert(name.to_owned()) {
                return bad("family declared twice");
            }
            current = Some((name.to_owned(), kind.to_owned()));
            continue;
        }
        if line.starts_with('#') {
            return bad("unexpected comment");
        }
        let Some((head, value)) = line.rsplit_once(' ') else {
            return bad("sample without a value");
        };
        let Ok(value) = value.parse::<f64>() else {
            return bad("bad value");
        };
        let (name, labels) = match head.split_once('{') {
            None => (head, Vec::new()),
            Some((name, rest)) => {
                let Some(mut body) = rest.strip_suffix('}') else {
                    return bad("labels do not end with }");
                };
                let mut labels = Vec::new();
                while !body.is_empty() {
                    let Some((key, r)) = body.split_once("=\"") else {
                        return bad("label is not key=\"value\"");
                    };
                    if !valid_name(key) || key.contains(':') {
                        return bad("bad label name");
                    }
                    let mut value = String::new();
                    let mut chars = r.char_indices();
                    let end = loop {
                        match chars.next() {
                            None => return bad("label value not closed"),
                            Some((_, '\\')) => match chars.next() {
                                Some((_, 'n')) => value.push('\n'),
                                Some((_, c @ ('\\' | '"'))) => value.push(c),
                                _ => return bad("bad escape in a label value"),
                            },
                            Some((i, '"')) => break i,
                            Some((_, c)) => value.push(c),
                        }
                    };
                    labels.push((key.to_owned(), value));
                    body = &r[end + 1..];
                    body = body.strip_prefix(',').unwrap_or(body);
                }
                (name, labels)
            }
        };
        let Some((family, kind)) = current.as_ref() else {
            return bad("sample before any TYPE");
        };
        if kind == "counter" && !name.ends_with("_total") {
            return bad("counter sample without _total");
        }
        if name != family {
            return bad("sample outside its family");
        }
        if !seen.insert(format!("{name}{labels:?}")) {
            return bad("sample twice");
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::status::tests::sample;
    use tr7_common::{Attachment, REASONS};

    fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
        let matching: Vec<f64> = samples
            .iter()
            .filter(|s| s.name == name && want.iter().all(|(k, v)| s.label(k) == Some(v)))
            .map(|s| s.value)
            .collect();
        assert_eq!(matching.len(), 1, "{name} {want:?}: {matching:?}");
        matching[0]
    }

    // Proves the exposition parses as Prometheus text, and carries the router state
    // one-hot, priorities, transitions, drops, the VIP counters by verdict with their
    // zone, and the attachments' per-reason counters.
    #[test]
    fn exposition_parses_and_has_the_values() {
        let mut packets = [0u64; REASONS];
        packets[Reason::PassedOwned as usize] = 9;
        let attachments = vec![AttachmentCounters {
            entry: IfaceEntry {
                netns: 4026531840,
                ifindex: 2,
                attachment: Attachment { slot: 0, scope: 1 },
                packets: crate::dataplane::ReasonCounts(packets),
            },
            iface: Some("eth0".into()),
        }];
        let text = render(&sample(), &attachments).unwrap();
        eprintln!("{text}");
        let s = parse_exposition(&text).unwrap();
        let master = [("slot", "master"), ("iface", "eth0"), ("vrid", "1")];
        assert_eq!(
            value(&s, "tr7_vrrp_state", &with_state(&master, "master")),
            1.0
        );
        assert_eq!(
            value(&s, "tr7_vrrp_state", &with_state(&master, "backup")),
            0.0
        );
        let backup = [("slot", "backup"), ("family", "ipv4")];
        assert_eq!(
            value(&s, "tr7_vrrp_state", &with_state(&backup, "backup")),
            1.0
        );
        assert_eq!(value(&s, "tr7_vrrp_priority", &master), 200.0);
        assert_eq!(value(&s, "tr7_vrrp_adverts_sent_total", &master), 42.0);
        assert_eq!(
            value(
                &s,
                "tr7_vrrp_transitions_total",
                &[("slot", "master"), ("to", "master")]
            ),
            1.0
        );
        assert_eq!(
            value(
                &s,
                "tr7_vrrp_packets_dropped_total",
                &[
                    ("slot", "master"),
                    ("stage", "decode"),
                    ("reason", "bad_checksum")
                ]
            ),
            2.0
        );
        assert_eq!(
            value(
                &s,
                "tr7_vrrp_master_priority",
                &[("slot", "backup"), ("master", "192.0.2.3")]
            ),
            200.0
        );
        let vip = [
            ("vip", "192.0.2.10"),
            ("zone", "dmz"),
            ("iface", "eth0"),
            ("slot", "master"),
        ];
        assert_eq!(
            value(
                &s,
                "tr7_vip_packets_total",
                &[vip.as_slice(), &[("verdict", "passed")]].concat()
            ),
            5.0
        );
        assert_eq!(
            value(
                &s,
                "tr7_vip_bytes_total",
                &[vip.as_slice(), &[("verdict", "passed")]].concat()
            ),
            420.0
        );
        assert_eq!(value(&s, "tr7_vip_owned", &vip), 1.0);
        assert_eq!(value(&s, "tr7_vip_owned", &[("vip", "192.0.2.20")]), 0.0);
        assert_eq!(
            value(
                &s,
                "tr7_dataplane_packets_total",
                &[
                    ("iface", "eth0"),
                    ("ifindex", "2"),
                    ("reason", "passed_owned")
                ]
            ),
            9.0
        );
        assert_eq!(value(&s, "tr7_dataplane_fenced", &[]), 0.0);
        assert!((value(&s, "tr7_dataplane_fence_seconds", &[]) - 0.3219).abs() < 1e-9);
    }

    fn with_state<'a>(base: &[(&'a str, &'a str)], state: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut v = base.to_vec();
        v.push(("state", state));
        v
    }

    // Proves the checker itself rejects what Prometheus would: a counter without _total,
    // a sample outside its family, a duplicate, a bad label, a missing newline.
    #[test]
    fn exposition_checker_rejects_bad_text() {
        let ok = "# TYPE tr7_x gauge\ntr7_x{a=\"1\"} 1\n";
        assert_eq!(parse_exposition(ok).unwrap().len(), 1);
        for bad in [
            "# TYPE tr7_x counter\ntr7_x 1\n",
            "# TYPE tr7_x gauge\ntr7_y 1\n",
            "# TYPE tr7_x gauge\ntr7_x 1\ntr7_x 1\n",
            "# TYPE tr7_x gauge\ntr7_x{a=1} 1\n",
            "# TYPE tr7_x gauge\ntr7_x{a=\"1} 1\n",
            "# TYPE tr7_x gauge\ntr7_x one\n",
            "# TYPE x gauge\nx 1\n",
            "# TYPE tr7_x gauge\ntr7_x 1",
            "tr7_x 1\n",
        ] {
            assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
        }
    }

    // Proves label values with quotes, backslashes and newlines are escaped so the
    // exposition still parses (zones come from the operator's file).
    #[test]
    fn label_values_are_escaped() {
        let mut r = sample();
        r.routers[0].vips[0].zone = "a\"b\\c\nd".into();
        let text = render(&r, &[]).unwrap();
        let s = parse_exposition(&text).unwrap();
        assert_eq!(value(&s, "tr7_vip_owned", &[("zone", "a\"b\\c\nd")]), 1.0);
    }

    // Proves the responder's routing: GET and HEAD of /metrics (with or without a query)
    // are served, other paths are 404, other methods 405, and malformed heads 400 or 505.
    #[test]
    fn requests_are_routed_and_bad_ones_rejected() {
        let ok = |h: &str| parse_request(h.as_bytes());
        assert_eq!(
            ok("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Request::Get)
        );
        assert_eq!(ok("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Ok(Request::Get));
        assert_eq!(ok("HEAD /metrics HTTP/1.1\n\n"), Ok(Request::Head));
        assert_eq!(ok("GET / HTTP/1.1\r\n\r\n"), Err(HttpError::NotFound));
        assert_eq!(
            ok("GET /metricsx HTTP/1.1\r\n\r\n"),
            Err(HttpError::NotFound)
        );
        assert_eq!(
            ok("POST /metrics HTTP/1.1\r\n\r\n"),
            Err(HttpError::MethodNotAllowed)
        );
        assert_eq!(
            ok("GET /metrics HTTP/2.0\r\n\r\n"),
            Err(HttpError::VersionNotSupported)
        );
        for bad in [
            "GET /metrics\r\n\r\n",
            "GET  /metrics HTTP/1.1\r\n\r\n",
            "GET /metrics HTTP/1.1 x\r\n\r\n",
            "get /metrics HTTP/1.1\r\n\r\n",
            "GET /metrics FTP/1.1\r\n\r\n",
            "GET /metrics HTTP/1.1\r\nno colon\r\n\r\n",
            "GET /metrics HTTP/1.1\r\n folded: x\r\n\r\n",
            "GET /metrics HTTP/1.1\r\n",
            "",
        ] {
            assert!(
                matches!(ok(bad), Err(HttpError::BadRequest(_))),
                "{bad:?}: {:?}",
                ok(bad)
            );
        }
        assert!(matches!(
            parse_request(b"GET /\xff HTTP/1.1\r\n\r\n"),
            Err(HttpError::BadRequest(_))
        ));
    }

    // Proves the responses are complete HTTP/1.1 messages: status line, a length that
    // matches the body, Allow on 405, no body for HEAD.
    #[test]
    fn responses() {
        let text = String::from_utf8(HttpError::MethodNotAllowed.response()).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{text}"
        );
        assert!(text.contains("Allow: GET, HEAD\r\n"));
        let get = String::from_utf8(ok(Request::Get, "x 1\n")).unwrap();
        assert!(get.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(get.contains("Content-Type: text/plain; version=0.0.4"));
        assert!(get.contains("Content-Length: 4\r\n"));
        assert!(get.ends_with("\r\n\r\nx 1\n"));
        let head = String::from_utf8(ok(Request::Head, "x 1\n")).unwrap();
        assert!(head.contains("Content-Length: 4\r\n") && head.ends_with("\r\n\r\n"));
    }

    // Proves arbitrary bytes never panic the request parser (the responder's only input
    // from the network).
    #[test]
    fn garbage_never_panics() {
        use proptest::prelude::*;
        proptest!(|(bytes in proptest::collection::vec(any::<u8>(), 0..600))| {
            let _ = parse_request(&bytes);
            let _ = head_end(&bytes);
        });
        proptest!(|(line in "[A-Z]{0,6} [ -~]{0,40} HTTP/1\\.[0-9]\r\n([ -~]{0,30}\r\n){0,4}\r\n")| {
            let _ = parse_request(line.as_bytes());
        });
    }

    // Proves the served responder end to end on an ephemeral loopback port, with a fake
    // main loop: GET /metrics is 200 with a body that parses (the maps are missing, and the
    // exposition says so), POST is 405, another path 404, garbage and an incomplete head
    // 400, an oversized head 431; the server keeps serving after each.
    #[test]
    fn responder_over_tcp() {
        use crate::agent::status::SnapshotReply;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<SnapshotReply>(4);
            tokio::spawn(async move {
                while let Some(reply) = rx.recv().await {
                    let _ = reply.send(sample().routers);
                }
            });
            let listener = bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(serve(
                listener,
                Reporter {
                    cluster: "lab".into(),
                    node: "node-a".into(),
                    started: std::time::SystemTime::now(),
                    pin_dir: "/nonexistent/tr7-metrics-test".into(),
                    requests: tx,
                },
            ));
            let ask = |request: Vec<u8>, close: bool| async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                // The server may answer and close before it has read everything.
                let _ = s.write_all(&request).await;
                if close {
                    let _ = s.shutdown().await;
                }
                let mut out = Vec::new();
                let _ = s.read_to_end(&mut out).await;
                String::from_utf8_lossy(&out).into_owned()
            };
            let get = ask(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), false).await;
            assert!(get.starts_with("HTTP/1.1 200 OK\r\n"), "{get}");
            let body = get.split_once("\r\n\r\n").unwrap().1;
            let samples = parse_exposition(body).unwrap();
            assert_eq!(value(&samples, "tr7_dataplane_maps_readable", &[]), 0.0);
            assert_eq!(
                value(
                    &samples,
                    "tr7_vrrp_state",
                    &[("slot", "master"), ("state", "master")]
                ),
                1.0
            );
            for (request, close, status) in [
                (&b"POST /metrics HTTP/1.1\r\n\r\n"[..], false, "405"),
                (b"GET /other HTTP/1.1\r\n\r\n", false, "404"),
                (b"\x00\x01\x02\r\n\r\n", false, "400"),
                (b"GET /metrics HTTP/1.1\r\n", true, "400"),
                (&[b'A'; MAX_HEAD + 100][..], false, "431"),
            ] {
                let answer = ask(request.to_vec(), close).await;
                assert!(
                    answer.starts_with(&format!("HTTP/1.1 {status} ")),
                    "{:?} -> {answer}",
                    String::from_utf8_lossy(&request[..request.len().min(40)])
                );
            }
            let again = ask(b"GET /metrics HTTP/1.0\r\n\r\n".to_vec(), false).await;
            assert!(again.starts_with("HTTP/1.1 200 OK\r\n"), "{again}");
        });
    }

    #[test]
    fn listen_argument() {
        assert_eq!("off".parse::<MetricsListen>(), Ok(MetricsListen(None)));
        assert_eq!(
            "[::1]:9107".parse::<MetricsListen>().unwrap().to_string(),
            "[::1]:9107"
        );
        let err = "localhost".parse::<MetricsListen>().unwrap_err();
        assert!(err.contains("not ADDR:PORT"), "{err}");
        assert!(DEFAULT_LISTEN.parse::<MetricsListen>().is_ok());
    }
}
