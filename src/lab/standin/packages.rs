//! `apt-get`, `apt`, `apt-cache`, `apt-mark`, `dpkg` and `dpkg-query` on a lab node.
//!
//! Why these are emulated rather than run for real: a lab node shares the machine's `/usr`
//! and has no network, so real apt could neither download nor install anything. The stand-ins
//! keep the node's package database (what `/var/lib/dpkg/status` and the apt lists hold) as
//! JSON in the node's state directory and answer with the real tools' syntax, output and exit
//! codes, so playbooks and kamo's own `apt` module see what they would see on Ubuntu.
//!
//! Model: a fresh node has the packages of an Ubuntu server ([`catalog::base_packages`]);
//! what it can install is what the [`catalog`] holds for the repositories its apt lists hold
//! (the Ubuntu archive always; third-party repositories only after a source line *and* an
//! `apt-get update`). Installing puts the package's tools in `/usr/bin` (symlinks to the kamo
//! binary for the tools kamo stands in for), writes its configuration files if absent and
//! enables and starts its services (Debian policy); removing takes the tools away and stops
//! the services, leaving `rc` (config-files) state when the package owns configuration
//! files; purging deletes those too. Writers hold an exclusive lock on the node's
//! `lock-frontend` (waiting up to `DPkg::Lock::Timeout` seconds, as apt does) and replace the
//! database by rename, so concurrent apt runs on a node serialise and readers never see half
//! a database.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::catalog::{self, Pkg, Repo, Source, SourceKind};
use super::{Io, Node, TOOLS, systemctl};

/// The package database file, under the node's state directory.
const DB_FILE: &str = "dpkg.json";
/// apt's lock, as real apt names it in its messages.
const LOCK_FRONTEND: &str = "/var/lib/dpkg/lock-frontend";
const LISTS_LOCK: &str = "/var/lib/apt/lists/lock";
/// Touched after a successful `apt-get update` (the `update-notifier-common` hook).
pub const UPDATE_STAMP: &str = "/var/lib/apt/periodic/update-success-stamp";
const RDEPS_HEADER: &str =
    "Reading package lists...\nBuilding dependency tree...\nReading state information...\n";

/// What dpkg knows about an installed (or removed, config left) package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub version: String,
    /// `installed` or `config-files`.
    pub status: String,
    /// Installed as a dependency (apt's "automatic" mark).
    #[serde(default)]
    pub auto: bool,
    #[serde(default)]
    pub hold: bool,
}

impl Entry {
    fn installed(&self) -> bool {
        self.status == "installed"
    }
}

/// The node's package database.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Db {
    pub packages: BTreeMap<String, Entry>,
    /// Third-party sources as of the last `apt-get update` (the Ubuntu archive is implicit).
    pub lists: Vec<Source>,
}

impl Db {
    fn path(node: &Node) -> PathBuf {
        node.state_dir().join(DB_FILE)
    }

    /// The node's database; a fresh Ubuntu server's when there is none yet.
    pub fn load(node: &Node) -> Result<Db, String> {
        match std::fs::read_to_string(Self::path(node)) {
            Ok(t) => {
                serde_json::from_str(&t).map_err(|e| format!("{}: {e}", Self::path(node).display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::fresh(node)),
            Err(e) => Err(format!("{}: {e}", Self::path(node).display())),
        }
    }

    fn fresh(node: &Node) -> Db {
        let cat = catalog::catalog(node);
        let mut packages = BTreeMap::new();
        for name in catalog::base_packages() {
            if let Some(p) = cat.iter().find(|p| p.name == name) {
                packages.insert(
                    name.to_owned(),
                    Entry {
                        version: p.version.clone(),
                        status: "installed".to_owned(),
                        auto: false,
                        hold: false,
                    },
                );
            }
        }
        Db {
            packages,
            lists: Vec::new(),
        }
    }

    /// Writes the database atomically (temporary file, then rename).
    pub fn save(&self, node: &Node) -> Result<(), String> {
        let path = Self::path(node);
        write_atomic(
            &path,
            &serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?,
        )
    }

    fn installed(&self, name: &str) -> Option<&Entry> {
        self.packages.get(name).filter(|e| e.installed())
    }
}

/// Replaces `path` with `data` by writing a temporary file next to it and renaming it.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("db"),
        std::process::id()
    ));
    std::fs::write(&tmp, data).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// An exclusive lock on a file in the state directory, released when dropped.
pub struct Lock(#[allow(dead_code)] File);

/// Takes the lock file `name` in the node's state directory, waiting up to `timeout`.
/// `Ok(None)` when someone else still holds it after that.
pub fn try_lock(node: &Node, name: &str, timeout: Duration) -> Result<Option<Lock>, String> {
    let dir = node.state_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(name);
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let start = Instant::now();
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(Some(Lock(f))),
            Err(std::fs::TryLockError::WouldBlock) => {
                if start.elapsed() >= timeout {
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(format!("{}: {e}", path.display())),
        }
    }
}

/// Takes apt's lock (`lists` for `update`), printing apt's messages; `Err(100)` when it
/// cannot be had within `timeout` seconds.
fn apt_lock(node: &Node, lists: bool, timeout: u64, io: &mut Io) -> Result<Lock, i32> {
    let shown = if lists { LISTS_LOCK } else { LOCK_FRONTEND };
    let quick = try_lock(node, "lock-frontend", Duration::ZERO).map_err(|e| {
        io.err(&format!("E: {e}\n"));
        100
    })?;
    if let Some(l) = quick {
        return Ok(l);
    }
    if timeout > 0 {
        io.err(&format!(
            "Waiting for cache lock: Could not get lock {shown}. It is held by another apt process...\n"
        ));
        if let Ok(Some(l)) = try_lock(node, "lock-frontend", Duration::from_secs(timeout)) {
            return Ok(l);
        }
    }
    if lists {
        io.err(&format!(
            "E: Could not get lock {shown}. It is held by another apt process\nE: Unable to lock directory /var/lib/apt/lists/\n"
        ));
    } else {
        io.err(&format!(
            "E: Could not get lock {shown}. It is held by another apt process\nN: Be aware that removing the lock file is not a solution and may break your system.\nE: Unable to acquire the dpkg frontend lock ({shown}), is another process using it?\n"
        ));
    }
    Err(100)
}

/// The units the packages installed on the node ship.
#[must_use]
pub fn installed_units(node: &Node) -> Vec<catalog::UnitDef> {
    let Ok(db) = Db::load(node) else {
        return Vec::new();
    };
    let cat = catalog::catalog(node);
    let mut out = Vec::new();
    for (name, e) in &db.packages {
        if !e.installed() {
            continue;
        }
        if let Some(p) = find(&cat, name, &e.version) {
            out.extend(p.units.iter().cloned());
        }
    }
    out
}

fn find<'a>(cat: &'a [Pkg], name: &str, version: &str) -> Option<&'a Pkg> {
    cat.iter()
        .find(|p| p.name == name && p.version == version)
        .or_else(|| cat.iter().find(|p| p.name == name))
}

/// The package catalog seen through the node's apt lists.
struct Cache<'a> {
    node: &'a Node,
    cat: Vec<Pkg>,
    db: Db,
}

impl<'a> Cache<'a> {
    fn open(node: &'a Node, io: &mut Io) -> Result<Self, i32> {
        let db = Db::load(node).map_err(|e| {
            io.err(&format!("E: {e}\n"));
            100
        })?;
        Ok(Cache {
            node,
            cat: catalog::catalog(node),
            db,
        })
    }

    fn source_of(&self, repo: Repo) -> Option<Source> {
        if repo == Repo::Ubuntu {
            return catalog::ubuntu_sources(self.node).into_iter().next();
        }
        self.db
            .lists
            .iter()
            .find(|s| s.kind() == SourceKind::Repo(repo))
            .cloned()
    }

    /// Available versions of `name`, newest first.
    fn versions(&self, name: &str) -> Vec<&Pkg> {
        let mut v: Vec<&Pkg> = self
            .cat
            .iter()
            .filter(|p| p.name == name && self.source_of(p.repo).is_some())
            .collect();
        v.sort_by(|a, b| catalog::version_cmp(&b.version, &a.version));
        v.dedup_by(|a, b| a.version == b.version);
        v
    }

    fn candidate(&self, name: &str) -> Option<&Pkg> {
        let e = self.db.installed(name);
        if let Some(e) = e.filter(|e| e.hold) {
            return find(&self.cat, name, &e.version);
        }
        self.versions(name).into_iter().next()
    }

    /// The catalog entry of an installed package.
    fn installed_pkg(&self, name: &str) -> Option<&Pkg> {
        let e = self.db.installed(name)?;
        find(&self.cat, name, &e.version)
    }

    /// Is `name` (or something providing it) installed or about to be.
    fn satisfied(&self, name: &str, planned: &[Pkg]) -> bool {
        self.db.installed(name).is_some()
            || planned
                .iter()
                .any(|p| p.name == name || p.provides.iter().any(|x| x == name))
            || self.db.packages.iter().any(|(n, e)| {
                e.installed()
                    && self
                        .installed_pkg(n)
                        .is_some_and(|p| p.provides.iter().any(|x| x == name))
            })
    }

    fn label(&self, p: &Pkg) -> String {
        let (ver, code) = catalog::release(self.node);
        match p.repo {
            Repo::Ubuntu => format!("Ubuntu:{ver}/{code}-updates"),
            Repo::Kubernetes(m) => format!("isv:kubernetes:core:stable:v1.{m}:pkgs.k8s.io"),
            Repo::Docker => format!("Docker CE:{code}"),
            Repo::Helm => "Helm:all".to_owned(),
            Repo::NvidiaContainer => "nvidia.github.io".to_owned(),
        }
    }

    /// `URI suite/component` as in policy and `Get:` lines.
    fn origin(&self, p: &Pkg) -> String {
        let Some(s) = self.source_of(p.repo) else {
            return String::new();
        };
        if s.suite.ends_with('/') {
            s.label()
        } else {
            let comp = if p.repo == Repo::Ubuntu && p.section.starts_with("restricted") {
                "restricted"
            } else {
                s.components.first().map_or("main", String::as_str)
            };
            let suite = if p.repo == Repo::Ubuntu {
                format!("{}-updates", s.suite)
            } else {
                s.suite.clone()
            };
            format!("{} {suite}/{comp} amd64", s.uri.trim_end_matches('/'))
        }
    }

