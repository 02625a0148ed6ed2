//! The `disk-full` fault: every write on a node's own directories (`/etc`, `/var/lib`,
//! `/var/log`, `/opt`, `/usr/local`, `/usr/bin`, `/root`, `/home`, `/srv`) fails with ENOSPC,
//! "No space left on device", as on a machine whose disk filled up.
//!
//! Design, and why: the fault stacks a second overlay on each of the node's overlays, in the
//! node's own mount namespace. Its lower layer is the node's filesystem as it stands (so
//! everything written before the fault stays visible); its upper layer lives on a tiny tmpfs
//! (64 KiB) that a balloon file fills and whose inode count is then lowered to what is in use.
//! Writing a file, creating one, a directory or a whiteout all need blocks or an inode there,
//! so the kernel itself answers ENOSPC, to every program on the node, root included. `clear`
//! (and `up`) unmounts the stacked overlays, which frees the tmpfs; a node that boots while
//! the fault is set (a `reboot`, or a restart by another fault) stacks them again before its
//! sshd starts, so a full disk stays full across a reboot, as a real one does.
//!
//! The alternative the issue suggested, keeping every node's upper layers on a size-limited
//! filesystem all the time, was not taken: a tmpfs would hold all node state in memory and
//! lose it at `lab down` (today it survives down and up), and a loop-mounted image per node
//! would cost a `mkfs` and a loop device per node (200 nodes must come up in seconds). Here a
//! lab without the fault is exactly what it was, the fault costs 64 KiB of memory per node and
//! never a byte of this machine's disk, and its mounts exist only in the node's namespace, so
//! they die with the node's processes and `lab down` leaves none behind.
//!
//! Not supported: removing files does not free space during the fault (a whiteout needs an
//! inode too, so `rm` also fails with ENOSPC, where on a real disk it would succeed); nothing
//! written during the fault can therefore be lost by `clear`. The node's `/tmp`, `/run` and
//! `/var/tmp` are this machine's (not overlaid) and stay writable. A file system a playbook
//! mounted below one of the overlaid directories (`/srv/scratch`) is hidden while the fault
//! lasts.
//!
//! The fault is set by a marker file, `<lab>/nodes/<node>/disk-full`, that the supervisor
//! writes; a running node gets the stacked overlays from a short-lived `kamo lab disk`
//! process that enters its mount namespace (`setns` needs a single-threaded process, which
//! the supervisor is not).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::node::{self, OVERLAID};
use crate::error::Error;

/// The mount source of the stacked overlays and of their tmpfs (how `free` finds them).
pub const SOURCE: &str = "kamo-lab-full";

/// The mount source of a node's own overlays (see [`node::exec_node`]).
pub const NODE_SOURCE: &str = "kamo-lab";

/// Size of the tmpfs that holds the stacked upper layers (filled by the balloon at once).
const TMPFS_SIZE: usize = 64 * 1024;

/// Where the fault is recorded while it is set.
#[must_use]
pub fn marker(lab: &Path, name: &str) -> PathBuf {
    node::dir(lab, name).join("disk-full")
}

/// Whether the fault is set on the node.
#[must_use]
pub fn is_set(lab: &Path, name: &str) -> bool {
    marker(lab, name).exists()
}

/// One line of `/proc/self/mountinfo`: the mount point, the file system type and the source.
#[derive(Debug, PartialEq, Eq)]
pub struct Mount {
    pub point: String,
    pub fstype: String,
    pub source: String,
}

