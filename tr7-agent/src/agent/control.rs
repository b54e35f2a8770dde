//! The agent's control socket: a Unix stream socket that `tr7 status` asks for a
//! [`StatusReport`].
//!
//! Root-only, three ways: the directory the agent creates for it is 0700, the socket is
//! 0600 (connecting needs write permission on it), and the agent checks the peer's
//! credentials (`SO_PEERCRED`) and answers only root or its own user. The socket is bound
//! under a temporary name, made 0600, then renamed into place, so it is never reachable
//! with looser permissions, not even for a moment.
//!
//! The socket doubles as the "one agent per node" guard: the agent binds it before it
//! changes any kernel state, and refuses to start when another agent answers on it. A
//! socket file that nobody listens on (a crashed agent's) is removed and replaced.
//!
//! The protocol is one request per connection: the client writes a line (`status`), the
//! agent answers one JSON document ([`StatusReport`], or `{"error": "..."}`) and closes.
//! Requests are bounded in size and time; a wrong request gets an error, never a hang.

use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, PermissionsExt};
use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, info, warn};

use super::status::{Reporter, StatusReport};

/// Where the agent listens unless `--control-socket` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/tr7/tr7.sock";

/// The default control socket of an agent: [`DEFAULT_SOCKET`], or with `--netns NS`
/// `/run/tr7/tr7-NS.sock`, so that the agents of a lab (one per namespace) never share
/// one and `tr7 status --netns NS` finds the right one.
pub fn default_socket(netns: Option<&str>) -> PathBuf {
    match netns {
        None => PathBuf::from(DEFAULT_SOCKET),
        Some(ns) => PathBuf::from(format!("/run/tr7/tr7-{ns}.sock")),
    }
}

/// The longest request line the agent reads.
const MAX_REQUEST: usize = 256;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 8;
/// The largest answer `tr7 status` accepts (a report of thousands of VIPs is far less).
const MAX_ANSWER: u64 = 64 << 20;
/// `sun_path` is 108 bytes with the terminating NUL.
const MAX_PATH: usize = 107;

/// Why the control socket could not be set up or asked.
#[derive(Debug, Error)]
pub enum ControlError {
    #[error(
        "control socket {}: the path is {} bytes, the kernel allows {MAX_PATH}; choose a shorter --control-socket",
        path.display(), path.as_os_str().len()
    )]
    PathTooLong { path: PathBuf },
    #[error("control socket {}: cannot {step}: {source}", path.display())]
    Io {
        path: PathBuf,
        step: &'static str,
        source: io::Error,
    },
    #[error(
        "control socket {}: the path exists and is not a socket; remove it or choose another --control-socket",
        path.display()
    )]
    NotASocket { path: PathBuf },
    #[error(
        "control socket {}: another agent is running and listening on it; stop it first, or give this one its own --control-socket",
        path.display()
    )]
    InUse { path: PathBuf },
    #[error(
        "no agent is running: there is no control socket at {}. Check that `tr7 agent` runs (its log, `ps`), \
         and if it was started with --control-socket PATH, pass the same path to `tr7 status --socket PATH`",
        path.display()
    )]
    NoSocket { path: PathBuf },
    #[error(
        "no agent is running: nobody listens on the control socket {} (an agent that crashed leaves it behind; \
         the next agent removes it). Check the agent's log and start it again",
        path.display()
    )]
    NotListening { path: PathBuf },
    #[error(
        "control socket {}: permission denied; the socket is root-only, run `tr7 status` as root",
        path.display()
    )]
    Denied { path: PathBuf },
    #[error(
        "control socket {}: the agent did not answer within {timeout:?} (still starting, or stuck: check its log)",
        path.display()
    )]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("control socket {}: the agent's answer is not a status report: {source}", path.display())]
    BadAnswer {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("control socket {}: the agent answered: {message}", path.display())]
    Agent { path: PathBuf, message: String },
}

/// The bound control socket. Dropping it removes the socket file, if it is still ours.
pub struct ControlSocket {
    path: PathBuf,
    listener: Option<StdUnixListener>,
    /// Device and inode of our socket file: a later agent may have replaced it.
    id: (u64, u64),
}