    /// Installed packages needed by nothing installed by hand (what autoremove removes).
    fn unneeded(&self, removing: &BTreeSet<String>) -> Vec<String> {
        let mut keep: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<String> = self
            .db
            .packages
            .iter()
            .filter(|(n, e)| e.installed() && !e.auto && !removing.contains(*n))
            .map(|(n, _)| n.clone())
            .collect();
        while let Some(n) = todo.pop() {
            if !keep.insert(n.clone()) {
                continue;
            }
            if let Some(p) = self.installed_pkg(&n) {
                for d in p.depends.iter().chain(&p.depends_same) {
                    let target = if self.db.installed(d).is_some() {
                        Some(d.clone())
                    } else {
                        self.db
                            .packages
                            .keys()
                            .find(|k| {
                                self.installed_pkg(k)
                                    .is_some_and(|q| q.provides.iter().any(|x| x == d))
                            })
                            .cloned()
                    };
                    if let Some(t) = target
                        && !removing.contains(&t)
                    {
                        todo.push(t);
                    }
                }
            }
        }
        self.db
            .packages
            .iter()
            .filter(|(n, e)| {
                e.installed() && e.auto && !keep.contains(*n) && !removing.contains(*n)
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Installed packages that depend, directly or not, on one of `names`.
    fn rdepends_closure(&self, names: &BTreeSet<String>) -> BTreeSet<String> {
        let mut out = names.clone();
        loop {
            let before = out.len();
            for n in self.db.packages.keys() {
                if out.contains(n) {
                    continue;
                }
                if let Some(p) = self.installed_pkg(n)
                    && p.depends.iter().chain(&p.depends_same).any(|d| {
                        out.contains(d)
                            && !self.db.packages.iter().any(|(o, e)| {
                                e.installed()
                                    && !out.contains(o)
                                    && self
                                        .installed_pkg(o)
                                        .is_some_and(|q| q.provides.iter().any(|x| x == d))
                            })
                    })
                {
                    out.insert(n.clone());
                }
            }
            if out.len() == before {
                return out;
            }
        }
    }
}

/// apt's `SizeToStr`: `33.5 kB`, `453 kB`, `87.3 MB`.
fn size_str(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let mut v = bytes as f64;
    let mut unit = 0;
    let units = ["B", "kB", "MB", "GB", "TB"];
    while v >= 1000.0 && unit < units.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if v < 100.0 && unit > 0 {
        format!("{v:.1} {}", units[unit])
    } else {
        format!("{v:.0} {}", units[unit])
    }
}

/// apt's package list: two-space indent, names separated by one space, wrapped before 80
/// columns.
fn show_list(io: &mut Io, title: &str, names: &[String]) {
    if names.is_empty() {
        return;
    }
    io.out(title);
    io.out("\n");
    let mut line = String::new();
    for n in names {
        if !line.is_empty() && line.len() + 1 + n.len() > 79 {
            io.out(&format!("{line}\n"));
            line.clear();
        }
        line.push_str(if line.is_empty() { "  " } else { " " });
        line.push_str(n);
    }
    io.out(&format!("{line}\n"));
}

/// Options common to apt-get and apt.
#[derive(Debug, Default)]
#[allow(clippy::struct_excessive_bools)] // command-line switches
struct AptOpts {
    yes: bool,
    simulate: bool,
    purge: bool,
    allow_downgrades: bool,
    allow_held: bool,
    lock_timeout: u64,
    quiet: u8,
    command: Option<String>,
    args: Vec<String>,
}

fn parse_apt(args: &[String], io: &mut Io) -> Result<AptOpts, i32> {
    let mut o = AptOpts::default();
    let mut it = args.iter();
    let bad = |io: &mut Io, opt: &str| {
        io.err(&format!(
            "E: Command line option '{}' [from {opt}] is not understood in combination with the other options.\n",
            opt.trim_start_matches('-')
        ));
        100
    };
    let set_opt = |o: &mut AptOpts, kv: &str| {
        if let Some((k, v)) = kv.split_once('=')
            && k.eq_ignore_ascii_case("DPkg::Lock::Timeout")
        {
            o.lock_timeout = v.parse().unwrap_or(0);
        }
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "-y" | "--yes" | "--assume-yes" | "-yq" | "-qy" => {
                o.yes = true;
                if a.contains('q') {
                    o.quiet += 1;
                }
            }
            "-q" | "--quiet" => o.quiet += 1,
            "-qq" => o.quiet += 2,
            "-s" | "--simulate" | "--dry-run" | "--just-print" | "--no-act" | "--recon" => {
                o.simulate = true;
            }
            "--purge" => o.purge = true,
            "--allow-downgrades" => o.allow_downgrades = true,
            "--allow-change-held-packages" => o.allow_held = true,
            "--no-install-recommends"
            | "--install-recommends"
            | "--no-install-suggests"
            | "-f"
            | "--fix-broken"
            | "--auto-remove"
            | "--autoremove"
            | "--no-upgrade"
            | "--only-upgrade"
            | "--reinstall"
            | "--allow-unauthenticated" => {}
            "-o" | "--option" => {
                let Some(kv) = it.next() else {
                    io.err("E: Option -o requires an argument.\n");
                    return Err(100);
                };
                set_opt(&mut o, kv);
            }
            s if s.starts_with("-o") && s.len() > 2 => set_opt(&mut o, &s[2..]),
            s if s.starts_with("--option=") => set_opt(&mut o, &s["--option=".len()..]),
            s if s.starts_with('-') && s.len() > 1 => return Err(bad(io, s)),
            s => {
                if o.command.is_none() {
                    o.command = Some(s.to_owned());
                } else {
                    o.args.push(s.to_owned());
                }
            }
        }
    }
    Ok(o)
}

/// `apt-get`.
pub fn apt_get(node: &Node, args: &[String], io: &mut Io) -> i32 {
    let o = match parse_apt(args, io) {
        Ok(o) => o,
        Err(c) => return c,
    };
    let Some(cmd) = o.command.clone() else {
        io.out("apt 2.4.11 (amd64)\nUsage: apt-get [options] command\n       apt-get [options] install|remove pkg1 [pkg2 ...]\n       apt-get [options] source pkg1 [pkg2 ...]\n");
        return 1;
    };
    match cmd.as_str() {
        "update" => update(node, &o, io),
        "install" => install(node, &o, io, false),
        "upgrade" | "dist-upgrade" | "full-upgrade" => install(node, &o, io, true),
        "remove" => remove(node, &o, o.purge, io),
        "purge" => remove(node, &o, true, io),
        "autoremove" | "autopurge" => autoremove(node, &o, o.purge || cmd == "autopurge", io),
        "clean" | "autoclean" => 0,
        "check" => {
            io.out(RDEPS_HEADER);
            0
        }
        other => {
            io.err(&format!("E: Invalid operation {other}\n"));
            100
        }
    }
}

/// `apt`: apt-get's verbs with apt's warning, plus `list`.
pub fn apt(node: &Node, args: &[String], io: &mut Io) -> i32 {
    io.err("\nWARNING: apt does not have a stable CLI interface. Use with caution in scripts.\n\n");
    if args
        .iter()
        .find(|a| !a.starts_with('-'))
        .is_some_and(|a| a == "list")
    {
        return list(node, args, io);
    }
    let o = match parse_apt(args, io) {
        Ok(o) => o,
        Err(c) => return c,
    };
    match o.command.as_deref() {
        Some("update") => {
            let code = update(node, &o, io);
            if code == 0 {
                io.out("Building dependency tree...\nReading state information...\n");
                let n = match Cache::open(node, io) {
                    Ok(c) => upgradable(&c).len(),
                    Err(code) => return code,
                };
                if n == 0 {
                    io.out("All packages are up to date.\n");
                } else {
                    io.out(&format!(
                        "{n} package{} can be upgraded. Run 'apt list --upgradable' to see {}.\n",
                        if n == 1 { "" } else { "s" },
                        if n == 1 { "it" } else { "them" }
                    ));
                }
            }
            code
        }
        Some("policy") => apt_cache(node, &args_after(args, "policy", "policy"), io),
        Some("show") => apt_cache(node, &args_after(args, "show", "show"), io),
        _ => apt_get(node, args, io),
    }
}

fn args_after(args: &[String], verb: &str, new_verb: &str) -> Vec<String> {
    let mut out = vec![new_verb.to_owned()];
    let mut seen = false;
    for a in args {
        if !seen && a == verb {
            seen = true;
        } else if seen && !a.starts_with('-') {
            out.push(a.clone());
        }
    }
    out
}

fn list(node: &Node, args: &[String], io: &mut Io) -> i32 {
    let c = match Cache::open(node, io) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let upgradable_only = args.iter().any(|a| a == "--upgradable");
    let (_, code) = catalog::release(node);
    io.out("Listing...\n");
    let ups = upgradable(&c);
    for (n, e) in &c.db.packages {
        if upgradable_only && !ups.contains(n) {
            continue;
        }
        let what = if e.installed() {
            if e.auto {
                "[installed,automatic]"
            } else {
                "[installed]"
            }
        } else {
            "[residual-config]"
        };
        io.out(&format!("{n}/{code},now {} amd64 {what}\n", e.version));
    }
    0
}

fn upgradable(c: &Cache) -> Vec<String> {
    c.db.packages
        .iter()
        .filter(|(n, e)| {
            e.installed()
                && !e.hold
                && c.candidate(n).is_some_and(|p| {
                    catalog::version_cmp(&p.version, &e.version) == std::cmp::Ordering::Greater
                })
        })
        .map(|(n, _)| n.clone())
        .collect()
}

fn update(node: &Node, o: &AptOpts, io: &mut Io) -> i32 {
    let sources = match catalog::read_sources(node) {
        Ok(s) => s,
        Err(m) => {
            io.err(&m.message());
            return 100;
        }
    };
    let _lock = match apt_lock(node, true, o.lock_timeout, io) {
        Ok(l) => l,
        Err(c) => return c,
    };
    let mut db = match Db::load(node) {
        Ok(d) => d,
        Err(e) => {
            io.err(&format!("E: {e}\n"));
            return 100;
        }
    };
    let mut n = 0;
    let mut fetched = 0u64;
    for s in catalog::ubuntu_sources(node) {
        n += 1;
        io.out(&format!("Hit:{n} {} InRelease\n", s.label()));
    }
    let mut lists = Vec::new();
    let mut errors = String::new();
    let mut warnings = String::new();
    for s in &sources {
        n += 1;
        let label = s.label();
        match s.kind() {
            SourceKind::Unreachable => {
                let host = s.host().to_owned();
                io.out(&format!(
                    "Ign:{n} {label} InRelease\nErr:{n} {label} InRelease\n  Temporary failure resolving '{host}'\n"
                ));
                warnings.push_str(&format!(
                    "W: Failed to fetch {}  Temporary failure resolving '{host}'\n",
                    release_url(s)
                ));
            }
            SourceKind::NoRelease => {
                io.out(&format!(
                    "Ign:{n} {label} InRelease\nErr:{} {label} Release\n  404  Not Found [IP: 34.107.204.206 443]\n",
                    n + 1
                ));
                n += 1;
                errors.push_str(&format!(
                    "E: The repository '{label} Release' does not have a Release file.\nN: Updating from such a repository can't be done securely, and is therefore disabled by default.\nN: See apt-secure(8) manpage for repository creation and user configuration details.\n"
                ));
            }
            SourceKind::Repo(_) => {
                let key_missing = s
                    .signed_by
                    .as_deref()
                    .is_some_and(|k| k.starts_with('/') && !node.path(k).exists());
                if key_missing {
                    io.out(&format!(
                        "Get:{n} {label} InRelease [1,189 B]\nErr:{n} {label} InRelease\n  The following signatures couldn't be verified because the public key is not available: NO_PUBKEY 234654DA9A296436\n"
                    ));
                    fetched += 1189;
                    warnings.push_str(&format!(
                        "W: GPG error: {label} InRelease: The following signatures couldn't be verified because the public key is not available: NO_PUBKEY 234654DA9A296436\n"
                    ));
                    errors.push_str(&format!(
                        "E: The repository '{label} InRelease' is not signed.\nN: Updating from such a repository can't be done securely, and is therefore disabled by default.\nN: See apt-secure(8) manpage for repository creation and user configuration details.\n"
                    ));
                    continue;
                }
                if db.lists.contains(s) {
                    io.out(&format!("Hit:{n} {label} InRelease\n"));
                } else {
                    io.out(&format!("Get:{n} {label} InRelease [1,189 B]\n"));
                    n += 1;
                    let comp = if s.suite.ends_with('/') {
                        String::new()
                    } else {
                        format!(
                            "/{} amd64",
                            s.components.first().map_or("main", String::as_str)
                        )
                    };
                    io.out(&format!(
                        "Get:{n} {}{comp} Packages [4,471 B]\n",
                        label.trim_end()
                    ));
                    fetched += 1189 + 4471;
                }
                lists.push(s.clone());
            }
        }
    }
    if fetched > 0 {
        io.out(&format!(
            "Fetched {} in 1s ({}/s)\n",
            size_str(fetched),
            size_str(fetched)
        ));
    }
    io.out("Reading package lists...\n");
    db.lists = lists;
    if let Err(e) = db.save(node) {
        io.err(&format!("E: {e}\n"));
        return 100;
    }
    io.err(&warnings);
    if !errors.is_empty() {
        io.err(&errors);
        return 100;
    }
    if !warnings.is_empty() {
        io.err("W: Some index files failed to download. They have been ignored, or old ones used instead.\n");
    }
    let stamp = node.path(UPDATE_STAMP);
    if let Some(d) = stamp.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    if let Err(e) = File::create(&stamp) {
        io.err(&format!("E: {}: {e}\n", stamp.display()));
        return 100;
    }
    0
}

fn release_url(s: &Source) -> String {
    if s.suite.ends_with('/') {
        format!("{}/InRelease", s.uri.trim_end_matches('/'))
    } else {
        format!(
            "{}/dists/{}/InRelease",
            s.uri.trim_end_matches('/'),
            s.suite
        )
    }
}

/// What one apt-get run will do.
#[derive(Default)]
struct Plan {
    /// New or changed packages, dependencies first, with the version they replace.
    install: Vec<(Pkg, Option<String>)>,
    /// Packages to remove (conflicts).
    remove: Vec<String>,
    requested: BTreeSet<String>,
}

/// Resolves `specs` (`name`, `name=version`, `name=prefix*`) into a plan, printing apt's
/// per-package messages; `Err(100)` after printing apt's errors.
fn plan_install(c: &Cache, specs: &[String], io: &mut Io) -> Result<Plan, i32> {
    let mut plan = Plan::default();
    let mut errors = String::new();
    let mut manual = Vec::new();
    for spec in specs {
        let (name, pattern) = match spec.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (spec.as_str(), None),
        };
        let versions = c.versions(name);
        let known = !versions.is_empty() || c.db.installed(name).is_some();
        if !known {
            errors.push_str(&format!("E: Unable to locate package {name}\n"));
            continue;
        }
        let chosen = match pattern {
            Some(pat) => {
                let found = versions.iter().find(|p| match pat.strip_suffix('*') {
                    Some(prefix) => p.version.starts_with(prefix),
                    None => p.version == pat,
                });
                let Some(p) = found else {
                    errors.push_str(&format!("E: Version '{pat}' for '{name}' was not found\n"));
                    continue;
                };
                if pat.ends_with('*') {
                    io.out(&format!(
                        "Selected version '{}' ({} [amd64]) for '{name}'\n",
                        p.version,
                        c.label(p)
                    ));
                }
                Some((*p).clone())
            }
            None => c.candidate(name).cloned(),
        };
        let installed = c.db.installed(name);
        match (chosen, installed) {
            (None | Some(_), Some(e))
                if pattern.is_none()
                    && c.candidate(name).is_none_or(|p| p.version == e.version) =>
            {
                io.out(&format!(
                    "{name} is already the newest version ({}).\n",
                    e.version
                ));
                if e.auto {
                    manual.push(name.to_owned());
                }
            }
            (Some(p), Some(e)) if p.version == e.version => {
                io.out(&format!(
                    "{name} is already the newest version ({}).\n",
                    e.version
                ));
                if e.auto {
                    manual.push(name.to_owned());
                }
            }
            (Some(p), _) => {
                plan.requested.insert(name.to_owned());
                if !plan.install.iter().any(|(q, _)| q.name == p.name) {
                    let old = installed.map(|e| e.version.clone());
                    plan.install.push((p, old));
                }
            }
            (None, _) => {
                errors.push_str(&format!(
                    "Package {name} is not available, but is referred to by another package.\nThis may mean that the package is missing, has been obsoleted, or\nis only available from another source\n\nE: Package '{name}' has no installation candidate\n"
                ));
            }
        }
    }
    if !errors.is_empty() {
        io.err(&errors);
        return Err(100);
    }
    for n in &manual {
        io.out(&format!("{n} set to manually installed.\n"));
    }
    // Dependencies, breadth first; dependencies go before their dependents.
    let mut i = 0;
    let mut unmet = String::new();
    while i < plan.install.len() {
        let p = plan.install[i].0.clone();
        for d in &p.depends_same {
            let same = c.versions(d).into_iter().find(|q| q.version == p.version);
            let inst = c.db.installed(d);
            if inst.is_some_and(|e| e.version == p.version)
                || plan.install.iter().any(|(q, _)| &q.name == d)
            {
                continue;
            }
            match same {
                Some(q) => plan
                    .install
                    .push((q.clone(), inst.map(|e| e.version.clone()))),
                None => unmet.push_str(&format!(
                    " {} : Depends: {d} (= {}) but it is not installable\n",
                    p.name, p.version
                )),
            }
        }
        for d in &p.depends {
            let planned: Vec<Pkg> = plan.install.iter().map(|(q, _)| q.clone()).collect();
            if c.satisfied(d, &planned) {
                continue;
            }
            match c.candidate(d) {
                Some(q) => plan.install.push((q.clone(), None)),
                None => unmet.push_str(&format!(
                    " {} : Depends: {d} but it is not installable\n",
                    p.name
                )),
            }
        }
        i += 1;
    }
    if !unmet.is_empty() {
        io.out("Some packages could not be installed. This may mean that you have\nrequested an impossible situation or if you are using the unstable\ndistribution that some required packages have not yet been created\nor been moved out of Incoming.\nThe following information may help to resolve the situation:\n\nThe following packages have unmet dependencies:\n");
        io.out(&unmet);
        io.err("E: Unable to correct problems, you have held broken packages.\n");
        return Err(100);
    }
    // Conflicts, both ways.
    for (p, _) in &plan.install {
        for (n, e) in &c.db.packages {
            if !e.installed() || plan.install.iter().any(|(q, _)| &q.name == n) {
                continue;
            }
            let theirs = c.installed_pkg(n);
            let conflict =
                p.conflicts.contains(n) || theirs.is_some_and(|q| q.conflicts.contains(&p.name));
            if conflict && !plan.remove.contains(n) {
                plan.remove.push(n.clone());
            }
        }
    }
    plan.install.reverse();
    Ok(plan)
}

fn deb_name(p: &Pkg) -> String {
    format!("{}_{}_amd64.deb", p.name, p.version.replace(':', "%3a"))
}

fn summary_line(io: &mut Io, up: usize, new: usize, down: usize, rm: usize, not_up: usize) {
    if down > 0 {
        io.out(&format!(
            "{up} upgraded, {new} newly installed, {down} downgraded, {rm} to remove and {not_up} not upgraded.\n"
        ));
    } else {
        io.out(&format!(
            "{up} upgraded, {new} newly installed, {rm} to remove and {not_up} not upgraded.\n"
        ));
    }
}

/// The files in the dpkg database, as dpkg counts them before unpacking.
fn files_count(c: &Cache) -> usize {
    64_000 + c.db.packages.len() * 37
}

#[allow(clippy::too_many_lines)]
fn install(node: &Node, o: &AptOpts, io: &mut Io, upgrade: bool) -> i32 {
    let _lock = if o.simulate {
        None
    } else {
        match apt_lock(node, false, o.lock_timeout, io) {
            Ok(l) => Some(l),
            Err(c) => return c,
        }
    };
    let mut c = match Cache::open(node, io) {
        Ok(c) => c,
        Err(code) => return code,
    };
    io.out(RDEPS_HEADER);
    let specs = if upgrade {
        upgradable(&c)
    } else {
        o.args.clone()
    };
    if !upgrade && specs.is_empty() {
        summary_line(io, 0, 0, 0, 0, upgradable(&c).len());
        return 0;
    }
    if upgrade {
        io.out("Calculating upgrade...\n");
    }
    let plan = match plan_install(&c, &specs, io) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let auto_extra: Vec<String> = plan
        .install
        .iter()
        .filter(|(p, old)| old.is_none() && !plan.requested.contains(&p.name))
        .map(|(p, _)| p.name.clone())
        .collect();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let new: Vec<String> = sorted(
        plan.install
            .iter()
            .filter(|(_, old)| old.is_none())
            .map(|(p, _)| p.name.clone())
            .collect(),
    );
    let ups: Vec<String> = sorted(
        plan.install
            .iter()
            .filter(|(p, old)| {
                old.as_ref().is_some_and(|v| {
                    catalog::version_cmp(&p.version, v) == std::cmp::Ordering::Greater
                })
            })
            .map(|(p, _)| p.name.clone())
            .collect(),
    );
    let downs: Vec<String> = sorted(
        plan.install
            .iter()
            .filter(|(p, old)| {
                old.as_ref()
                    .is_some_and(|v| catalog::version_cmp(&p.version, v).is_lt())
            })
            .map(|(p, _)| p.name.clone())
            .collect(),
    );
    let held: Vec<String> = plan
        .install
        .iter()
        .filter(|(p, old)| old.is_some() && c.db.installed(&p.name).is_some_and(|e| e.hold))
        .map(|(p, _)| p.name.clone())
        .collect();
    let removed_set: BTreeSet<String> = plan.remove.iter().cloned().collect();
    let unneeded = c.unneeded(&removed_set);
    if !unneeded.is_empty() {
        show_list(
            io,
            "The following packages were automatically installed and are no longer required:",
            &unneeded,
        );
        io.out(&format!(
            "Use 'sudo apt autoremove' to remove {}.\n",
            if unneeded.len() == 1 { "it" } else { "them" }
        ));
    }
    show_list(
        io,
        "The following additional packages will be installed:",
        &sorted(auto_extra.clone()),
    );
    show_list(
        io,
        "The following packages will be REMOVED:",
        &sorted(plan.remove.clone()),
    );
    show_list(io, "The following NEW packages will be installed:", &new);
    show_list(io, "The following held packages will be changed:", &held);
    show_list(io, "The following packages will be upgraded:", &ups);
    show_list(io, "The following packages will be DOWNGRADED:", &downs);
    let not_up = upgradable(&c).iter().filter(|n| !ups.contains(n)).count();
    summary_line(
        io,
        ups.len(),
        new.len(),
        downs.len(),
        plan.remove.len(),
        not_up,
    );
    if plan.install.is_empty() && plan.remove.is_empty() {
        return 0;
    }
    if !held.is_empty() && !o.allow_held {
        io.err(
            "E: Held packages were changed and -y was used without --allow-change-held-packages.\n",
        );
        return 100;
    }
    if !downs.is_empty() && !o.allow_downgrades {
        io.err("E: Packages were downgraded and -y was used without --allow-downgrades.\n");
        return 100;
    }
    let download: u64 = plan.install.iter().map(|(p, _)| p.size_kb * 1000 / 3).sum();
    let added: i64 = plan
        .install
        .iter()
        .map(|(p, old)| {
            let was = old
                .as_ref()
                .and_then(|_| c.installed_pkg(&p.name))
                .map_or(0, |q| q.size_kb);
            i64::try_from(p.size_kb).unwrap_or(0) - i64::try_from(was).unwrap_or(0)
        })
        .sum::<i64>()
        - plan
            .remove
            .iter()
            .filter_map(|n| c.installed_pkg(n))
            .map(|p| i64::try_from(p.size_kb).unwrap_or(0))
            .sum::<i64>();
    if o.simulate {
        for n in &plan.remove {
            let v = c.db.packages[n].version.clone();
            io.out(&format!("Remv {n} [{v}]\n"));
        }
        for (p, old) in &plan.install {
            let was = old.as_ref().map(|v| format!("[{v}] ")).unwrap_or_default();
            io.out(&format!(
                "Inst {} {was}({} {} [amd64])\n",
                p.name,
                p.version,
                c.label(p)
            ));
        }
        for (p, _) in &plan.install {
            io.out(&format!(
                "Conf {} ({} {} [amd64])\n",
                p.name,
                p.version,
                c.label(p)
            ));
        }
        return 0;
    }
    let extra = !auto_extra.is_empty() || !plan.remove.is_empty() || !downs.is_empty();
    if download > 0 {
        io.out(&format!(
            "Need to get {} of archives.\n",
            size_str(download)
        ));
    }
    match added.cmp(&0) {
        std::cmp::Ordering::Greater => io.out(&format!(
            "After this operation, {} of additional disk space will be used.\n",
            size_str(added.unsigned_abs() * 1000)
        )),
        std::cmp::Ordering::Less => io.out(&format!(
            "After this operation, {} disk space will be freed.\n",
            size_str(added.unsigned_abs() * 1000)
        )),
        std::cmp::Ordering::Equal => {}
    }
    if extra && !o.yes {
        io.out("Do you want to continue? [Y/n] Abort.\n");
        return 1;
    }
    for (i, (p, _)) in plan.install.iter().enumerate() {
        let origin = c.origin(p);
        // A flat repository's lines carry no architecture.
        let arch = if origin.ends_with(' ') { "" } else { " amd64" };
        io.out(&format!(
            "Get:{} {origin} {}{arch} {} [{}]\n",
            i + 1,
            p.name,
            p.version,
            size_str(p.size_kb * 1000 / 3)
        ));
    }
    io.out(&format!(
        "Fetched {} in 2s ({}/s)\n",
        size_str(download),
        size_str(download / 2)
    ));
    let mut db_files = files_count(&c);
    let mut first = true;
    let mut reading = |io: &mut Io, c: &Cache| {
        if first {
            io.out(&format!(
                "(Reading database ... {db_files} files and directories currently installed.)
"
            ));
            first = false;
        }
        db_files = files_count(c);
    };
    for n in &plan.remove {
        reading(io, &c);
        let e = c.db.packages[n].clone();
        io.out(&format!("Removing {n} ({}) ...\n", e.version));
        if let Some(p) = c.installed_pkg(n).cloned() {
            undo_files(node, &p, false, io);
        }
        c.db.packages.remove(n);
    }
    let many = plan.install.len() > 1;
    for (i, (p, old)) in plan.install.iter().enumerate() {
        let file = if many {
            format!("{i}-{}", deb_name(p))
        } else {
            deb_name(p)
        };
        if old.is_none() {
            io.out(&format!(
                "Selecting previously unselected package {}.\n",
                p.name
            ));
        }
        reading(io, &c);
        io.out(&format!("Preparing to unpack .../{file} ...\n"));
        match old {
            Some(v) => io.out(&format!(
                "Unpacking {} ({}) over ({v}) ...\n",
                p.name, p.version
            )),
            None => io.out(&format!("Unpacking {} ({}) ...\n", p.name, p.version)),
        }
    }
    let mut setup_out = String::new();
    for (p, old) in &plan.install {
        setup_out.push_str(&format!("Setting up {} ({}) ...\n", p.name, p.version));
        let was = c.db.packages.get(&p.name).cloned();
        let auto = match &was {
            Some(e) if e.installed() => e.auto,
            _ => !plan.requested.contains(&p.name),
        };
        if let Some(prev) = old.as_ref().and_then(|v| find(&c.cat, &p.name, v)).cloned() {
            // Units and tools of the old version go, the new ones come.
            for b in &prev.bins {
                if !p.bins.contains(b) {
                    remove_bin(node, b);
                }
            }
        }
        if let Err(e) = put_files(node, p) {
            io.out(&setup_out);
            io.err(&format!(
                "dpkg: error processing package {} (--configure):\n {e}\nErrors were encountered while processing:\n {}\nE: Sub-process /usr/bin/dpkg returned an error code (1)\n",
                p.name, p.name
            ));
            return 100;
        }
        setup_out.push_str(&systemctl::package_installed(node, &p.units, old.is_some()));
        c.db.packages.insert(
            p.name.clone(),
            Entry {
                version: p.version.clone(),
                status: "installed".to_owned(),
                auto,
                hold: was.is_some_and(|e| e.hold),
            },
        );
    }
    io.out(&setup_out);
    if plan.install.iter().any(|(p, _)| !p.units.is_empty()) {
        io.out("Processing triggers for man-db (2.10.2-1) ...\n");
    }
    if let Err(e) = c.db.save(node) {
        io.err(&format!("E: {e}\n"));
        return 100;
    }
    0
}

/// Puts a package's tools in `/usr/bin` and its configuration files in place (an existing
/// configuration file is kept, as dpkg keeps a conffile the admin changed).
fn put_files(node: &Node, p: &Pkg) -> Result<(), String> {
    for b in &p.bins {
        if !TOOLS.contains(b) {
            continue;
        }
        let link = node.path(&format!("/usr/bin/{b}"));
        if let Some(d) = link.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&node.kamo_bin, &link)
            .map_err(|e| format!("unable to install new version of '/usr/bin/{b}': {e}"))?;
    }
    for (path, content) in &p.conffiles {
        let f = node.path(path);
        if f.exists() {
            continue;
        }
        if let Some(d) = f.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        std::fs::write(&f, content).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

fn remove_bin(node: &Node, b: &str) {
    if TOOLS.contains(&b) {
        let link = node.path(&format!("/usr/bin/{b}"));
        if link.is_symlink() {
            let _ = std::fs::remove_file(link);
        }
    }
}

/// Takes a package's tools away and stops its services; `purge` also deletes its
/// configuration files and the services' enablement.
fn undo_files(node: &Node, p: &Pkg, purge: bool, io: &mut Io) {
    for b in &p.bins {
        remove_bin(node, b);
    }
    let msg = systemctl::package_removed(node, &p.units, purge);
    io.out(&msg);
    if purge {
        for (path, _) in &p.conffiles {
            let _ = std::fs::remove_file(node.path(path));
        }
    }
}

/// Removes `names` (and what depends on them) from the database, printing dpkg's lines.
fn do_remove(node: &Node, c: &mut Cache, names: &[String], purge: bool, io: &mut Io) {
    let mut first = true;
    for n in names {
        let Some(e) = c.db.packages.get(n).cloned() else {
            continue;
        };
        if first {
            io.out(&format!(
                "(Reading database ... {} files and directories currently installed.)\n",
                files_count(c)
            ));
            first = false;
        }
        let p = find(&c.cat, n, &e.version).cloned();
        if e.installed() {
            io.out(&format!("Removing {n} ({}) ...\n", e.version));
        }
        if let Some(p) = &p {
            undo_files(node, p, purge, io);
        }
        let has_conf = p.as_ref().is_some_and(|p| !p.conffiles.is_empty());
        if purge {
            if has_conf || !e.installed() {
                io.out(&format!(
                    "Purging configuration files for {n} ({}) ...\n",
                    e.version
                ));
            }
            c.db.packages.remove(n);
        } else if has_conf {
            c.db.packages.insert(
                n.clone(),
                Entry {
                    status: "config-files".to_owned(),
                    auto: false,
                    hold: false,
                    ..e
                },
            );
        } else {
            c.db.packages.remove(n);
        }
    }
}

fn remove(node: &Node, o: &AptOpts, purge: bool, io: &mut Io) -> i32 {
    let _lock = if o.simulate {
        None
    } else {
        match apt_lock(node, false, o.lock_timeout, io) {
            Ok(l) => Some(l),
            Err(c) => return c,
        }
    };
    let mut c = match Cache::open(node, io) {
        Ok(c) => c,
        Err(code) => return code,
    };
    io.out(RDEPS_HEADER);
    let mut errors = String::new();
    let mut targets = BTreeSet::new();
    let mut rc_purge = BTreeSet::new();
    for spec in &o.args {
        let name = spec.split_once('=').map_or(spec.as_str(), |x| x.0);
        match c.db.packages.get(name) {
            Some(e) if e.installed() => {
                targets.insert(name.to_owned());
            }
            Some(_) if purge => {
                rc_purge.insert(name.to_owned());
            }
            _ if c.versions(name).is_empty() && !c.db.packages.contains_key(name) => {
                errors.push_str(&format!("E: Unable to locate package {name}\n"));
            }
            _ => io.out(&format!(
                "Package '{name}' is not installed, so not removed\n"
            )),
        }
    }
    if !errors.is_empty() {
        io.err(&errors);
        return 100;
    }
    let all = c.rdepends_closure(&targets);
    let essential: Vec<String> = all
        .iter()
        .filter(|n| c.installed_pkg(n).is_some_and(|p| p.essential))
        .cloned()
        .collect();
    let unneeded = c.unneeded(&all);
    if !unneeded.is_empty() {
        show_list(
            io,
            "The following packages were automatically installed and are no longer required:",
            &unneeded,
        );
        io.out(&format!(
            "Use 'sudo apt autoremove' to remove {}.\n",
            if unneeded.len() == 1 { "it" } else { "them" }
        ));
    }
    let mut shown: Vec<String> = all
        .iter()
        .chain(&rc_purge)
        .map(|n| if purge { format!("{n}*") } else { n.clone() })
        .collect();
    shown.sort();
    show_list(io, "The following packages will be REMOVED:", &shown);
    if !essential.is_empty() {
        io.out("WARNING: The following essential packages will be removed.\nThis should NOT be done unless you know exactly what you are doing!\n");
        io.out(&format!("  {}\n", essential.join(" ")));
    }
    summary_line(
        io,
        0,
        0,
        0,
        all.len() + rc_purge.len(),
        upgradable(&c).len(),
    );
    if !essential.is_empty() {
        io.err("E: Essential packages were removed and -y was used without --allow-remove-essential.\n");
        return 100;
    }
    if all.is_empty() && rc_purge.is_empty() {
        return 0;
    }
    let extra = all.len() > targets.len();
    if o.simulate {
        for n in all.iter().chain(&rc_purge) {
            let v = &c.db.packages[n].version;
            io.out(&format!(
                "{} {n} [{v}]\n",
                if purge { "Purg" } else { "Remv" }
            ));
        }
        return 0;
    }
    let freed: u64 = all
        .iter()
        .filter_map(|n| c.installed_pkg(n))
        .map(|p| p.size_kb)
        .sum();
    if freed > 0 {
        io.out(&format!(
            "After this operation, {} disk space will be freed.\n",
            size_str(freed * 1000)
        ));
    }
    if extra && !o.yes {
        io.out("Do you want to continue? [Y/n] Abort.\n");
        return 1;
    }
    let names: Vec<String> = all.iter().chain(&rc_purge).cloned().collect();
    do_remove(node, &mut c, &names, purge, io);
    if let Err(e) = c.db.save(node) {
        io.err(&format!("E: {e}\n"));
        return 100;
    }
    0
}

fn autoremove(node: &Node, o: &AptOpts, purge: bool, io: &mut Io) -> i32 {
    let _lock = if o.simulate {
        None
    } else {
        match apt_lock(node, false, o.lock_timeout, io) {
            Ok(l) => Some(l),
            Err(c) => return c,
        }
    };
    let mut c = match Cache::open(node, io) {
        Ok(c) => c,
        Err(code) => return code,
    };
    io.out(RDEPS_HEADER);
    let gone = c.unneeded(&BTreeSet::new());
    let shown: Vec<String> = gone
        .iter()
        .map(|n| if purge { format!("{n}*") } else { n.clone() })
        .collect();
    show_list(io, "The following packages will be REMOVED:", &shown);
    summary_line(io, 0, 0, 0, gone.len(), upgradable(&c).len());
    if gone.is_empty() {
        return 0;
    }
    if o.simulate {
        for n in &gone {
            let v = &c.db.packages[n].version;
            io.out(&format!(
                "{} {n} [{v}]\n",
                if purge { "Purg" } else { "Remv" }
            ));
        }
        return 0;
    }
    let freed: u64 = gone
        .iter()
        .filter_map(|n| c.installed_pkg(n))
        .map(|p| p.size_kb)
        .sum();
    io.out(&format!(
        "After this operation, {} disk space will be freed.\n",
        size_str(freed * 1000)
    ));
    if !o.yes {
        io.out("Do you want to continue? [Y/n] Abort.\n");
        return 1;
    }
    do_remove(node, &mut c, &gone, purge, io);
    if let Err(e) = c.db.save(node) {
        io.err(&format!("E: {e}\n"));
        return 100;
    }
    0
}

/// `apt-cache`: `policy`, `madison`, `show`.
pub fn apt_cache(node: &Node, args: &[String], io: &mut Io) -> i32 {
    let words: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let Some(cmd) = words.first() else {
        io.out("apt 2.4.11 (amd64)\nUsage: apt-cache [options] command\n");
        return 1;
    };
    let c = match Cache::open(node, io) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let names = &words[1..];
    match cmd.as_str() {
        "policy" => {
            if names.is_empty() {
                io.out("Package files:\n 100 /var/lib/dpkg/status\n     release a=now\n");
                let (ver, code) = catalog::release(node);
                for s in catalog::ubuntu_sources(node).iter().chain(&c.db.lists) {
                    io.out(&format!(
                        " 500 {} amd64 Packages\n     release v={ver},o=Ubuntu,n={code}\n     origin {}\n",
                        s.label(),
                        s.host()
                    ));
                }
                io.out("Pinned packages:\n");
                return 0;
            }
            for n in names {
                let versions = c.versions(n);
                let inst = c.db.installed(n);
                if versions.is_empty() && inst.is_none() {
                    io.err(&format!("N: Unable to locate package {n}\n"));
                    continue;
                }
                io.out(&format!("{n}:\n"));
                io.out(&format!(
                    "  Installed: {}\n",
                    inst.map_or("(none)", |e| e.version.as_str())
                ));
                io.out(&format!(
                    "  Candidate: {}\n",
                    c.candidate(n).map_or("(none)", |p| p.version.as_str())
                ));
                io.out("  Version table:\n");
                let mut shown_installed = false;
                for p in &versions {
                    let here = inst.is_some_and(|e| e.version == p.version);
                    shown_installed |= here;
                    io.out(&format!(
                        " {} {} 500\n        500 {} Packages\n",
                        if here { "***" } else { "   " },
                        p.version,
                        c.origin(p)
                    ));
                    if here {
                        io.out("        100 /var/lib/dpkg/status\n");
                    }
                }
                if let Some(e) = inst
                    && !shown_installed
                {
                    io.out(&format!(
                        " *** {} 100\n        100 /var/lib/dpkg/status\n",
                        e.version
                    ));
                }
            }
            0
        }
        "madison" => {
            for n in names {
                let versions = c.versions(n);
                if versions.is_empty() {
                    io.err(&format!("N: Unable to locate package {n}\n"));
                }
                for p in versions {
                    io.out(&format!(
                        "{n:>10} | {} | {} Packages\n",
                        p.version,
                        c.origin(&p.clone())
                    ));
                }
            }
            0
        }
        "show" => {
            let mut code = 0;
            for n in names {
                let Some(p) = c.candidate(n) else {
                    io.err(&format!(
                        "N: Unable to locate package {n}\nE: No packages found\n"
                    ));
                    code = 100;
                    continue;
                };
                io.out(&control(p, None));
                io.out("\n");
            }
            code
        }
        other => {
            io.err(&format!("E: Invalid operation {other}\n"));
            100
        }
    }
}

/// A package's control stanza (`dpkg -s`, `apt-cache show`).
fn control(p: &Pkg, status: Option<&str>) -> String {
    let mut s = format!("Package: {}\n", p.name);
    if let Some(st) = status {
        s.push_str(&format!("Status: {st}\n"));
    }
    if p.essential {
        s.push_str("Essential: yes\n");
    }
    s.push_str(&format!(
        "Priority: {}\nSection: {}\nInstalled-Size: {}\nMaintainer: {}\nArchitecture: amd64\nVersion: {}\n",
        p.priority,
        p.section,
        p.size_kb,
        match p.repo {
            Repo::Ubuntu => "Ubuntu Developers <ubuntu-devel-discuss@lists.ubuntu.com>",
            Repo::Kubernetes(_) => "Kubernetes Authors <dev@kubernetes.io>",
            Repo::Docker => "Docker <support@docker.com>",
            Repo::Helm => "Matt Farina <matt@mattfarina.com>",
            Repo::NvidiaContainer => "NVIDIA CORPORATION <cudatools@nvidia.com>",
        },
        p.version
    ));
    if !p.provides.is_empty() {
        s.push_str(&format!("Provides: {}\n", p.provides.join(", ")));
    }
    let mut deps: Vec<String> = p.depends.clone();
    deps.extend(
        p.depends_same
            .iter()
            .map(|d| format!("{d} (= {})", p.version)),
    );
    if !deps.is_empty() {
        s.push_str(&format!("Depends: {}\n", deps.join(", ")));
    }
    if !p.conflicts.is_empty() {
        s.push_str(&format!("Conflicts: {}\n", p.conflicts.join(", ")));
    }
    if status.is_some() && !p.conffiles.is_empty() {
        s.push_str("Conffiles:\n");
        for (f, content) in &p.conffiles {
            s.push_str(&format!(" {f} {:x}\n", md5::compute(content.as_bytes())));
        }
    }
    s.push_str(&format!("Description: {}\n", p.description));
    s
}

/// `apt-mark`: `hold`, `unhold`, `showhold`, `auto`, `manual`, `showmanual`, `showauto`.
pub fn apt_mark(node: &Node, args: &[String], io: &mut Io) -> i32 {
    let words: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let Some(cmd) = words.first().map(|s| s.as_str()) else {
        io.err("E: No operation specified\n");
        return 100;
    };
    let names = &words[1..];
    let show = |io: &mut Io, db: &Db, f: &dyn Fn(&Entry) -> bool| {
        for (n, e) in &db.packages {
            if e.installed() && f(e) && (names.is_empty() || names.contains(&n)) {
                io.out(&format!("{n}\n"));
            }
        }
        0
    };
    match cmd {
        "showhold" | "showholds" | "showmanual" | "showauto" => {
            let db = match Db::load(node) {
                Ok(d) => d,
                Err(e) => {
                    io.err(&format!("E: {e}\n"));
                    return 100;
                }
            };
            match cmd {
                "showmanual" => show(io, &db, &|e| !e.auto),
                "showauto" => show(io, &db, &|e| e.auto),
                _ => show(io, &db, &|e| e.hold),
            }
        }
        "hold" | "unhold" | "auto" | "manual" => {
            let _lock = match apt_lock(node, false, 0, io) {
                Ok(l) => l,
                Err(c) => return c,
            };
            let mut c = match Cache::open(node, io) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let mut code = 0;
            for n in names {
                let known = c.db.packages.contains_key(n.as_str()) || !c.versions(n).is_empty();
                if !known {
                    io.err(&format!("E: Unable to locate package {n}\n"));
                    code = 100;
                    continue;
                }
                let Some(e) = c.db.packages.get_mut(n.as_str()).filter(|e| e.installed()) else {
                    io.out(&format!(
                        "{n} set to {} but it is not installed.\n",
                        match cmd {
                            "hold" => "hold",
                            "unhold" => "unhold",
                            other => other,
                        }
                    ));
                    continue;
                };
                let msg = match cmd {
                    "hold" if e.hold => format!("{n} was already set on hold.\n"),
                    "hold" => {
                        e.hold = true;
                        format!("{n} set on hold.\n")
                    }
                    "unhold" if !e.hold => format!("{n} was already not on hold.\n"),
                    "unhold" => {
                        e.hold = false;
                        format!("Canceled hold on {n}.\n")
                    }
                    "auto" if e.auto => {
                        format!("{n} was already set to automatically installed.\n")
                    }
                    "auto" => {
                        e.auto = true;
                        format!("{n} set to automatically installed.\n")
                    }
                    _ if !e.auto => format!("{n} was already set to manually installed.\n"),
                    _ => {
                        e.auto = false;
                        format!("{n} set to manually installed.\n")
                    }
                };
                io.out(&msg);
            }
            if let Err(e) = c.db.save(node) {
                io.err(&format!("E: {e}\n"));
                return 100;
            }
            code
        }
        other => {
            io.err(&format!("E: Invalid operation {other}\n"));
            100
        }
    }
}

/// dpkg's status triple for an entry.
fn status_of(e: &Entry) -> String {
    let want = if e.hold {
        "hold"
    } else if e.installed() {
        "install"
    } else {
        "deinstall"
    };
    format!("{want} ok {}", e.status)
}

fn abbrev(e: &Entry) -> &'static str {
    match (e.hold, e.installed()) {
        (true, true) => "hi",
        (false, true) => "ii",
        _ => "rc",
    }
}

/// Entries matching dpkg's glob patterns; prints dpkg-query's complaint for a pattern that
/// matches nothing and returns whether all matched.
fn matching<'d>(
    db: &'d Db,
    patterns: &[&String],
    io: &mut Io,
) -> (Vec<(&'d String, &'d Entry)>, bool) {
    if patterns.is_empty() {
        return (db.packages.iter().collect(), true);
    }
    let mut out: Vec<(&String, &Entry)> = Vec::new();
    let mut all = true;
    for pat in patterns {
        let name = pat.split(':').next().unwrap_or(pat);
        let g = glob::Pattern::new(name).ok();
        let found: Vec<(&String, &Entry)> = db
            .packages
            .iter()
            .filter(|(n, _)| g.as_ref().map_or(*n == name, |g| g.matches(n)))
            .collect();
        if found.is_empty() {
            io.err(&format!("dpkg-query: no packages found matching {pat}\n"));
            all = false;
        }
        for f in found {
            if !out.iter().any(|(n, _)| *n == f.0) {
                out.push(f);
            }
        }
    }
    (out, all)
}

