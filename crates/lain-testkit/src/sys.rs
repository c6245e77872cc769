//! Host plumbing shared by the Docker, namespace and node helpers: kit
//! names that carry their owner's pid, `/proc` scans, killing process
//! trees, unmounting, and `ip` commands with a bounded wait.
//!
//! Every object the kit creates outside its temp dirs (bridges, veths,
//! namespaces, runtime dirs under [`RUN_DIR`]) is named `lkt{PID}-{N}...`
//! with the owner's pid and a per-process counter in base 36. A test binary
//! killed with SIGKILL cannot run its `Drop`s; the next kit user finds the
//! leftovers by that prefix, sees that their owner is dead and removes them
//! ([`crate::netns::cleanup_stale`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::process::run_timeout;
use crate::Result;

/// Prefix of every kit-made interface, namespace and runtime dir.
pub const PREFIX: &str = "lkt";

/// Short runtime dirs (docker sockets, exec roots, pid files) live here:
/// unix socket paths are limited to 108 bytes, so they cannot sit under an
/// arbitrary `$LAIN_TESTKIT_DIR`.
pub const RUN_DIR: &str = "/run/lkt";

/// Linux limit on interface names (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `n` in base 36, lowercase: short enough to fit pids into interface names.
pub fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// A fresh `{pid}-{n}` id, unique within this host while this process lives.
pub fn unique_id() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{}", base36(u64::from(std::process::id())), base36(n))
}

/// The owner pid encoded in a kit name (`lkt{pid}-...`, or `{pid}-...` for
/// runtime dirs), if the name is one of ours.
pub fn owner_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX).unwrap_or(name);
    let (pid, tail) = rest.split_once('-')?;
    if tail.is_empty() || pid.is_empty() {
        return None;
    }
    u32::from_str_radix(pid, 36).ok()
}

/// True while `pid` exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => parse_stat(&stat).is_some_and(|(state, _)| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// State and parent pid from a `/proc/PID/stat` line. The command name is
/// in parentheses and may itself contain spaces and parentheses.
fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut it = after.split_whitespace();
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    Some((state, ppid))
}

/// One live (non-zombie) process.
#[derive(Debug, Clone)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    /// Arguments joined by spaces.
    pub cmdline: String,
}

/// All live processes on the host, zombies excluded.
pub fn processes() -> Vec<ProcInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((state, ppid)) = parse_stat(&stat) else {
            continue;
        };
        if state == 'Z' || state == 'X' {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                b.split(|&c| c == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        out.push(ProcInfo { pid, ppid, cmdline });
    }
    out
}

/// Live processes whose command line contains `needle`, e.g. an exec root.
pub fn processes_mentioning(needle: &str) -> Vec<ProcInfo> {
    processes()
        .into_iter()
        .filter(|p| p.cmdline.contains(needle) && p.pid != std::process::id())
        .collect()
}

/// Live processes in the network namespace whose nsfs file is `ns_path`
/// (e.g. `/run/netns/NAME`), found by comparing namespace inodes.
pub fn processes_in_netns(ns_path: &Path) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(ns_path) else {
        return Vec::new();
    };
    let want = format!("net:[{}]", meta.ino());
    processes()
        .into_iter()
        .filter(|p| {
            std::fs::read_link(format!("/proc/{}/ns/net", p.pid))
                .is_ok_and(|l| l.to_string_lossy() == want)
        })
        .map(|p| p.pid)
        .collect()
}

/// SIGKILLs `roots` and all their descendants, then waits (at most
/// `timeout`) until none of them is alive. Returns the pids still alive.
pub fn kill_trees(roots: &[u32], timeout: Duration) -> Vec<u32> {
    let me = std::process::id();
    let procs = processes();
    let mut doomed: BTreeSet<u32> = roots.iter().copied().collect();
    // Children first appear after their parents in no particular order, so
    // grow the set until it stops changing.
    loop {
        let before = doomed.len();
        for p in &procs {
            if doomed.contains(&p.ppid) {
                doomed.insert(p.pid);
            }
        }
        if doomed.len() == before {
            break;
        }
    }
    // Never this test process or init, whatever a caller passed.
    doomed.retain(|&p| p > 1 && p != me);
    for &pid in &doomed {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    let deadline = Instant::now() + timeout;
    loop {
        let alive: Vec<u32> = doomed.iter().copied().filter(|&p| pid_alive(p)).collect();
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILLs exactly `pids` (not their children) and waits at most
/// `timeout` until they are gone. Returns the pids still alive.
pub fn kill_pids(pids: &[u32], timeout: Duration) -> Vec<u32> {
    let me = std::process::id();
    let pids: Vec<u32> = pids.iter().copied().filter(|&p| p > 1 && p != me).collect();
    for &pid in &pids {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    let deadline = Instant::now() + timeout;
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|&p| pid_alive(p)).collect();
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Mount points at or below any of `roots`, deepest first.
pub fn mounts_under(roots: &[&Path]) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mount(m)))
        .filter(|m| roots.iter().any(|r| m.starts_with(r)))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lazily unmounts everything at or below `roots` (deepest first, a few
/// rounds for stacked mounts). Returns the mount points that remain.
pub fn unmount_under(roots: &[&Path]) -> Vec<PathBuf> {
    use nix::mount::{umount2, MntFlags};
    for _ in 0..10 {
        let mounts = mounts_under(roots);
        if mounts.is_empty() {
            return mounts;
        }
        for m in mounts {
            // MNT_DETACH: a mount still busy (a dying process holds it) is
            // taken out of the tree now and released when the last user goes.
            let _ = umount2(&m, MntFlags::MNT_DETACH);
        }
    }
    mounts_under(roots)
}

/// Runs `ip ARGS` with a bounded wait.
pub fn ip(args: &[&str]) -> Result<String> {
    run_timeout(Command::new("ip").args(args), Duration::from_secs(15)).map_err(|e| match e {
        crate::KitError::Command { cmd, detail } => crate::KitError::Command {
            cmd,
            detail: format!(
                "{detail}; test networks need root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and iproute2; \
                 stale kit objects show as `lkt*` in `ip -br link` / `ip netns list`"
            ),
        },
        other => other,
    })
}

/// Names of all network interfaces in the root namespace.
pub fn link_names() -> Vec<String> {
    // `/sys/class/net` lists the interfaces of the namespace sysfs was
    // mounted in, which is the root namespace for this process.
    std::fs::read_dir("/sys/class/net")
        .map(|it| {
            it.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Named network namespaces (files under `/run/netns`).
pub fn netns_names() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|it| {
            it.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_owner() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        assert_eq!(base36(4_194_304).len(), 5);
        let id = unique_id();
        assert_eq!(owner_of(&format!("{PREFIX}{id}")), Some(std::process::id()));
        assert_eq!(
            owner_of(&format!("{PREFIX}{id}-3")),
            Some(std::process::id())
        );
        assert_eq!(owner_of(&id), Some(std::process::id()));
        assert_eq!(owner_of("eth0"), None);
        assert_eq!(owner_of("lkt-"), None);
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mount(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mount(r"/x\134y"), r"/x\y");
        assert_eq!(unescape_mount("/plain"), "/plain");
    }

    #[test]
    fn stat_lines_with_odd_names_parse() {
        assert_eq!(parse_stat("12 (a) b) S 7 1 1"), Some(('S', 7)));
        assert!(pid_alive(std::process::id()));
    }
}
