//! One lab node on disk: its host key, sshd_config, overlay layers and the files that make
//! the machine's own system look like a fresh Ubuntu server to whoever logs in.
//!
//! Node files are written straight into the upper layers of the node's overlays (its
//! `/etc/passwd` is the machine's plus a `ubuntu` user, its `/etc/os-release` says Ubuntu),
//! so starting a node costs one `unshare`, a few mounts and an `exec sshd`, and 200 nodes come
//! up in seconds.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::standin;
use crate::error::Error;

/// Directories each node sees as its own (overlays on the machine's).
pub const OVERLAID: &[&str] = &[
    "etc",
    "var/lib",
    "var/log",
    "opt",
    "usr/local",
    "usr/bin",
    "root",
    "home",
    "srv",
];

/// Stand-ins every fresh node has (what a fresh Ubuntu server has: apt, dpkg, systemd, reboot).
pub const BASE_TOOLS: &[&str] = &[
    "apt-get",
    "apt",
    "apt-cache",
    "apt-mark",
    "dpkg",
    "dpkg-query",
    "systemctl",
    "reboot",
    "sysctl",
    "modprobe",
    "lsmod",
    "modinfo",
    "hostnamectl",
];

/// The keys that may log in to a node, as the node sees the file.
pub const AUTHORIZED_KEYS: &str = "/etc/ssh/kamo-lab-authorized_keys";

/// The login user of every node, as on cloud Ubuntu images.
pub const USER: &str = "ubuntu";

/// When a new node's package lists were last updated: 2023-01-01, a stale image's.
const STALE_LISTS: std::time::Duration = std::time::Duration::from_secs(1_672_531_200);

/// One node of a lab.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NodeSpec {
    pub name: String,
    pub address: String,
    pub port: u16,
    #[serde(default)]
    pub gpu: bool,
}

/// Where a node's files live: `<lab>/nodes/<name>/`.
#[must_use]
pub fn dir(lab: &Path, name: &str) -> PathBuf {
    lab.join("nodes").join(name)
}

fn layer_key(d: &str) -> String {
    d.replace('/', "_")
}

fn io(what: &'static str, path: &Path, e: std::io::Error) -> Error {
    Error::io(what, path, e)
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), Error> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(|e| io("cannot create", p, e))?;
    }
    std::fs::write(path, text).map_err(|e| io("cannot write", path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io("cannot chmod", path, e))
}

/// The `/etc/os-release` of an Ubuntu release.
#[must_use]
pub fn os_release(version: &str) -> String {
    let (full, codename) = match version {
        "18.04" => ("18.04.6 LTS (Bionic Beaver)", "bionic"),
        "20.04" => ("20.04.6 LTS (Focal Fossa)", "focal"),
        _ => ("22.04.4 LTS (Jammy Jellyfish)", "jammy"),
    };
    let short = version;
    format!(
        "PRETTY_NAME=\"Ubuntu {}\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"{short}\"\nVERSION=\"{full}\"\n\
         VERSION_CODENAME={codename}\nID=ubuntu\nID_LIKE=debian\nHOME_URL=\"https://www.ubuntu.com/\"\n\
         SUPPORT_URL=\"https://help.ubuntu.com/\"\nBUG_REPORT_URL=\"https://bugs.launchpad.net/ubuntu/\"\n\
         PRIVACY_POLICY_URL=\"https://www.ubuntu.com/legal/terms-and-policies/privacy-policy\"\n\
         UBUNTU_CODENAME={codename}\n",
        full.split(" (").next().unwrap_or(full),
    )
}

/// A uid/gid free on this machine for the `ubuntu` user (Ubuntu's first user gets 1000).
#[must_use]
pub fn free_id(passwd: &str, group: &str) -> u32 {
    let used = |text: &str| -> Vec<u32> {
        text.lines()
            .filter_map(|l| l.split(':').nth(2)?.parse().ok())
            .collect()
    };
    let (u, g) = (used(passwd), used(group));
    (1000..60000)
        .find(|i| !u.contains(i) && !g.contains(i))
        .unwrap_or(59999)
}