/// Expands a dpkg-query `--showformat`.
fn format_entry(fmt: &str, name: &str, e: &Entry, p: Option<&Pkg>) -> String {
    let fmt = fmt.replace("\\n", "\n").replace("\\t", "\t");
    let mut out = String::new();
    let mut rest = fmt.as_str();
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find('}') else {
            out.push_str(&rest[i..]);
            rest = "";
            break;
        };
        let field = after[..j].split(';').next().unwrap_or("");
        let v = match field.to_ascii_lowercase().as_str() {
            "package" | "binary:package" => name.to_owned(),
            "version" => e.version.clone(),
            "status" => status_of(e),
            "db:status-abbrev" => format!("{} ", abbrev(e)),
            "db:status-want" => status_of(e).split(' ').next().unwrap_or("").to_owned(),
            "db:status-status" => e.status.clone(),
            "architecture" => "amd64".to_owned(),
            "installed-size" => p.map(|p| p.size_kb.to_string()).unwrap_or_default(),
            "section" => p.map(|p| p.section.to_owned()).unwrap_or_default(),
            "priority" => p.map(|p| p.priority.to_owned()).unwrap_or_default(),
            "description" | "binary:summary" => {
                p.map(|p| p.description.to_owned()).unwrap_or_default()
            }
            "depends" => p.map(|p| p.depends.join(", ")).unwrap_or_default(),
            _ => String::new(),
        };
        out.push_str(&v);
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    out
}