impl ControlSocket {
    /// Binds `path` root-only (see the module docs), replacing a stale socket file and
    /// refusing when another agent listens. Call it before changing any kernel state.
    pub fn bind(path: &Path) -> Result<Self, ControlError> {
        if path.as_os_str().len() > MAX_PATH {
            return Err(ControlError::PathTooLong {
                path: path.to_owned(),
            });
        }
        let io_err = |step| {
            let path = path.to_owned();
            move |source| ControlError::Io { path, step, source }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            // Only a directory we create is made 0700: tightening an existing one (say
            // /tmp) would break everything else that uses it.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err("create its directory"))?;
        }
        remove_stale(path)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        if tmp.as_os_str().len() > MAX_PATH {
            return Err(ControlError::PathTooLong { path: tmp });
        }
        let _ = std::fs::remove_file(&tmp);
        let listener = StdUnixListener::bind(&tmp).map_err(io_err("bind"))?;
        let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err("make it mode 0600"))
            .and_then(|()| std::fs::rename(&tmp, path).map_err(io_err("move it into place")));
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let meta = std::fs::symlink_metadata(path).map_err(io_err("read it back"))?;
        listener
            .set_nonblocking(true)
            .map_err(io_err("make it non-blocking"))?;
        info!(path = %path.display(), mode = "0600", "control socket bound");
        Ok(Self {
            path: path.to_owned(),
            listener: Some(listener),
            id: (meta.dev(), meta.ino()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The task that serves status requests until the runtime stops (spawn it on the
    /// agent's runtime); each request asks `reporter` for a fresh report. The socket file
    /// stays this guard's to remove.
    pub fn serve(&mut self, reporter: Reporter) -> impl Future<Output = ()> + Send + 'static {
        let listener = self.listener.take();
        let path = self.path.clone();
        async move {
            if let Some(listener) = listener {
                serve(listener, &path, reporter).await;
            }
        }
    }
}

async fn serve(std: StdUnixListener, path: &Path, reporter: Reporter) {
    {
        let listener = match UnixListener::from_std(std) {
            Ok(l) => l,
            Err(error) => {
                warn!(path = %path.display(), %error, "control socket cannot be served");
                return;
            }
        };
        let reporter = Arc::new(reporter);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(c) => c,
                Err(error) => {
                    warn!(path = %path.display(), %error, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let reporter = reporter.clone();
            tokio::spawn(async move {
                handle(stream, &reporter).await;
                drop(permit);
            });
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        // Remove the file only if it is still the one we bound.
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.id
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Removes `path` if it is a socket nobody listens on; refuses if it is something else
/// or an agent answers.
fn remove_stale(path: &Path) -> Result<(), ControlError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ControlError::Io {
                path: path.to_owned(),
                step: "inspect it",
                source,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ControlError::NotASocket {
            path: path.to_owned(),
        });
    }
    match StdUnixStream::connect(path) {
        Ok(_) => Err(ControlError::InUse {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            warn!(path = %path.display(), "removing a stale control socket (nobody listens on it)");
            std::fs::remove_file(path).map_err(|source| ControlError::Io {
                path: path.to_owned(),
                step: "remove the stale socket",
                source,
            })
        }
        Err(source) => Err(ControlError::Io {
            path: path.to_owned(),
            step: "check whether an agent listens on it",
            source,
        }),
    }
}

/// What a request line asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request {
    Status,
}

/// Parses one request line (without or with its newline).
pub(crate) fn parse_request(line: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(line).map_err(|_| "the request is not UTF-8".to_owned())?;
    match text.trim() {
        "status" => Ok(Request::Status),
        "" => Err("empty request; known requests: status".to_owned()),
        other => {
            let shown: String = other.chars().take(40).collect();
            Err(format!("unknown request `{shown}`; known requests: status"))
        }
    }
}

fn error_answer(message: &str) -> Vec<u8> {
    let mut out = serde_json::to_vec(&serde_json::json!({ "error": message }))
        .unwrap_or_else(|_| b"{\"error\":\"internal\"}".to_vec());
    out.push(b'\n');
    out
}

async fn handle(mut stream: UnixStream, reporter: &Reporter) {
    let allowed = match stream.peer_cred() {
        Ok(cred) => cred.uid() == 0 || cred.uid() == nix::unistd::geteuid().as_raw(),
        Err(_) => false,
    };
    let answer = if !allowed {
        debug!("control socket: peer is neither root nor the agent's user");
        error_answer("permission denied: root only")
    } else {
        match read_request(&mut stream).await {
            Err(message) => error_answer(&message),
            Ok(Request::Status) => match reporter.report().await {
                Ok(report) => {
                    let mut out = serde_json::to_vec(&report).unwrap_or_default();
                    out.push(b'\n');
                    out
                }
                Err(message) => error_answer(&message),
            },
        }
    };
    let write = async {
        stream.write_all(&answer).await?;
        stream.shutdown().await
    };
    if let Err(error) = tokio::time::timeout(REQUEST_TIMEOUT, write)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
    {
        debug!(%error, "control socket: answer not delivered");
    }
}

/// Reads one line of at most [`MAX_REQUEST`] bytes within [`REQUEST_TIMEOUT`].
async fn read_request(stream: &mut UnixStream) -> Result<Request, String> {
    let read = async {
        let mut buf = Vec::with_capacity(64);
        let mut chunk = [0u8; 64];
        loop {
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.iter().position(|&b| b == b'\n') {
                buf.truncate(end);
                return Ok(buf);
            }
            if n == 0 {
                return Ok(buf);
            }
            if buf.len() > MAX_REQUEST {
                return Err(format!("request longer than {MAX_REQUEST} bytes"));
            }
        }
    };
    let line = tokio::time::timeout(REQUEST_TIMEOUT, read)
        .await
        .map_err(|_| format!("no complete request within {REQUEST_TIMEOUT:?}"))??;
    parse_request(&line)
}

/// Asks the agent listening on `path` for its status (the client side of `tr7 status`).
pub fn query(path: &Path, timeout: Duration) -> Result<StatusReport, ControlError> {
    let p = || path.to_owned();
    let mut stream = StdUnixStream::connect(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ControlError::NoSocket { path: p() },
        io::ErrorKind::ConnectionRefused => ControlError::NotListening { path: p() },
        io::ErrorKind::PermissionDenied => ControlError::Denied { path: p() },
        _ => ControlError::Io {
            path: p(),
            step: "connect",
            source: e,
        },
    })?;
    let io_err = |step| {
        move |source: io::Error| {
            if matches!(
                source.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) {
                ControlError::Timeout { path: p(), timeout }
            } else {
                ControlError::Io {
                    path: p(),
                    step,
                    source,
                }
            }
        }
    };
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(io_err("set timeouts"))?;
    stream
        .write_all(b"status\n")
        .map_err(io_err("send the request"))?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .map_err(io_err("read the answer"))?;
    parse_answer(path, &answer)
}

fn parse_answer(path: &Path, answer: &[u8]) -> Result<StatusReport, ControlError> {
    let bad = |source| ControlError::BadAnswer {
        path: path.to_owned(),
        source,
    };
    let value: serde_json::Value = serde_json::from_slice(answer).map_err(bad)?;
    if let Some(message) = value.get("error").and_then(|m| m.as_str()) {
        return Err(ControlError::Agent {
            path: path.to_owned(),
            message: message.to_owned(),
        });
    }
    serde_json::from_value(value).map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_socket_per_namespace() {
        assert_eq!(default_socket(None), Path::new("/run/tr7/tr7.sock"));
        assert_eq!(
            default_socket(Some("lab-a")),
            Path::new("/run/tr7/tr7-lab-a.sock")
        );
    }

    // Proves only `status` is a request, that garbage is an error naming the known
    // requests, and that an echo of a huge request is cut short.
    #[test]
    fn requests() {
        assert_eq!(parse_request(b"status"), Ok(Request::Status));
        assert_eq!(parse_request(b"status\r"), Ok(Request::Status));
        assert!(
            parse_request(b"")
                .unwrap_err()
                .contains("known requests: status")
        );
        assert!(
            parse_request(b"GET / HTTP/1.1")
                .unwrap_err()
                .contains("unknown request `GET / HTTP/1.1`")
        );
        assert!(parse_request(&[0xff, 0xfe]).unwrap_err().contains("UTF-8"));
        let long = "x".repeat(500);
        assert!(parse_request(long.as_bytes()).unwrap_err().len() < 100);
    }

    // Proves the client turns the agent's error answer into an error, a report into a
    // report, and anything else into a clear "not a status report".
    #[test]
    fn answers() {
        let path = Path::new("/run/tr7/tr7.sock");
        let err = parse_answer(path, &error_answer("permission denied: root only")).unwrap_err();
        assert!(
            err.to_string()
                .contains("the agent answered: permission denied")
        );
        let report = crate::agent::status::tests::sample();
        let bytes = serde_json::to_vec(&report).unwrap();
        assert_eq!(parse_answer(path, &bytes).unwrap(), report);
        let err = parse_answer(path, b"HTTP/1.1 200 OK").unwrap_err();
        assert!(err.to_string().contains("not a status report"), "{err}");
    }

    // Proves the socket is bound 0600 in a directory the agent creates 0700, that a second
    // bind while the first listens is refused, that a stale socket (nobody listening) is
    // replaced, that a non-socket is never removed, and that drop removes the file.
    #[test]
    fn bind_permissions_stale_and_in_use() {
        let dir = std::env::temp_dir().join(format!("tr7-ctl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub").join("a.sock");
        let first = ControlSocket::bind(&path).expect("bind");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let err = ControlSocket::bind(&path)
            .err()
            .expect("second bind refused");
        assert!(matches!(err, ControlError::InUse { .. }), "{err}");
        // A crashed agent: the file stays, nobody listens.
        let mut first = first;
        drop(first.listener.take());
        std::mem::forget(first);
        let err = query(&path, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, ControlError::NotListening { .. }), "{err}");
        let second = ControlSocket::bind(&path).expect("stale socket replaced");
        StdUnixStream::connect(&path).expect("the new socket listens");
        assert_eq!(mode(&path), 0o600);
        drop(second);
        assert!(!path.exists(), "drop removes the socket");
        let err = query(&path, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, ControlError::NoSocket { .. }), "{err}");
        assert!(err.to_string().contains("no agent is running"), "{err}");
        std::fs::write(&path, b"not a socket").unwrap();
        let err = ControlSocket::bind(&path)
            .err()
            .expect("non-socket refused");
        assert!(matches!(err, ControlError::NotASocket { .. }), "{err}");
        assert!(path.exists(), "a non-socket is never removed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