/// What every node shares: the machine's account files, read once.
pub struct Base {
    pub passwd: String,
    pub shadow: String,
    pub group: String,
    pub hosts: String,
    pub uid: u32,
    pub kamo_bin: PathBuf,
    pub os_release: String,
    /// crypt(3) hash of the `ubuntu` password when sudo must ask for one.
    pub password_hash: Option<String>,
    /// The lab runs in a user namespace (see [`super::userns`]).
    pub userns: bool,
}

impl Base {
    pub fn read(
        os_release: &str,
        password_hash: Option<String>,
        userns: bool,
    ) -> Result<Base, Error> {
        let read =
            |p: &str| std::fs::read_to_string(p).map_err(|e| io("cannot read", Path::new(p), e));
        let passwd = read("/etc/passwd")?;
        let group = read("/etc/group")?;
        let uid = free_id(&passwd, &group);
        Ok(Base {
            shadow: read("/etc/shadow").unwrap_or_default(),
            hosts: read("/etc/hosts").unwrap_or_default(),
            kamo_bin: std::env::current_exe()
                .map_err(|e| Error::Other(format!("cannot find the kamo binary: {e}")))?,
            passwd,
            group,
            uid,
            os_release: os_release.to_owned(),
            password_hash,
            userns,
        })
    }
}

/// Whether this process may list and search `dir` (an overlay needs both on its lower layer).
fn readable(dir: &str) -> bool {
    use nix::unistd::{AccessFlags, access};
    access(dir, AccessFlags::R_OK | AccessFlags::X_OK).is_ok()
}