/// `dpkg-query`.
pub fn dpkg_query(node: &Node, args: &[String], io: &mut Io) -> i32 {
    dpkg_like("dpkg-query", node, args, io)
}

/// `dpkg`.
pub fn dpkg(node: &Node, args: &[String], io: &mut Io) -> i32 {
    dpkg_like("dpkg", node, args, io)
}

#[allow(clippy::too_many_lines)]
fn dpkg_like(tool: &str, node: &Node, args: &[String], io: &mut Io) -> i32 {
    let mut action: Option<&str> = None;
    let mut fmt = "${binary:Package}\t${Version}\n".to_owned();
    let mut rest: Vec<&String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-W" | "--show" => action = Some("show"),
            "-l" | "--list" => action = Some("list"),
            "-s" | "--status" => action = Some("status"),
            "-L" | "--listfiles" => action = Some("files"),
            "-r" | "--remove" => action = Some("remove"),
            "-P" | "--purge" => action = Some("purge"),
            "-i" | "--install" => action = Some("install"),
            "--print-architecture" => action = Some("arch"),
            "--get-selections" => action = Some("selections"),
            "--configure" | "--audit" | "-C" => action = Some("noop"),
            "-f" | "--showformat" => {
                if let Some(f) = it.next() {
                    fmt.clone_from(f);
                }
            }
            s if s.starts_with("--showformat=") => s["--showformat=".len()..].clone_into(&mut fmt),
            s if s.starts_with("-f") && s.len() > 2 => {
                s[2..].trim_start_matches('=').clone_into(&mut fmt);
            }
            s if s.starts_with("--force-") || s == "-a" || s == "--pending" => {}
            s if s.starts_with('-') => {
                io.err(&format!(
                    "{tool}: error: unknown option {s}\n\nUse --help for help about querying packages.\n"
                ));
                return 2;
            }
            _ => rest.push(a),
        }
    }
    let Some(action) = action else {
        io.err(&format!(
            "{tool}: error: need an action option\n\nType {tool} --help for help about installing and deinstalling packages [*];\nUse 'apt' or 'aptitude' for user-friendly package management;\nType {tool} -Dhelp for a list of {tool} debug flag values;\nType {tool} --force-help for a list of forcing options;\nType dpkg-deb --help for help about manipulating *.deb files;\n\nOptions marked [*] produce a lot of output - pipe it through 'less' or 'more' !\n"
        ));
        return 2;
    };
    let db = match Db::load(node) {
        Ok(d) => d,
        Err(e) => {
            io.err(&format!("{tool}: error: {e}\n"));
            return 2;
        }
    };
    let cat = catalog::catalog(node);
    match action {
        "arch" => {
            io.out("amd64\n");
            0
        }
        "noop" => 0,
        "install" => {
            for f in &rest {
                io.err(&format!(
                    "dpkg: error: cannot access archive '{f}': No such file or directory\n"
                ));
            }
            if rest.is_empty() {
                io.err("dpkg: error: --install needs at least one package archive file argument\n");
            }
            1
        }
        "show" => {
            let (found, all) = matching(&db, &rest, io);
            for (n, e) in found {
                io.out(&format_entry(&fmt, n, e, find(&cat, n, &e.version)));
            }
            i32::from(!all)
        }
        "selections" => {
            let (found, all) = matching(&db, &rest, io);
            for (n, e) in found {
                let want = status_of(e);
                let want = want.split(' ').next().unwrap_or("");
                io.out(&format!("{n}\t\t\t\t\t{want}\n"));
            }
            i32::from(!all)
        }
        "list" => {
            let (found, all) = matching(&db, &rest, io);
            if !found.is_empty() {
                let rows: Vec<(String, String, String, String)> = found
                    .iter()
                    .map(|(n, e)| {
                        (
                            abbrev(e).to_owned(),
                            (*n).clone(),
                            e.version.clone(),
                            find(&cat, n, &e.version)
                                .map(|p| p.description.to_owned())
                                .unwrap_or_default(),
                        )
                    })
                    .collect();
                io.out(&dpkg_list_table(&rows));
            }
            i32::from(!all)
        }
        "status" => {
            let mut code = 0;
            if rest.is_empty() {
                io.err(&format!("{tool}: error: --status needs at least one package name argument\n\nUse --help for help about querying packages.\n"));
                return 1;
            }
            for n in &rest {
                let Some(e) = db.packages.get(n.as_str()) else {
                    io.err(&format!("dpkg-query: package '{n}' is not installed and no information is available\nUse dpkg --info (= dpkg-deb --info) to examine archive files.\n"));
                    code = 1;
                    continue;
                };
                let st = status_of(e);
                match find(&cat, n, &e.version) {
                    Some(p) => {
                        let mut p = p.clone();
                        p.version.clone_from(&e.version);
                        io.out(&control(&p, Some(&st)));
                    }
                    None => io.out(&format!(
                        "Package: {n}\nStatus: {st}\nArchitecture: amd64\nVersion: {}\n",
                        e.version
                    )),
                }
                io.out("\n");
            }
            code
        }
        "files" => {
            let mut code = 0;
            for n in &rest {
                let Some(e) = db.packages.get(n.as_str()) else {
                    io.err(&format!("dpkg-query: package '{n}' is not installed\nUse dpkg --contents (= dpkg-deb --contents) to list archive files contents.\n"));
                    code = 1;
                    continue;
                };
                let p = find(&cat, n, &e.version);
                io.out("/.\n/usr\n/usr/bin\n");
                for b in p.map(|p| p.bins.clone()).unwrap_or_default() {
                    io.out(&format!("/usr/bin/{b}\n"));
                }
                for (f, _) in p.map(|p| p.conffiles.clone()).unwrap_or_default() {
                    io.out(&format!("{f}\n"));
                }
                io.out(&format!(
                    "/usr/share/doc/{n}\n/usr/share/doc/{n}/copyright\n"
                ));
            }
            code
        }
        _ => dpkg_remove(node, db, cat, &rest, action == "purge", io),
    }
}