/// The mounts of a `/proc/*/mountinfo` text, in mount order (`\040`-style escapes decoded).
#[must_use]
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let fstype = r.next()?;
            let source = r.next()?;
            Some(Mount {
                point: unescape(point),
                fstype: fstype.to_owned(),
                source: unescape(source),
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as three octal digits after a `\`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && (b'0'..=b'3').contains(&b[i + 1])
            && b[i + 2..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mounts() -> Result<Vec<Mount>, Error> {
    let p = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(p).map_err(|e| Error::io("cannot read", p, e))?;
    Ok(parse_mountinfo(&text))
}

/// Whether `mounts` already has the stacked overlays (the fault is in place).
#[must_use]
pub fn stacked(mounts: &[Mount]) -> bool {
    mounts
        .iter()
        .any(|m| m.point == "/etc" && m.fstype == "overlay" && m.source == SOURCE)
}

/// Whether `mounts` are those of a booted lab node: the node's own overlay on `/etc`. Checked
/// before anything is mounted, so that the fault can never land on this machine's `/etc`.
#[must_use]
pub fn is_node_namespace(mounts: &[Mount]) -> bool {
    mounts
        .iter()
        .any(|m| m.point == "/etc" && m.fstype == "overlay" && m.source == NODE_SOURCE)
}

fn sys(name: &str, what: &str) -> impl Fn(nix::Error) -> Error {
    let msg = format!("node {name}: disk-full: {what}");
    move |e| Error::Other(format!("{msg}: {e}"))
}

/// Fills the disk of the node whose mount namespace this process is in (see the module doc).
/// Does nothing when it is full already.
pub fn fill(lab: &Path, name: &str, userns: bool) -> Result<(), Error> {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    let now = mounts()?;
    if !is_node_namespace(&now) {
        return Err(Error::Other(format!(
            "node {name}: disk-full: not in the node's mount namespace (no lab overlay on /etc)"
        )));
    }
    if stacked(&now) {
        return Ok(());
    }
    let opts = format!("size={TMPFS_SIZE},nr_inodes=256,mode=0755");
    mount(
        Some(SOURCE),
        "/mnt",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(opts.as_str()),
    )
    .map_err(sys(name, "mount a tmpfs on /mnt"))?;
    let result = stack(lab, name, userns);
    // Whatever happened, /mnt is the machine's again; the overlays keep their tmpfs alive.
    let _ = umount2("/mnt/lab", MntFlags::MNT_DETACH);
    let _ = umount2("/mnt", MntFlags::MNT_DETACH);
    if result.is_err() {
        let _ = free(name);
    }
    result
}

fn stack(lab: &Path, name: &str, userns: bool) -> Result<(), Error> {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    let none: Option<&str> = None;
    let mkdir = |p: &str| {
        std::fs::create_dir_all(p).map_err(|e| Error::io("cannot create", Path::new(p), e))
    };
    // The lab directory is bound into every node; when it lies below an overlaid directory
    // (/root/lab) the stacked overlay would hide that bind, so it is bound again on top.
    let under = OVERLAID
        .iter()
        .any(|l| lab.starts_with(Path::new("/").join(l)));
    if under {
        mkdir("/mnt/lab")?;
        mount(Some(lab), "/mnt/lab", none, MsFlags::MS_BIND, none)
            .map_err(sys(name, "bind the lab"))?;
    }
    for l in OVERLAID {
        let key = l.replace('/', "_");
        let (upper, work) = (format!("/mnt/upper/{key}"), format!("/mnt/work/{key}"));
        mkdir(&upper)?;
        mkdir(&work)?;
        let target = format!("/{l}");
        let mut opts = format!("lowerdir={target},upperdir={upper},workdir={work}");
        if userns {
            opts.push_str(",userxattr");
        }
        mount(
            Some(SOURCE),
            target.as_str(),
            Some("overlay"),
            MsFlags::empty(),
            Some(opts.as_str()),
        )
        .map_err(sys(name, &format!("overlay on {target}")))?;
    }
    if under {
        mount(Some("/mnt/lab"), lab, none, MsFlags::MS_BIND, none)
            .map_err(sys(name, "bind the lab back"))?;
        umount2("/mnt/lab", MntFlags::MNT_DETACH).map_err(sys(name, "umount /mnt/lab"))?;
    }
    if userns {
        super::node::bind_userns_sudo(&super::node::userns_dir(lab), false)
            .map_err(|e| Error::Other(format!("node {name}: disk-full: {e}")))?;
    }
    balloon(Path::new("/mnt/balloon"))?;
    // No inode left either: creating a file, a directory or a whiteout fails like a write.
    let st = nix::sys::statvfs::statvfs("/mnt").map_err(sys(name, "statfs /mnt"))?;
    let used = st.files().saturating_sub(st.files_free());
    mount(
        none,
        "/mnt",
        Some("tmpfs"),
        MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(format!("nr_inodes={used}").as_str()),
    )
    .map_err(sys(name, "take the tmpfs's free inodes away"))?;
    Ok(())
}

/// Writes zeros to `path` until the file system is full (bounded by the tmpfs's size).
fn balloon(path: &Path) -> Result<(), Error> {
    let mut f = std::fs::File::create(path).map_err(|e| Error::io("cannot create", path, e))?;
    let chunk = [0u8; 4096];
    for _ in 0..=TMPFS_SIZE / chunk.len() {
        match f.write(&chunk) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => return Ok(()),
            Err(e) => return Err(Error::io("cannot write", path, e)),
        }
    }
    Ok(())
}

/// Takes the stacked overlays away (top first), so the node's own layers show again.
pub fn free(name: &str) -> Result<(), Error> {
    use nix::mount::{MntFlags, umount2};
    let now = mounts()?;
    if !is_node_namespace(&now) {
        return Err(Error::Other(format!(
            "node {name}: disk-full: not in the node's mount namespace (no lab overlay on /etc)"
        )));
    }
    for m in now.iter().rev().filter(|m| m.source == SOURCE) {
        umount2(m.point.as_str(), MntFlags::MNT_DETACH)
            .map_err(sys(name, &format!("umount {}", m.point)))?;
    }
    Ok(())
}

/// Enters the mount namespace of process `pid` (a node's sshd), after checking that it is
/// not this process's own. Must be called while the process has one thread.
pub fn enter(name: &str, pid: u32) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let ns = format!("/proc/{pid}/ns/mnt");
    let theirs = std::fs::metadata(&ns).map_err(|e| Error::io("cannot read", Path::new(&ns), e))?;
    let ours = std::fs::metadata("/proc/self/ns/mnt")
        .map_err(|e| Error::io("cannot read", Path::new("/proc/self/ns/mnt"), e))?;
    if theirs.ino() == ours.ino() && theirs.dev() == ours.dev() {
        return Err(Error::Other(format!(
            "node {name}: disk-full: process {pid} has not entered its own namespace yet"
        )));
    }
    let f = std::fs::File::open(&ns).map_err(|e| Error::io("cannot open", Path::new(&ns), e))?;
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(sys(name, "enter the node's mount namespace"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
70 27 0:40 / /etc rw,relatime - overlay kamo-lab rw,lowerdir=/etc,upperdir=/l/nodes/n1/upper/etc
71 27 0:41 / /root rw,relatime - overlay kamo-lab rw,lowerdir=/root
72 71 254:0 /root/my\\040lab /root/my\\040lab rw - ext4 /dev/vda rw
";

    #[test]
    fn mountinfo_lines_give_point_type_and_source() {
        let m = parse_mountinfo(NODE);
        assert_eq!(m.len(), 5);
        assert_eq!(
            m[4],
            Mount {
                point: "/root/my lab".into(),
                fstype: "ext4".into(),
                source: "/dev/vda".into()
            }
        );
        assert!(is_node_namespace(&m));
        assert!(!stacked(&m));
    }

    #[test]
    fn the_machine_itself_is_not_a_node_and_stacked_layers_are_seen() {
        let host = parse_mountinfo("27 1 254:0 / / rw - ext4 /dev/vda rw\n");
        assert!(!is_node_namespace(&host));
        let full = format!(
            "{NODE}80 70 0:50 / /etc rw - overlay kamo-lab-full rw,lowerdir=/etc,upperdir=/mnt/upper/etc\n"
        );
        assert!(stacked(&parse_mountinfo(&full)));
    }

    #[test]
    fn garbage_mountinfo_is_no_mount() {
        assert!(parse_mountinfo("not a mountinfo line\n\n").is_empty());
        assert_eq!(unescape("a\\040b\\\\c\\04"), "a b\\\\c\\04");
    }
}