/// Writes a node's files (first boot only; an existing node keeps its state).
pub fn prepare(lab: &Path, spec: &NodeSpec, base: &Base) -> Result<(), Error> {
    let d = dir(lab, &spec.name);
    for l in OVERLAID {
        for kind in ["upper", "work"] {
            let p = d.join(kind).join(layer_key(l));
            std::fs::create_dir_all(&p).map_err(|e| io("cannot create", &p, e))?;
        }
    }
    let key = d.join("host_key");
    if !key.exists() {
        keygen(&key, &format!("root@{}", spec.name))?;
    }
    write(&d.join("sshd_config"), &sshd_config(spec, &d), 0o600)?;
    let keys = std::fs::read_to_string(lab.join("authorized_keys"))
        .map_err(|e| io("cannot read", &lab.join("authorized_keys"), e))?;
    let upper = |abs: &str| -> PathBuf {
        let rel = abs.trim_start_matches('/');
        let layer = OVERLAID
            .iter()
            .filter(|l| rel.starts_with(&format!("{l}/")))
            .max_by_key(|l| l.len())
            .expect("node files live in overlaid directories");
        d.join("upper")
            .join(layer_key(layer))
            .join(&rel[layer.len() + 1..])
    };
    let marker = upper("/etc/kamo-lab/node.json");
    let node = standin::Node {
        name: spec.name.clone(),
        address: spec.address.clone(),
        lab_dir: lab.to_owned(),
        gpu: spec.gpu,
        os_release: base.os_release.clone(),
        kamo_bin: base.kamo_bin.clone(),
        root: PathBuf::from("/"),
    };
    let first_boot = !marker.exists();
    write(&upper(AUTHORIZED_KEYS), &keys, 0o644)?;
    write(
        &marker,
        &serde_json::to_string_pretty(&node).unwrap_or_default(),
        0o644,
    )?;
    if !first_boot {
        return Ok(());
    }
    let uid = base.uid;
    let shadow_field = base.password_hash.as_deref().unwrap_or("*");
    write(
        &upper("/etc/passwd"),
        &format!(
            "{}{USER}:x:{uid}:{uid}:Ubuntu:/home/{USER}:/bin/bash\n",
            ensure_nl(&base.passwd)
        ),
        0o644,
    )?;
    write(
        &upper("/etc/shadow"),
        &format!(
            "{}{USER}:{shadow_field}:19700:0:99999:7:::\n",
            ensure_nl(&base.shadow)
        ),
        0o640,
    )?;
    write(
        &upper("/etc/group"),
        &format!("{}{USER}:x:{uid}:\n", ensure_nl(&base.group)),
        0o644,
    )?;
    let rule = if base.password_hash.is_some() {
        format!("{USER} ALL=(ALL) ALL\n")
    } else {
        format!("{USER} ALL=(ALL) NOPASSWD:ALL\n")
    };
    write(
        &upper("/etc/sudoers.d/90-cloud-init-users"),
        &format!("# Created by kamo lab, as cloud-init does on Ubuntu images\n{rule}"),
        0o440,
    )?;
    if base.userns {
        sudo_of_the_namespace(&upper)?;
    }
    write(
        &upper("/etc/os-release"),
        &os_release(&base.os_release),
        0o644,
    )?;
    write(
        &upper("/etc/lsb-release"),
        &format!(
            "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE={0}\nDISTRIB_CODENAME={1}\nDISTRIB_DESCRIPTION=\"Ubuntu {0}\"\n",
            base.os_release,
            match base.os_release.as_str() {
                "18.04" => "bionic",
                "20.04" => "focal",
                _ => "jammy",
            }
        ),
        0o644,
    )?;
    write(&upper("/etc/hostname"), &format!("{}\n", spec.name), 0o644)?;
    let own = format!("{} {}\n", spec.address, spec.name);
    let hosts = if base.hosts.contains(&own) {
        ensure_nl(&base.hosts)
    } else {
        format!("{}{own}", ensure_nl(&base.hosts))
    };
    write(&upper("/etc/hosts"), &hosts, 0o644)?;
    let home = upper(&format!("/home/{USER}/.profile"));
    write(&home, "# ~/.profile of a kamo lab node\n", 0o644)?;
    let home_dir = home.parent().expect("a home directory").to_owned();
    std::os::unix::fs::chown(&home_dir, Some(uid), Some(uid))
        .map_err(|e| io("cannot chown", &home_dir, e))?;
    std::os::unix::fs::chown(&home, Some(uid), Some(uid))
        .map_err(|e| io("cannot chown", &home, e))?;
    // A fresh Ubuntu server's apt sources, and none of this machine's: each of its files in
    // sources.list.d is hidden by an overlay whiteout (a 0/0 character device).
    let codename = match base.os_release.as_str() {
        "18.04" => "bionic",
        "20.04" => "focal",
        _ => "jammy",
    };
    write(
        &upper("/etc/apt/sources.list"),
        &format!(
            "deb http://archive.ubuntu.com/ubuntu {codename} main restricted universe multiverse
             deb http://archive.ubuntu.com/ubuntu {codename}-updates main restricted universe multiverse
             deb http://security.ubuntu.com/ubuntu {codename}-security main restricted universe multiverse
"
        ),
        0o644,
    )?;
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            whiteout(&upper(&format!("/etc/apt/sources.list.d/{name}")))?;
        }
    }
    // Its package lists are a fresh image's: old, whenever this machine last ran `apt-get
    // update` (else an `apt` task's `cache_valid_time` would see this machine's fresh lists
    // and skip the update that makes the node's third-party sources known).
    stale_package_lists(&upper(standin::packages::UPDATE_STAMP))?;
    // Programs that packages bring (kubectl, helm, ...) exist only once installed, even where
    // this machine has its own.
    for tool in standin::TOOLS.iter().filter(|t| !BASE_TOOLS.contains(t)) {
        for dir in ["/usr/bin", "/usr/local/bin"] {
            let p = format!("{dir}/{tool}");
            if Path::new(&p).symlink_metadata().is_ok() {
                whiteout(&upper(&p))?;
            }
        }
    }
    for tool in BASE_TOOLS {
        let link = upper(&format!("/usr/local/bin/{tool}"));
        if let Some(p) = link.parent() {
            std::fs::create_dir_all(p).map_err(|e| io("cannot create", p, e))?;
        }
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&base.kamo_bin, &link)
            .map_err(|e| io("cannot link", &link, e))?;
    }
    Ok(())
}

/// Ubuntu's `/etc/sudoers`, which a node in a user namespace gets as its own: the machine's is
/// neither readable by the user nor owned by the namespace's root.
const SUDOERS: &str = "# /etc/sudoers of a kamo lab node, as Ubuntu ships it
Defaults\tenv_reset
Defaults\tmail_badpass
Defaults\tsecure_path=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/snap/bin\"
Defaults\tuse_pty
root\tALL=(ALL:ALL) ALL
%admin ALL=(ALL) ALL
%sudo\tALL=(ALL:ALL) ALL
@includedir /etc/sudoers.d
";