fn dpkg_remove(
    node: &Node,
    db: Db,
    cat: Vec<Pkg>,
    names: &[&String],
    purge: bool,
    io: &mut Io,
) -> i32 {
    let Ok(Some(_lock)) = try_lock(node, "lock-frontend", Duration::ZERO) else {
        io.err("dpkg: error: dpkg frontend lock was locked by another process\nNote: removing the lock file is always wrong, can damage the locked area\nand the entire system. See <https://wiki.debian.org/Teams/Dpkg/FAQ#db-lock>.\n");
        return 2;
    };
    if names.is_empty() {
        io.err(&format!(
            "dpkg: error: --{} needs at least one package name argument\n\nType dpkg --help for help about installing and deinstalling packages [*];\n",
            if purge { "purge" } else { "remove" }
        ));
        return 2;
    }
    let mut c = Cache { node, cat, db };
    let mut failed = Vec::new();
    let mut todo = Vec::new();
    for n in names {
        let n = (*n).clone();
        match c.db.packages.get(&n) {
            None => io.out(&format!(
                "dpkg: warning: ignoring request to remove {n} which isn't installed\n"
            )),
            Some(e) if !e.installed() && !purge => io.out(&format!(
                "dpkg: warning: ignoring request to remove {n}, only the config\n files of which are on the system; use --purge to remove them too\n"
            )),
            Some(_) => {
                let single: BTreeSet<String> = [n.clone()].into();
                let rdeps: Vec<String> = c
                    .rdepends_closure(&single)
                    .into_iter()
                    .filter(|x| *x != n && !names.contains(&x))
                    .collect();
                if rdeps.is_empty() {
                    todo.push(n);
                } else {
                    io.err(&format!("dpkg: dependency problems prevent removal of {n}:\n"));
                    for r in &rdeps {
                        io.err(&format!(" {r} depends on {n}.\n"));
                    }
                    io.err(&format!(
                        "\ndpkg: error processing package {n} (--{}):\n dependency problems - not removing\n",
                        if purge { "purge" } else { "remove" }
                    ));
                    failed.push(n);
                }
            }
        }
    }
    do_remove(node, &mut c, &todo, purge, io);
    if let Err(e) = c.db.save(node) {
        io.err(&format!("dpkg: error: {e}\n"));
        return 2;
    }
    if failed.is_empty() {
        0
    } else {
        io.err("Errors were encountered while processing:\n");
        for f in &failed {
            io.err(&format!(" {f}\n"));
        }
        1
    }
}

