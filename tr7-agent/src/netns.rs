//! Network namespaces: which one a thread is in, and entering a named one for a while.
//!
//! Named namespaces are the ones `ip netns` manages, bind-mounted under /run/netns.

use std::{
    fs::File,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use nix::sched::{CloneFlags, setns};

/// Where `ip netns add NAME` bind-mounts a namespace.
pub const NETNS_RUN_DIR: &str = "/run/netns";

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error(
        "network namespace `{name}` does not exist ({path}: {source}); create it with `ip netns add {name}`"
    )]
    Open {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the current network namespace: {0}")]
    Current(std::io::Error),
    #[error("cannot enter network namespace `{name}`: {source}")]
    Enter { name: String, source: nix::Error },
}

/// The inode number of the calling thread's network namespace: stable while the namespace
/// lives, the same for every process in it, and what `ip netns identify` compares.
pub fn current_inode() -> Result<u32, NetnsError> {
    let meta = std::fs::metadata("/proc/thread-self/ns/net").map_err(NetnsError::Current)?;
    // nsfs inode numbers are 32-bit (proc_inum allocates from an ida below 2^32).
    u32::try_from(meta.ino()).map_err(|_| {
        NetnsError::Current(std::io::Error::other(format!(
            "namespace inode {} does not fit 32 bits",
            meta.ino()
        )))
    })
}

/// The inode of the named namespace (`ip netns` name), or of the calling thread's when
/// `name` is `None`, without entering it: the bind mount under /run/netns is the nsfs inode.
pub fn inode(name: Option<&str>) -> Result<u32, NetnsError> {
    let Some(name) = name else {
        return current_inode();
    };
    let path = Path::new(NETNS_RUN_DIR).join(name);
    let meta = std::fs::metadata(&path).map_err(|source| NetnsError::Open {
        name: name.to_owned(),
        path: path.clone(),
        source,
    })?;
    u32::try_from(meta.ino()).map_err(|_| {
        NetnsError::Current(std::io::Error::other(format!(
            "namespace inode {} does not fit 32 bits",
            meta.ino()
        )))
    })
}

/// Runs `f` inside the named namespace (or right here when `name` is `None`) on the calling
/// thread, and comes back.
pub fn within<T>(name: Option<&str>, f: impl FnOnce() -> T) -> Result<T, NetnsError> {
    let _entered = name.map(enter).transpose()?;
    Ok(f())
}

/// The calling thread stays in namespace `name` until this guard drops, then returns to the
/// namespace it came from. Only this thread moves: keep the guard on one thread.
pub struct Entered {
    original: File,
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Err(error) = setns(&self.original, CloneFlags::CLONE_NEWNET) {
            // Nothing sensible is left to do: the thread would act in the wrong namespace.
            panic!("cannot return to the original network namespace: {error}");
        }
    }
}

/// Enters the named namespace (`ip netns` name) on the calling thread.
pub fn enter(name: &str) -> Result<Entered, NetnsError> {
    let path = Path::new(NETNS_RUN_DIR).join(name);
    let target = File::open(&path).map_err(|source| NetnsError::Open {
        name: name.to_owned(),
        path: path.clone(),
        source,
    })?;
    let original = File::open("/proc/thread-self/ns/net").map_err(NetnsError::Current)?;
    setns(&target, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Enter {
        name: name.to_owned(),
        source,
    })?;
    Ok(Entered { original })
}

/// Why a named namespace could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("cannot create {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create network namespace `{name}`: {step}: {source}")]
    Kernel {
        name: String,
        step: &'static str,
        source: nix::Error,
    },
    #[error("the thread creating network namespace `{name}` panicked")]
    Thread { name: String },
}

/// Whether the named namespace (`ip netns` name) exists.
pub fn exists(name: &str) -> bool {
    Path::new(NETNS_RUN_DIR).join(name).exists()
}

/// Creates the named namespace the way `ip netns add NAME` does, so `ip netns` lists it: a
/// fresh namespace bind-mounted on /run/netns/NAME. Creating one that exists is success.
///
/// The namespace is made on a short-lived thread (unshare moves only that thread), so the
/// caller never changes namespace and no process is forked.
pub fn create(name: &str) -> Result<(), CreateError> {
    let path = Path::new(NETNS_RUN_DIR).join(name);
    if path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(NETNS_RUN_DIR).map_err(|source| CreateError::File {
        path: PathBuf::from(NETNS_RUN_DIR),
        source,
    })?;
    // The mount point: an empty file, like iproute2 makes.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|source| CreateError::File {
            path: path.clone(),
            source,
        })?;
    let owned = name.to_owned();
    let target = path.clone();
    let made = std::thread::spawn(move || -> Result<(), CreateError> {
        let kernel = |step, source| CreateError::Kernel {
            name: owned.clone(),
            step,
            source,
        };
        nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(|e| kernel("unshare", e))?;
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| kernel("bind mount", e))
    })
    .join()
    .unwrap_or_else(|_| {
        Err(CreateError::Thread {
            name: name.to_owned(),
        })
    });
    if made.is_err() {
        // Leave no empty mount point behind: `ip netns` would list a broken namespace.
        let _ = std::fs::remove_file(&path);
    }
    made
}