/// The sudo configuration of a node in a user namespace (see [`super::userns`]): its own
/// `/etc/sudoers` and `/etc/sudo.conf`, owned by the namespace's root, and none of the
/// machine's `sudoers.d` files, which sudo would refuse as owned by `nobody`.
fn sudo_of_the_namespace(upper: &dyn Fn(&str) -> PathBuf) -> Result<(), Error> {
    write(&upper("/etc/sudoers"), SUDOERS, 0o440)?;
    if let Ok(conf) = std::fs::read_to_string("/etc/sudo.conf") {
        write(&upper("/etc/sudo.conf"), &conf, 0o644)?;
    }
    if let Ok(rd) = std::fs::read_dir("/etc/sudoers.d") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name != "90-cloud-init-users" {
                whiteout(&upper(&format!("/etc/sudoers.d/{name}")))?;
            }
        }
    }
    Ok(())
}

/// Where a lab in a user namespace keeps the `sudo` its nodes run: `<lab>/userns/`.
#[must_use]
pub fn userns_dir(lab: &Path) -> PathBuf {
    lab.join("userns")
}

/// sudo's plugin directory on this machine (Debian and Ubuntu: `/usr/libexec/sudo`).
fn sudo_libexec() -> Option<PathBuf> {
    ["/usr/libexec/sudo", "/usr/lib/sudo"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("sudoers.so").exists())
}

/// Copies `sudo` (set-uid) and its plugins into `<lab>/userns/`, owned by this process, the
/// namespace's root: the machine's copies belong to a root the namespace does not map, so
/// their set-uid bit does nothing there and sudo refuses plugins not owned by uid 0. Every
/// node binds these over its own. Refused on a `nosuid` file system, where no copy would work.
pub fn prepare_userns_sudo(lab: &Path) -> Result<(), Error> {
    let st = nix::sys::statvfs::statvfs(lab)
        .map_err(|e| Error::Other(format!("cannot stat {}: {e}", lab.display())))?;
    if st.flags().contains(nix::sys::statvfs::FsFlags::ST_NOSUID) {
        return Err(Error::Usage(format!(
            "{} is on a file system mounted nosuid: the lab's nodes need a set-uid sudo of their \
             own there; use a --dir on another file system (see `findmnt -T {}`)",
            lab.display(),
            lab.display()
        )));
    }
    let d = userns_dir(lab);
    let plugins = d.join("libexec-sudo");
    std::fs::create_dir_all(&plugins).map_err(|e| io("cannot create", &plugins, e))?;
    let sudo = d.join("sudo");
    let _ = std::fs::remove_file(&sudo);
    std::fs::copy("/usr/bin/sudo", &sudo)
        .map_err(|e| io("cannot copy sudo (install sudo) to", &sudo, e))?;
    std::fs::set_permissions(&sudo, std::fs::Permissions::from_mode(0o4755))
        .map_err(|e| io("cannot chmod", &sudo, e))?;
    let Some(src) = sudo_libexec() else {
        return Err(Error::Other(
            "sudo's plugins (sudoers.so) are in neither /usr/libexec/sudo nor /usr/lib/sudo".into(),
        ));
    };
    let rd = std::fs::read_dir(&src).map_err(|e| io("cannot read", &src, e))?;
    for e in rd.flatten() {
        let to = plugins.join(e.file_name());
        let _ = std::fs::remove_file(&to);
        let from = e.path();
        let meta = from
            .symlink_metadata()
            .map_err(|err| io("cannot read", &from, err))?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&from).map_err(|err| io("cannot read", &from, err))?;
            std::os::unix::fs::symlink(&target, &to).map_err(|err| io("cannot link", &to, err))?;
        } else if meta.is_file() {
            std::fs::copy(&from, &to).map_err(|err| io("cannot copy to", &to, err))?;
        }
    }
    Ok(())
}

/// Binds the lab's own `sudo` (and, with `plugins`, its plugin directory) from `own`
/// (`<lab>/userns` as this mount namespace sees it) over the node's; see
/// [`prepare_userns_sudo`]. Also called again over a stacked `/usr/bin` (the `disk-full`
/// fault), whose lower layer does not carry this bind.
pub fn bind_userns_sudo(own: &Path, plugins: bool) -> Result<(), Error> {
    use nix::mount::{MsFlags, mount};
    let none: Option<&str> = None;
    mount(
        Some(&own.join("sudo")),
        "/usr/bin/sudo",
        none,
        MsFlags::MS_BIND,
        none,
    )
    .map_err(|e| Error::Other(format!("bind the lab's sudo: {e}")))?;
    if plugins && let Some(dir) = sudo_libexec() {
        mount(
            Some(&own.join("libexec-sudo")),
            &dir,
            none,
            MsFlags::MS_BIND,
            none,
        )
        .map_err(|e| Error::Other(format!("bind the lab's sudo plugins: {e}")))?;
    }
    Ok(())
}