/// `dpkg -l`'s table (the header, then one row per package), columns as wide as their
/// contents, as dpkg prints when its output is not a terminal.
fn dpkg_list_table(rows: &[(String, String, String, String)]) -> String {
    let w_name = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(14);
    let w_ver = rows.iter().map(|r| r.2.len()).max().unwrap_or(0).max(12);
    let w_arch = 12;
    let w_desc = rows.iter().map(|r| r.3.len()).max().unwrap_or(0).max(12);
    let mut s = String::from(
        "Desired=Unknown/Install/Remove/Purge/Hold\n| Status=Not/Inst/Conf-files/Unpacked/halF-conf/Half-inst/trig-aWait/Trig-pend\n|/ Err?=(none)/Reinst-required (Status,Err: uppercase=bad)\n",
    );
    s.push_str(&format!(
        "||/ {:<w_name$} {:<w_ver$} {:<w_arch$} Description\n",
        "Name", "Version", "Architecture"
    ));
    s.push_str(&format!(
        "+++-{}-{}-{}-{}\n",
        "=".repeat(w_name),
        "=".repeat(w_ver),
        "=".repeat(w_arch),
        "=".repeat(w_desc)
    ));
    for (st, n, v, d) in rows {
        s.push_str(&format!(
            "{st}  {n:<w_name$} {v:<w_ver$} {:<w_arch$} {d}\n",
            "amd64"
        ));
    }
    s
}