/// Hides `path` of the lower layer: an overlay whiteout is a 0/0 character device.
fn whiteout(path: &Path) -> Result<(), Error> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(|e| io("cannot create", p, e))?;
    }
    nix::sys::stat::mknod(
        path,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        nix::sys::stat::makedev(0, 0),
    )
    .map_err(|e| Error::Other(format!("cannot hide {}: {e}", path.display())))
}

/// Creates apt's update stamp `stamp`, dated [`STALE_LISTS`], unless the node has one.
fn stale_package_lists(stamp: &Path) -> Result<(), Error> {
    if stamp.exists() {
        return Ok(());
    }
    write(stamp, "", 0o644)?;
    std::fs::File::options()
        .write(true)
        .open(stamp)
        .and_then(|f| f.set_modified(std::time::UNIX_EPOCH + STALE_LISTS))
        .map_err(|e| io("cannot date", stamp, e))
}

fn ensure_nl(s: &str) -> String {
    if s.is_empty() || s.ends_with('\n') {
        s.to_owned()
    } else {
        format!("{s}\n")
    }
}

/// A new ed25519 key pair at `path` (and `path.pub`).
pub fn keygen(path: &Path, comment: &str) -> Result<(), Error> {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            Error::Other(format!(
                "cannot run ssh-keygen (install openssh-client): {e}"
            ))
        })?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "ssh-keygen failed for {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn sshd_config(spec: &NodeSpec, d: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# sshd of kamo lab node {}", spec.name);
    let _ = writeln!(s, "ListenAddress {}:{}", spec.address, spec.port);
    let _ = writeln!(s, "HostKey {}", d.join("host_key").display());
    let _ = writeln!(s, "PidFile {}", d.join("sshd.pid").display());
    // Inside the node's own /etc (sshd resolves it in the node's mount namespace), so the
    // ubuntu user can read it wherever the lab directory is.
    // Users' own ~/.ssh/authorized_keys count too, as on a real server (`kamo copy --direct`
    // installs a one-time key in root's).
    let _ = writeln!(
        s,
        "AuthorizedKeysFile {AUTHORIZED_KEYS} .ssh/authorized_keys"
    );
    s.push_str(
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
         MaxStartups 500:30:1000\nMaxSessions 200\nLogLevel ERROR\n\
         Subsystem sftp internal-sftp\n",
    );
    s
}

/// The overlay mount options of layer `l` (`etc`, `var/lib`, ...) of the node in `d`.
#[must_use]
pub fn overlay_options(d: &Path, l: &str) -> String {
    let key = layer_key(l);
    format!(
        "lowerdir=/{l},upperdir={},workdir={}",
        d.join("upper").join(&key).display(),
        d.join("work").join(&key).display()
    )
}

/// Becomes the node: private mount and UTS namespaces, the node's host name, its overlays,
/// the lab directory bound back so every node shares it, then `exec sshd`. Called in a fresh
/// process (`kamo lab node`); returns only when something failed.
#[must_use]
pub fn exec_node(lab: &Path, spec: &NodeSpec, config: &str, userns: bool) -> Error {
    match become_node(lab, spec, config, userns) {
        Ok(e) | Err(e) => e,
    }
}