/// Test support shared by the stand-in tests: a node on a temporary root, and a runner.
#[cfg(test)]
pub(crate) mod testnode {
    use super::super::{Io, Node, run};

    pub fn node() -> (tempfile::TempDir, Node) {
        let dir = tempfile::tempdir().unwrap();
        let node = Node {
            name: "node01".to_owned(),
            address: "127.0.0.2".to_owned(),
            lab_dir: dir.path().join("lab"),
            gpu: false,
            os_release: "22.04".to_owned(),
            kamo_bin: "/opt/kamo/kamo".into(),
            root: dir.path().join("root"),
        };
        (dir, node)
    }

    /// Runs `tool` with the shell-split `args`: `(exit code, stdout, stderr)`.
    pub fn sh(node: &Node, tool: &str, args: &str) -> (i32, String, String) {
        let words: Vec<String> = shlex::split(args).unwrap();
        let mut io = Io::default();
        let code = run(tool, node, &words, &mut io);
        (
            code,
            String::from_utf8(io.out).unwrap(),
            String::from_utf8(io.err).unwrap(),
        )
    }

    /// A line with digit runs, decimals and size units masked, for comparing output shapes.
    pub fn shape(text: &str) -> Vec<String> {
        let digits = regex::Regex::new(r"[0-9]+([.,][0-9]+)*").unwrap();
        let units = regex::Regex::new(r"\bN (B|kB|MB|GB)\b").unwrap();
        text.lines()
            .map(|l| {
                units
                    .replace_all(&digits.replace_all(l, "N"), "N U")
                    .into_owned()
            })
            .collect()
    }

    pub fn fixture(name: &str) -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/standin")
                .join(name),
        )
        .unwrap()
    }

    /// Configures the pkgs.k8s.io repository for `minor` (with its key) and runs `apt-get update`.
    pub fn add_kube_repo(node: &Node, minor: u32) {
        let d = node.path("/etc/apt/sources.list.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::create_dir_all(node.path("/etc/apt/keyrings")).unwrap();
        std::fs::write(
            node.path("/etc/apt/keyrings/kubernetes-apt-keyring.gpg"),
            "key",
        )
        .unwrap();
        std::fs::write(
            d.join("kubernetes.list"),
            format!("deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.{minor}/deb/ /\n"),
        )
        .unwrap();
        let (code, _, err) = sh(node, "apt-get", "update -q -o DPkg::Lock::Timeout=60");
        assert_eq!(code, 0, "{err}");
    }
}

#[cfg(test)]
mod tests {
    use super::testnode::{add_kube_repo, fixture, node, sh, shape};
    use super::*;

    const INSTALL: &str = "install -y -o DPkg::Lock::Timeout=60 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --no-install-recommends";
    const STATUS: &str = "-W -f='${Status} ${Version}'";

    #[test]
    fn fresh_node_has_a_server_base_and_dpkg_query_answers_like_dpkg() {
        let (_d, n) = node();
        assert_eq!(
            sh(&n, "dpkg-query", &format!("{STATUS} curl")),
            (
                0,
                "install ok installed 7.81.0-1ubuntu1.15".to_owned(),
                String::new()
            )
        );
        assert_eq!(
            sh(&n, "dpkg-query", &format!("{STATUS} kubeadm")),
            (
                1,
                String::new(),
                "dpkg-query: no packages found matching kubeadm\n".to_owned()
            )
        );
        let (code, out, _) = sh(&n, "dpkg-query", "-W openssh-server sudo");
        assert_eq!(code, 0);
        assert_eq!(
            out,
            "openssh-server\t1:8.9p1-3ubuntu0.6\nsudo\t1.9.9-1ubuntu2.4\n"
        );
        assert_eq!(sh(&n, "dpkg", "--print-architecture").1, "amd64\n");
        let (code, out, _) = sh(&n, "dpkg", "-l curl");
        assert_eq!(code, 0);
        assert_eq!(shape(&out), shape(&fixture("dpkg-l-curl.txt")));
        let (code, _, err) = sh(&n, "dpkg", "-s nosuch");
        assert_eq!(code, 1);
        assert!(
            err.starts_with(
                "dpkg-query: package 'nosuch' is not installed and no information is available\n"
            ),
            "{err}"
        );
        let (code, out, _) = sh(&n, "dpkg", "-s sudo");
        assert_eq!(code, 0);
        assert!(
            out.starts_with("Package: sudo\nStatus: install ok installed\n"),
            "{out}"
        );
        // Other releases have their own versions.
        let (_d2, mut n2) = node();
        n2.os_release = "20.04".to_owned();
        assert_eq!(
            sh(&n2, "dpkg-query", &format!("{STATUS} systemd")).1,
            "install ok installed 245.4-4ubuntu3.23"
        );
    }

    #[test]
    fn install_from_the_archive_prints_what_apt_prints() {
        let (_d, n) = node();
        let (code, out, err) = sh(&n, "apt-get", &format!("{INSTALL} jq"));
        assert_eq!(code, 0, "{err}");
        let want: Vec<String> = shape(&fixture("apt-get-install-jq.txt"))
            .into_iter()
            .filter(|l| !l.starts_with("Processing triggers"))
            .collect();
        assert_eq!(shape(&out), want, "{out}");
        assert_eq!(
            sh(&n, "dpkg-query", &format!("{STATUS} libonig5")).1,
            "install ok installed 6.9.7.1-2build1"
        );
        // Again: nothing to do.
        let (code, out, _) = sh(&n, "apt-get", &format!("{INSTALL} jq"));
        assert_eq!(code, 0);
        assert!(out.contains("jq is already the newest version (1.6-2.1ubuntu3).\n0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n"), "{out}");
        // Unknown packages fail the whole run, as apt does.
        let (code, out, err) = sh(&n, "apt-get", &format!("{INSTALL} socat nosuch"));
        assert_eq!(code, 100);
        assert_eq!(err, "E: Unable to locate package nosuch\n");
        assert!(!out.contains("Setting up"));
        assert_eq!(sh(&n, "dpkg-query", &format!("{STATUS} socat")).0, 1);
        // Without -y, extra packages need a confirmation nobody gives.
        let (code, out, _) = sh(&n, "apt-get", "install nfs-kernel-server");
        assert_eq!(code, 1);
        assert!(
            out.ends_with("Do you want to continue? [Y/n] Abort.\n"),
            "{out}"
        );
    }

    #[test]
    fn third_party_packages_need_the_source_and_an_update() {
        let (_d, n) = node();
        let (code, _, err) = sh(&n, "apt-get", &format!("{INSTALL} kubeadm"));
        assert_eq!(
            (code, err.as_str()),
            (100, "E: Unable to locate package kubeadm\n")
        );
        let d = n.path("/etc/apt/sources.list.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("kubernetes.list"),
            "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.29/deb/ /\n",
        )
        .unwrap();
        // Source added, no update yet.
        assert_eq!(sh(&n, "apt-get", &format!("{INSTALL} kubeadm")).0, 100);
        // Update without the key: not signed.
        let (code, _, err) = sh(&n, "apt-get", "update -q");
        assert_eq!(code, 100);
        assert!(err.contains("E: The repository 'https://pkgs.k8s.io/core:/stable:/v1.29/deb  InRelease' is not signed.\n"), "{err}");
        assert!(!n.path(UPDATE_STAMP).exists());
        add_kube_repo(&n, 29);
        assert!(n.path(UPDATE_STAMP).exists());
        let (code, out, err) = sh(
            &n,
            "apt-get",
            &format!("{INSTALL} kubeadm=1.29.3-1.1 kubelet=1.29.3-1.1 kubectl=1.29.3-1.1"),
        );
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("The following NEW packages will be installed:\n  conntrack cri-tools ebtables ethtool kubeadm kubectl kubelet kubernetes-cni\n  socat\n"), "{out}");
        assert!(out.contains("Created symlink /etc/systemd/system/multi-user.target.wants/kubelet.service \u{2192} /lib/systemd/system/kubelet.service.\n"), "{out}");
        assert_eq!(
            std::fs::read_link(n.path("/usr/bin/kubeadm")).unwrap(),
            n.kamo_bin
        );
        assert!(
            !n.path("/usr/bin/kubelet").exists(),
            "kubelet is not a stand-in"
        );
        let db = Db::load(&n).unwrap();
        assert!(db.packages["cri-tools"].auto && !db.packages["kubeadm"].auto);
        // policy shows the installed version against the repository.
        let (code, out, _) = sh(&n, "apt-cache", "policy kubeadm");
        assert_eq!(code, 0);
        let want = fixture("apt-cache-policy-kubeadm.txt");
        assert!(out.starts_with(&want), "{out}");
        assert!(out.contains(" *** 1.29.3-1.1 500\n        500 https://pkgs.k8s.io/core:/stable:/v1.29/deb  Packages\n        100 /var/lib/dpkg/status\n"), "{out}");
        let (code, out, err) = sh(&n, "apt-cache", "policy nosuch");
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (0, "", "N: Unable to locate package nosuch\n")
        );
        // The legacy repository is gone, unknown hosts do not resolve.
        std::fs::write(
            d.join("legacy.list"),
            "deb https://apt.kubernetes.io/ kubernetes-xenial main\n",
        )
        .unwrap();
        let (code, _, err) = sh(&n, "apt-get", "update");
        assert_eq!(code, 100);
        assert!(err.contains("E: The repository 'https://apt.kubernetes.io kubernetes-xenial Release' does not have a Release file.\n"), "{err}");
        std::fs::remove_file(d.join("legacy.list")).unwrap();
        std::fs::write(
            d.join("x.list"),
            "deb http://mirror.invalid/ubuntu jammy main\n",
        )
        .unwrap();
        let (code, out, err) = sh(&n, "apt-get", "update");
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("  Temporary failure resolving 'mirror.invalid'\n"),
            "{out}"
        );
        assert!(err.ends_with("W: Some index files failed to download. They have been ignored, or old ones used instead.\n"), "{err}");
    }

    #[test]
    fn version_pins_prefixes_downgrades_and_holds() {
        let (_d, n) = node();
        add_kube_repo(&n, 29);
        let (code, _, err) = sh(&n, "apt-get", &format!("{INSTALL} kubeadm=9.9"));
        assert_eq!(
            (code, err.as_str()),
            (100, "E: Version '9.9' for 'kubeadm' was not found\n")
        );
        let (code, out, err) = sh(&n, "apt-get", &format!("{INSTALL} kubectl=1.29.1*"));
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("Selected version '1.29.15-1.1' (isv:kubernetes:core:stable:v1.29:pkgs.k8s.io [amd64]) for 'kubectl'\n") || out.contains("Selected version '1.29.14-1.1'") , "{out}");
        let installed = sh(&n, "dpkg-query", &format!("{STATUS} kubectl")).1;
        assert_eq!(installed, "install ok installed 1.29.15-1.1");
        let (code, out, err) = sh(&n, "apt-get", &format!("{INSTALL} kubectl=1.29.3-1.1"));
        assert_eq!(code, 100);
        assert!(out.contains("The following packages will be DOWNGRADED:\n  kubectl\n0 upgraded, 0 newly installed, 1 downgraded, 0 to remove and 0 not upgraded.\n"), "{out}");
        assert_eq!(
            err,
            "E: Packages were downgraded and -y was used without --allow-downgrades.\n"
        );
        assert_eq!(
            sh(
                &n,
                "apt-get",
                &format!("{INSTALL} --allow-downgrades kubectl=1.29.3-1.1")
            )
            .0,
            0
        );
        assert_eq!(
            sh(&n, "apt-mark", "hold kubectl"),
            (0, "kubectl set on hold.\n".to_owned(), String::new())
        );
        assert_eq!(
            sh(&n, "dpkg-query", &format!("{STATUS} kubectl")).1,
            "hold ok installed 1.29.3-1.1"
        );
        // A held package stays where it is on upgrade, and refuses a pin.
        let (code, out, _) = sh(&n, "apt-get", "upgrade -y");
        assert_eq!(code, 0);
        assert!(out.contains("0 upgraded, 0 newly installed"), "{out}");
        let (code, _, err) = sh(&n, "apt-get", &format!("{INSTALL} kubectl=1.29.4-1.1"));
        assert_eq!(code, 100);
        assert_eq!(
            err,
            "E: Held packages were changed and -y was used without --allow-change-held-packages.\n"
        );
        assert_eq!(sh(&n, "apt-mark", "showhold").1, "kubectl\n");
    }

    #[test]
    fn remove_leaves_config_files_purge_removes_them_and_autoremove() {
        let (_d, n) = node();
        assert_eq!(
            sh(&n, "apt-get", &format!("{INSTALL} nfs-kernel-server jq")).0,
            0
        );
        assert!(n.path("/etc/exports").is_file());
        assert_eq!(
            std::fs::read_link(n.path("/usr/bin/exportfs")).unwrap(),
            n.kamo_bin
        );
        assert_eq!(
            std::fs::read_link(n.path("/usr/bin/showmount")).unwrap(),
            n.kamo_bin
        );
        assert_eq!(sh(&n, "systemctl", "is-active nfs-server").1, "active\n");
        let rm = "remove -y -o DPkg::Lock::Timeout=60";
        let (code, out, _) = sh(&n, "apt-get", &format!("{rm} nfs-kernel-server"));
        assert_eq!(code, 0);
        assert!(
            out.contains("Removing nfs-kernel-server (1:2.6.1-1ubuntu1.2) ...\n"),
            "{out}"
        );
        assert_eq!(
            sh(&n, "dpkg-query", &format!("{STATUS} nfs-kernel-server")).1,
            "deinstall ok config-files 1:2.6.1-1ubuntu1.2"
        );
        assert!(n.path("/etc/exports").is_file());
        assert!(!n.path("/usr/bin/exportfs").exists());
        assert_eq!(
            sh(&n, "systemctl", "show -p LoadState nfs-server").1,
            "LoadState=not-found\n"
        );
        assert!(
            sh(&n, "dpkg", "-l nfs-kernel-server")
                .1
                .contains("\nrc  nfs-kernel-server ")
        );
        let (code, out, _) = sh(&n, "apt-get", &format!("{rm} --purge nfs-kernel-server"));
        assert_eq!(code, 0);
        assert!(
            out.contains(
                "Purging configuration files for nfs-kernel-server (1:2.6.1-1ubuntu1.2) ...\n"
            ),
            "{out}"
        );
        assert!(!n.path("/etc/exports").exists());
        assert_eq!(
            sh(&n, "dpkg-query", &format!("{STATUS} nfs-kernel-server")).0,
            1
        );
        // jq's libraries stay until autoremove.
        let (code, out, _) = sh(&n, "apt-get", &format!("{rm} jq"));
        assert_eq!(code, 0);
        assert!(
            out.contains(
                "The following packages were automatically installed and are no longer required:\n"
            ),
            "{out}"
        );
        assert!(out.contains(" libjq1 libonig5 "), "{out}");
        let (code, out, _) = sh(&n, "apt-get", "-s autoremove");
        assert_eq!(code, 0);
        // nfs-common and friends are no longer needed either.
        let sim: Vec<&str> = out.lines().filter(|l| l.starts_with("Remv ")).collect();
        assert!(sim.contains(&"Remv libjq1 [1.6-2.1ubuntu3]"), "{out}");
        assert!(
            sim.contains(&"Remv nfs-common [1:2.6.1-1ubuntu1.2]"),
            "{out}"
        );
        assert_eq!(
            sh(&n, "dpkg-query", &format!("{STATUS} libjq1")).0,
            0,
            "simulation changes nothing"
        );
        assert_eq!(sh(&n, "apt-get", "autoremove -y").0, 0);
        assert_eq!(sh(&n, "dpkg-query", &format!("{STATUS} libjq1")).0, 1);
        let (_, out, _) = sh(&n, "apt-get", "-s autoremove");
        assert!(!out.contains("Remv"), "{out}");
        // Unknown names, essential packages.
        let (code, _, err) = sh(&n, "apt-get", &format!("{rm} nosuch"));
        assert_eq!(
            (code, err.as_str()),
            (100, "E: Unable to locate package nosuch\n")
        );
        let (code, out, _) = sh(&n, "apt-get", &format!("{rm} socat"));
        assert_eq!(code, 0);
        assert!(
            out.contains("Package 'socat' is not installed, so not removed\n"),
            "{out}"
        );
        let (code, _, err) = sh(&n, "apt-get", &format!("{rm} coreutils"));
        assert_eq!(code, 100);
        assert!(err.contains("--allow-remove-essential"), "{err}");
    }

    #[test]
    fn autoremove_simulation_matches_apt() {
        let (_d, n) = node();
        assert_eq!(sh(&n, "apt-get", &format!("{INSTALL} jq")).0, 0);
        assert_eq!(sh(&n, "apt-get", "remove -y jq").0, 0);
        let (_, out, _) = sh(&n, "apt-get", "-s autoremove");
        assert_eq!(out, fixture("apt-get-s-autoremove.txt"));
        let (_, out, _) = sh(&n, "apt-get", "-s autoremove --purge");
        assert!(out.contains("\nPurg libjq1 [1.6-2.1ubuntu3]\n"), "{out}");
    }

    #[test]
    fn conflicts_replace_and_dependencies_block_dpkg_remove() {
        let (_d, n) = node();
        assert_eq!(sh(&n, "apt-get", &format!("{INSTALL} containerd")).0, 0);
        std::fs::create_dir_all(n.path("/etc/apt/keyrings")).unwrap();
        std::fs::write(n.path("/etc/apt/keyrings/docker.asc"), "key").unwrap();
        std::fs::create_dir_all(n.path("/etc/apt/sources.list.d")).unwrap();
        std::fs::write(
            n.path("/etc/apt/sources.list.d/docker.list"),
            "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/ubuntu jammy stable\n",
        )
        .unwrap();
        assert_eq!(sh(&n, "apt-get", "update").0, 0);
        let (code, out, err) = sh(&n, "apt-get", &format!("{INSTALL} containerd.io"));
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("The following packages will be REMOVED:\n  containerd runc\n"),
            "{out}"
        );
        assert_eq!(sh(&n, "dpkg-query", &format!("{STATUS} runc")).0, 1);
        assert!(n.path("/etc/containerd/config.toml").is_file());
        assert_eq!(sh(&n, "systemctl", "is-active containerd").0, 0);
        // dpkg itself does not resolve dependencies.
        assert_eq!(sh(&n, "apt-get", &format!("{INSTALL} jq")).0, 0);
        let (code, _, err) = sh(&n, "dpkg", "-r libjq1");
        assert_eq!(code, 1);
        assert!(
            err.starts_with(
                "dpkg: dependency problems prevent removal of libjq1:\n jq depends on libjq1.\n"
            ),
            "{err}"
        );
        assert_eq!(sh(&n, "dpkg", "--purge jq").0, 0);
        assert_eq!(sh(&n, "dpkg-query", &format!("{STATUS} jq")).0, 1);
    }

    #[test]
    fn the_lock_serialises_and_times_out_like_apt() {
        let (_d, n) = node();
        let held = try_lock(&n, "lock-frontend", Duration::ZERO)
            .unwrap()
            .unwrap();
        let (code, _, err) = sh(&n, "apt-get", "install -y jq");
        assert_eq!(code, 100);
        assert!(err.starts_with("E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by another apt process\n"), "{err}");
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        let (code, _, err) = sh(&n, "apt-get", "install -y -o DPkg::Lock::Timeout=5 jq");
        assert_eq!(code, 0, "{err}");
        assert!(err.starts_with("Waiting for cache lock"), "{err}");
        t.join().unwrap();
        // Reading needs no lock; a malformed source list stops update.
        std::fs::create_dir_all(n.path("/etc/apt/sources.list.d")).unwrap();
        std::fs::write(
            n.path("/etc/apt/sources.list.d/bad.list"),
            "deb https://x.example/\n",
        )
        .unwrap();
        let (code, _, err) = sh(&n, "apt-get", "update");
        assert_eq!(code, 100);
        assert!(
            err.starts_with(
                "E: Malformed entry 1 in list file /etc/apt/sources.list.d/bad.list (Suite)\n"
            ),
            "{err}"
        );
    }

    #[test]
    fn option_errors_and_apt_front_end() {
        let (_d, n) = node();
        let (code, _, err) = sh(&n, "apt-get", "install --bogus jq");
        assert_eq!(code, 100);
        assert_eq!(
            err,
            "E: Command line option 'bogus' [from --bogus] is not understood in combination with the other options.\n"
        );
        let (code, _, err) = sh(&n, "apt-get", "frobnicate");
        assert_eq!(
            (code, err.as_str()),
            (100, "E: Invalid operation frobnicate\n")
        );
        let (code, out, err) = sh(&n, "apt", "install -y socat");
        assert_eq!(code, 0);
        assert!(err.contains("WARNING: apt does not have a stable CLI interface."));
        assert!(
            out.contains("Setting up socat (1.7.4.1-3ubuntu4) ...\n"),
            "{out}"
        );
        let (_, out, _) = sh(&n, "apt", "list --installed");
        assert!(
            out.contains("socat/jammy,now 1.7.4.1-3ubuntu4 amd64 [installed]\n"),
            "{out}"
        );
        let (code, out, _) = sh(&n, "apt", "update");
        assert_eq!(code, 0);
        assert!(out.ends_with("All packages are up to date.\n"), "{out}");
    }
}