fn become_node(lab: &Path, spec: &NodeSpec, config: &str, userns: bool) -> Result<Error, Error> {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    use nix::sched::{CloneFlags, unshare};
    use std::os::unix::process::CommandExt;
    let sys = |what: &str| {
        let what = what.to_owned();
        move |e: nix::Error| Error::Other(format!("node {}: {what}: {e}", spec.name))
    };
    let none: Option<&str> = None;
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS).map_err(sys("unshare"))?;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(sys("make mounts private"))?;
    // The host name a playbook set survives a reboot, as /etc/hostname does on Ubuntu.
    let d = dir(lab, &spec.name);
    let name = std::fs::read_to_string(d.join("upper/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| spec.name.clone());
    nix::unistd::sethostname(&name).map_err(sys("sethostname"))?;
    mount(
        Some("kamo-lab"),
        "/mnt",
        Some("tmpfs"),
        MsFlags::empty(),
        none,
    )
    .map_err(sys("mount a tmpfs on /mnt"))?;
    std::fs::create_dir("/mnt/lab")
        .map_err(|e| Error::io("cannot create", Path::new("/mnt/lab"), e))?;
    mount(Some(lab), "/mnt/lab", none, MsFlags::MS_BIND, none).map_err(sys("bind the lab"))?;
    // Layers are named through the bind at /mnt/lab: once /root is overlaid, a lab below it
    // (/root/lab) would resolve inside that overlay, which cannot hold upper layers.
    let staged = dir(Path::new("/mnt/lab"), &spec.name);
    for l in OVERLAID {
        let target = format!("/{l}");
        if userns && !readable(&target) {
            // An overlay would fail on every lookup in a lower directory this user cannot
            // read (/root): the node gets the directory as its own instead.
            let own = staged.join("upper").join(layer_key(l));
            mount(Some(&own), target.as_str(), none, MsFlags::MS_BIND, none)
                .map_err(sys(&format!("bind its own {target}")))?;
            continue;
        }
        let mut options = overlay_options(&staged, l);
        if userns {
            // Overlay metadata in user.* attributes: trusted.* is the machine root's only.
            options.push_str(",userxattr");
        }
        mount(
            Some(super::disk::NODE_SOURCE),
            target.as_str(),
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(sys(&format!("overlay on {target}")))?;
    }
    if userns {
        bind_userns_sudo(&super::node::userns_dir(Path::new("/mnt/lab")), true)
            .map_err(|e| Error::Other(format!("node {}: {e}", spec.name)))?;
    }
    // The lab directory may lie under an overlaid one (/root/lab): writes must reach the real one.
    mount(Some("/mnt/lab"), lab, none, MsFlags::MS_BIND, none).map_err(sys("bind the lab back"))?;
    umount2("/mnt/lab", MntFlags::MNT_DETACH).map_err(sys("umount /mnt/lab"))?;
    umount2("/mnt", MntFlags::MNT_DETACH).map_err(sys("umount /mnt"))?;
    if userns {
        // A /run of the node's own: sshd wants its privilege separation directory owned by
        // root, which the machine's /run/sshd is not, seen from the namespace.
        mount(
            Some("kamo-lab-run"),
            "/run",
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755"),
        )
        .map_err(sys("mount a tmpfs on /run"))?;
        for d in ["/run/sshd", "/run/lock"] {
            std::fs::create_dir(d).map_err(|e| Error::io("cannot create", Path::new(d), e))?;
        }
    }
    // A full disk stays full across a reboot (see `disk`).
    if super::disk::is_set(lab, &spec.name) {
        super::disk::fill(lab, &spec.name, userns)?;
    }
    let err = std::process::Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(d.join(config))
        .exec();
    Ok(Error::Other(format!(
        "node {}: cannot run /usr/sbin/sshd (install openssh-server): {err}",
        spec.name
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ubuntu_release_files() {
        let r = os_release("20.04");
        assert!(r.contains("VERSION_ID=\"20.04\""), "{r}");
        assert!(r.contains("ID=ubuntu\n") && r.contains("focal"), "{r}");
        assert!(os_release("22.04").contains("PRETTY_NAME=\"Ubuntu 22.04.4 LTS\""));
    }

    #[test]
    fn a_free_id_is_not_taken() {
        let passwd = "root:x:0:0::/root:/bin/sh\nkamotest:x:1000:1000::/home/k:/bin/sh\n";
        let group = "root:x:0:\nkamotest:x:1000:\nstaff:x:1001:\n";
        assert_eq!(free_id(passwd, group), 1002);
    }

    #[test]
    fn overlay_layers_live_in_the_node_directory() {
        let d = dir(Path::new("/root/my lab"), "node01");
        assert_eq!(
            overlay_options(&d, "var/lib"),
            "lowerdir=/var/lib,upperdir=/root/my lab/nodes/node01/upper/var_lib,\
             workdir=/root/my lab/nodes/node01/work/var_lib"
        );
    }
}
