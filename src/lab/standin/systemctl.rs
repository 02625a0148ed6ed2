//! `systemctl` on a lab node.
//!
//! Why emulated: a lab node is a mount namespace around an `sshd`, not a booted system, so
//! there is no systemd to ask. The stand-in keeps what systemd would know and answers with
//! systemctl's output and exit codes for the verbs playbooks and kamo's `systemd` module use.
//!
//! Units: the node's base units (ssh, cron, journald, ...), the units of installed packages
//! (see [`super::packages::installed_units`]) and unit files written to the node's
//! `/etc/systemd/system`. Enablement lives where systemd keeps it, as symlinks in
//! `/etc/systemd/system/<target>.wants/` (masking: a symlink to `/dev/null`), so a playbook
//! that looks there sees the truth. Whether a unit runs (and since when) is kept in
//! `units.json` under the node's state directory. `kubelet.service` behaves as it does before
//! `kubeadm init`/`join`: started, it stays `activating (auto-restart)` until the cluster
//! state says the node has joined (`<cluster>/nodes/<node>.json`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::catalog::{UnitDef, base_units, release};
use super::packages::{installed_units, try_lock, write_atomic};
use super::{Io, Node};

const UNITS_FILE: &str = "units.json";
const UNIT_DIR: &str = "/etc/systemd/system";
const VENDOR_DIR: &str = "/lib/systemd/system";
/// Units whose service has an `ExecReload=`.
const RELOADABLE: &[&str] = &[
    "ssh.service",
    "nfs-server.service",
    "docker.service",
    "cron.service",
    "rsyslog.service",
];
const ALIASES: &[(&str, &str)] = &[
    ("sshd.service", "ssh.service"),
    ("nfs-kernel-server.service", "nfs-server.service"),
    ("syslog.service", "rsyslog.service"),
];

/// Whether a unit runs, kept per node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Units {
    /// Unit name -> `active` or `failed`, and since when (seconds since the epoch).
    running: BTreeMap<String, (String, u64)>,
    /// Base units were enabled and started (first use on a fresh node).
    #[serde(default)]
    seeded: bool,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Units {
    fn path(node: &Node) -> PathBuf {
        node.state_dir().join(UNITS_FILE)
    }

    fn load(node: &Node) -> Units {
        let mut u: Units = std::fs::read_to_string(Self::path(node))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        if !u.seeded {
            for d in base_units() {
                if d.installable {
                    let _ = enable_link(node, &d.name, &target_of(node, &d.name));
                }
                u.running
                    .insert(d.name.clone(), ("active".to_owned(), now()));
            }
            u.seeded = true;
        }
        u
    }

    fn save(&self, node: &Node) -> Result<(), String> {
        write_atomic(
            &Self::path(node),
            &serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?,
        )
    }
}

/// Runs `f` on the node's unit states under the units lock, then saves them. A user who may
/// not write the state (not root) still gets every query, as with the real systemctl; a
/// change is refused as polkit refuses it without a password.
fn with_units<T>(node: &Node, f: impl FnOnce(&mut Units) -> T) -> Result<T, String> {
    match try_lock(node, "units.lock", Duration::from_secs(30)) {
        Ok(Some(_lock)) => {
            let mut u = Units::load(node);
            let out = f(&mut u);
            u.save(node)?;
            Ok(out)
        }
        Ok(None) => Err("timed out waiting for the units lock".to_owned()),
        Err(e) if e.contains("Permission denied") => {
            let mut u = Units::load(node);
            let before = serde_json::to_string(&u).unwrap_or_default();
            let out = f(&mut u);
            if serde_json::to_string(&u).unwrap_or_default() == before {
                Ok(out)
            } else {
                Err(INTERACTIVE_AUTH.to_owned())
            }
        }
        Err(e) => Err(e),
    }
}

/// What systemd answers a user who may not change units.
const INTERACTIVE_AUTH: &str = "Interactive authentication required.";

/// A unit as the node knows it.
#[derive(Debug, Clone)]
struct Known {
    def: UnitDef,
    /// The unit file (`/lib/systemd/system/x.service` or `/etc/systemd/system/x.service`).
    fragment: String,
    reload: bool,
    wanted_by: String,
}

/// Parses a unit file in `/etc/systemd/system`.
fn custom_unit(node: &Node, name: &str) -> Option<Known> {
    let abs = format!("{UNIT_DIR}/{name}");
    let p = node.path(&abs);
    if p.is_symlink() || !p.is_file() {
        return None;
    }
    let text = std::fs::read_to_string(&p).ok()?;
    let get = |k: &str| {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix(k)?.trim_start().strip_prefix('='))
            .map(|v| v.trim().to_owned())
            .next_back()
    };
    let wanted_by = get("WantedBy").or_else(|| get("RequiredBy"));
    Some(Known {
        def: UnitDef {
            name: name.to_owned(),
            description: get("Description").unwrap_or_else(|| name.to_owned()),
            installable: wanted_by.is_some(),
            start_on_install: false,
            oneshot: get("Type").is_some_and(|t| t == "oneshot"),
            exec: get("ExecStart").unwrap_or_default(),
            docs: get("Documentation").unwrap_or_default(),
        },
        fragment: abs,
        reload: get("ExecReload").is_some(),
        wanted_by: wanted_by
            .and_then(|w| w.split_whitespace().next().map(str::to_owned))
            .unwrap_or_else(|| "multi-user.target".to_owned()),
    })
}

fn all_defs(node: &Node) -> Vec<UnitDef> {
    let mut v = base_units();
    v.extend(installed_units(node));
    v
}

/// The unit called `name` (already normalised), if the node has it.
fn lookup(node: &Node, name: &str) -> Option<Known> {
    if let Some(k) = custom_unit(node, name) {
        return Some(k);
    }
    all_defs(node)
        .into_iter()
        .find(|d| d.name == name)
        .map(|d| Known {
            fragment: format!("{VENDOR_DIR}/{}", d.name),
            reload: RELOADABLE.contains(&d.name.as_str()),
            wanted_by: "multi-user.target".to_owned(),
            def: d,
        })
}

fn target_of(node: &Node, name: &str) -> String {
    custom_unit(node, name).map_or_else(|| "multi-user.target".to_owned(), |k| k.wanted_by)
}

/// `kubelet` -> `kubelet.service`; aliases resolved.
fn normalise(name: &str) -> String {
    let suffixes = [
        ".service",
        ".socket",
        ".target",
        ".timer",
        ".mount",
        ".path",
        ".slice",
        ".scope",
        ".device",
        ".swap",
        ".automount",
    ];
    let full = if suffixes.iter().any(|s| name.ends_with(s)) {
        name.to_owned()
    } else {
        format!("{name}.service")
    };
    ALIASES
        .iter()
        .find(|(a, _)| *a == full)
        .map_or(full, |(_, t)| (*t).to_owned())
}

/// A `<target>.wants` directory (systemd's names are case-sensitive).
#[allow(clippy::case_sensitive_file_extension_comparisons)]
fn is_wants(name: &str) -> bool {
    name.ends_with(".wants")
}

fn masked(node: &Node, name: &str) -> bool {
    std::fs::read_link(node.path(&format!("{UNIT_DIR}/{name}")))
        .is_ok_and(|t| t == std::path::Path::new("/dev/null"))
}

fn enabled_link(node: &Node, name: &str) -> bool {
    let Ok(rd) = std::fs::read_dir(node.path(UNIT_DIR)) else {
        return false;
    };
    rd.filter_map(Result::ok)
        .filter(|e| is_wants(&e.file_name().to_string_lossy()))
        .any(|e| e.path().join(name).is_symlink())
}

/// Creates the enablement symlink; the message systemctl prints, if it made one.
fn enable_link(node: &Node, name: &str, target: &str) -> Option<String> {
    let wants = format!("{UNIT_DIR}/{target}.wants");
    let link_abs = format!("{wants}/{name}");
    let link = node.path(&link_abs);
    if link.is_symlink() {
        return None;
    }
    let dest = if node.path(&format!("{UNIT_DIR}/{name}")).is_file() {
        format!("{UNIT_DIR}/{name}")
    } else {
        format!("{VENDOR_DIR}/{name}")
    };
    std::fs::create_dir_all(node.path(&wants)).ok()?;
    std::os::unix::fs::symlink(&dest, &link).ok()?;
    Some(format!("Created symlink {link_abs} \u{2192} {dest}.\n"))
}

fn disable_links(node: &Node, name: &str) -> String {
    let mut out = String::new();
    let Ok(rd) = std::fs::read_dir(node.path(UNIT_DIR)) else {
        return out;
    };
    let mut wants: Vec<String> = rd
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_wants(n))
        .collect();
    wants.sort();
    for w in wants {
        let abs = format!("{UNIT_DIR}/{w}/{name}");
        let p = node.path(&abs);
        if p.is_symlink() && std::fs::remove_file(&p).is_ok() {
            out.push_str(&format!("Removed {abs}.\n"));
        }
    }
    out
}

/// What `is-enabled` says for a unit the node has.
fn unit_file_state(node: &Node, k: &Known) -> &'static str {
    if masked(node, &k.def.name) {
        "masked"
    } else if !k.def.installable {
        "static"
    } else if enabled_link(node, &k.def.name) {
        "enabled"
    } else {
        "disabled"
    }
}

fn joined(node: &Node) -> bool {
    node.cluster_dir()
        .join("nodes")
        .join(format!("{}.json", node.name))
        .exists()
}

/// `(ActiveState, SubState, since)` of a unit.
fn active_state(node: &Node, u: &Units, k: &Known) -> (&'static str, &'static str, u64) {
    match u.running.get(&k.def.name) {
        Some((s, since)) if s == "failed" => ("failed", "failed", *since),
        Some((_, since)) => {
            if k.def.name == "kubelet.service" && !joined(node) {
                ("activating", "auto-restart", *since)
            } else if k.def.oneshot {
                ("active", "exited", *since)
            } else {
                ("active", "running", *since)
            }
        }
        None => ("inactive", "dead", 0),
    }
}

/// Called by apt after a package is set up: its services are enabled and started (restarted
/// on upgrade, if they ran); returns dpkg's lines about the symlinks.
#[must_use]
pub fn package_installed(node: &Node, units: &[UnitDef], upgrade: bool) -> String {
    let mut out = String::new();
    let r = with_units(node, |u| {
        for d in units {
            if upgrade {
                if let Some(r) = u.running.get_mut(&d.name) {
                    r.1 = now();
                }
                continue;
            }
            if d.installable
                && d.start_on_install
                && !masked(node, &d.name)
                && let Some(m) = enable_link(node, &d.name, "multi-user.target")
            {
                out.push_str(&m);
            }
            if d.start_on_install && !masked(node, &d.name) {
                u.running
                    .insert(d.name.clone(), ("active".to_owned(), now()));
            }
        }
    });
    if let Err(e) = r {
        out.push_str(&format!("Failed to start units: {e}\n"));
    }
    out
}

/// Called by dpkg when a package goes: its services stop; purging also removes their
/// enablement symlinks (as `deb-systemd-helper purge` does).
#[must_use]
pub fn package_removed(node: &Node, units: &[UnitDef], purge: bool) -> String {
    let mut out = String::new();
    let r = with_units(node, |u| {
        for d in units {
            u.running.remove(&d.name);
            if purge {
                out.push_str(&disable_links(node, &d.name));
            }
        }
    });
    if let Err(e) = r {
        out.push_str(&format!("Failed to stop units: {e}\n"));
    }
    out
}

/// Options of one systemctl call.
#[derive(Default)]
struct Opts {
    now: bool,
    quiet: bool,
    value: bool,
    props: Vec<String>,
    unit_type: Option<String>,
    state: Option<String>,
    verb: Option<String>,
    units: Vec<String>,
}

fn parse(args: &[String], io: &mut Io) -> Result<Opts, i32> {
    let mut o = Opts::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--now" => o.now = true,
            "-q" | "--quiet" => o.quiet = true,
            "--value" => o.value = true,
            "--no-block" | "--no-pager" | "--no-legend" | "--system" | "--full" | "-l"
            | "--all" | "-a" | "--no-ask-password" | "--force" | "-f" | "--plain" => {}
            "-p" | "--property" | "-t" | "--type" | "--state" | "-n" | "--lines" => {
                let Some(v) = it.next() else {
                    io.err(&format!("systemctl: option '{a}' requires an argument\n"));
                    return Err(1);
                };
                match a.as_str() {
                    "-p" | "--property" => o.props.extend(v.split(',').map(str::to_owned)),
                    "-t" | "--type" => o.unit_type = Some(v.clone()),
                    "--state" => o.state = Some(v.clone()),
                    _ => {}
                }
            }
            s if s.starts_with("--property=") => o
                .props
                .extend(s["--property=".len()..].split(',').map(str::to_owned)),
            s if s.starts_with("-p") && s.len() > 2 => {
                o.props.extend(s[2..].split(',').map(str::to_owned));
            }
            s if s.starts_with("--type=") => o.unit_type = Some(s["--type=".len()..].to_owned()),
            s if s.starts_with("--state=") => o.state = Some(s["--state=".len()..].to_owned()),
            s if s.starts_with("--lines=") || s.starts_with("-n") => {}
            s if s.starts_with('-') && s.len() > 1 => {
                io.err(&format!("systemctl: unrecognized option '{s}'\n"));
                return Err(1);
            }
            s if o.verb.is_none() => o.verb = Some(s.to_owned()),
            s => o.units.push(s.to_owned()),
        }
    }
    Ok(o)
}

/// `systemctl`.
#[allow(clippy::too_many_lines)]
pub fn systemctl(node: &Node, args: &[String], io: &mut Io) -> i32 {
    let o = match parse(args, io) {
        Ok(o) => o,
        Err(c) => return c,
    };
    let verb = o.verb.clone().unwrap_or_else(|| "list-units".to_owned());
    let needs_units = [
        "start",
        "stop",
        "restart",
        "try-restart",
        "reload",
        "reload-or-restart",
        "enable",
        "disable",
        "mask",
        "unmask",
        "is-active",
        "is-enabled",
        "is-failed",
    ];
    if needs_units.contains(&verb.as_str()) && o.units.is_empty() {
        io.err("Too few arguments.\n");
        return 1;
    }
    let names: Vec<String> = o.units.iter().map(|u| normalise(u)).collect();
    let r = with_units(node, |u| match verb.as_str() {
        "daemon-reload" | "daemon-reexec" | "reset-failed" => {
            if verb == "reset-failed" {
                u.running.retain(|_, (s, _)| s != "failed");
            }
            0
        }
        "start" | "restart" | "try-restart" | "reload" | "reload-or-restart" | "stop" => {
            run_jobs(node, u, &verb, &names, io)
        }
        "enable" | "disable" => {
            let code = enable(node, &verb, &names, io);
            if code == 0 && o.now {
                let job = if verb == "enable" { "start" } else { "stop" };
                run_jobs(node, u, job, &names, io)
            } else {
                code
            }
        }
        "mask" | "unmask" => mask(node, &verb, &names, io),
        "is-active" | "is-failed" => {
            let mut any = false;
            for n in &names {
                let state = lookup(node, n).map_or("inactive", |k| active_state(node, u, &k).0);
                if !o.quiet {
                    io.out(&format!("{state}\n"));
                }
                any |= if verb == "is-active" {
                    state == "active"
                } else {
                    state == "failed"
                };
            }
            if any {
                0
            } else if verb == "is-active" {
                3
            } else {
                1
            }
        }
        "is-enabled" => {
            let mut code = 1;
            for n in &names {
                let Some(k) = lookup(node, n) else {
                    if masked(node, n) {
                        if !o.quiet {
                            io.out("masked\n");
                        }
                        continue;
                    }
                    io.err(&format!(
                        "Failed to get unit file state for {n}: No such file or directory\n"
                    ));
                    continue;
                };
                let st = unit_file_state(node, &k);
                if !o.quiet {
                    io.out(&format!("{st}\n"));
                }
                if st == "enabled" || st == "static" {
                    code = 0;
                }
            }
            code
        }
        "show" => {
            for (i, n) in names.iter().enumerate() {
                if i > 0 && !o.value {
                    io.out("\n");
                }
                let props = properties(node, u, n);
                for (k, v) in &props {
                    if o.props.is_empty() || o.props.iter().any(|p| p == k) {
                        if o.value {
                            io.out(&format!("{v}\n"));
                        } else {
                            io.out(&format!("{k}={v}\n"));
                        }
                    }
                }
            }
            0
        }
        "status" => status(node, u, &names, io),
        "list-unit-files" => list_unit_files(node, &o, io),
        "list-units" => list_units(node, u, &o, io),
        other => {
            io.err(&format!("Unknown command verb {other}.\n"));
            1
        }
    });
    match r {
        Ok(c) => c,
        Err(e) if e == INTERACTIVE_AUTH => {
            io.err(&format!("Failed to {verb} units: {e}\n"));
            1
        }
        Err(e) => {
            io.err(&format!("Failed to connect to bus: {e}\n"));
            1
        }
    }
}

fn run_jobs(node: &Node, u: &mut Units, verb: &str, names: &[String], io: &mut Io) -> i32 {
    let what = match verb {
        "stop" => "stop",
        "reload" => "reload",
        "start" => "start",
        "try-restart" => "try-restart",
        "reload-or-restart" => "reload-or-restart",
        _ => "restart",
    };
    let mut code = 0;
    for n in names {
        let Some(k) = lookup(node, n) else {
            if verb == "stop" {
                io.err(&format!("Failed to stop {n}: Unit {n} not loaded.\n"));
            } else {
                io.err(&format!("Failed to {what} {n}: Unit {n} not found.\n"));
            }
            code = 5;
            continue;
        };
        if verb != "stop" && masked(node, n) {
            io.err(&format!("Failed to {what} {n}: Unit {n} is masked.\n"));
            code = 1;
            continue;
        }
        let up = u.running.get(n).is_some_and(|(s, _)| s == "active");
        match verb {
            "stop" => {
                u.running.remove(n);
            }
            "reload" => {
                if !k.reload {
                    io.err(&format!(
                        "Failed to reload {n}: Job type reload is not applicable for unit {n}.\n"
                    ));
                    code = 1;
                } else if !up {
                    io.err(&format!("{n} is not active, cannot reload.\n"));
                    code = 1;
                }
            }
            "try-restart" if !up => {}
            "start" if up => {}
            _ => {
                u.running.insert(n.clone(), ("active".to_owned(), now()));
            }
        }
    }
    code
}

fn enable(node: &Node, verb: &str, names: &[String], io: &mut Io) -> i32 {
    for n in names {
        let Some(k) = lookup(node, n) else {
            io.err(&format!(
                "Failed to {verb} unit: Unit file {n} does not exist.\n"
            ));
            return 1;
        };
        if masked(node, n) {
            io.err(&format!(
                "Failed to {verb} unit: Unit file {UNIT_DIR}/{n} is masked.\n"
            ));
            return 1;
        }
        if !k.def.installable {
            io.err("The unit files have no installation config (WantedBy=, RequiredBy=, Also=,\nAlias= settings in the [Install] section, and DefaultInstance= for template\nunits). This means they are not meant to be enabled using systemctl.\n \nPossible reasons for having this kind of units are:\n\u{2022} A unit may be statically enabled by being symlinked from another unit's\n  .wants/ or .requires/ directory.\n\u{2022} A unit's purpose may be to act as a helper for some other unit which has\n  a requirement dependency on it.\n\u{2022} A unit may be started when needed via activation (socket, path, timer,\n  D-Bus, udev, scripted systemctl call, ...).\n\u{2022} In case of template units, the unit is meant to be enabled with some\n  instance name specified.\n");
            continue;
        }
        if verb == "enable" {
            if let Some(m) = enable_link(node, n, &k.wanted_by) {
                io.err(&m);
            }
        } else {
            io.err(&disable_links(node, n));
        }
    }
    0
}

fn mask(node: &Node, verb: &str, names: &[String], io: &mut Io) -> i32 {
    for n in names {
        let abs = format!("{UNIT_DIR}/{n}");
        let p = node.path(&abs);
        if verb == "mask" {
            if masked(node, n) {
                continue;
            }
            if p.exists() || p.is_symlink() {
                io.err(&format!(
                    "Failed to mask unit: File {abs} already exists.\n"
                ));
                return 1;
            }
            let _ = std::fs::create_dir_all(node.path(UNIT_DIR));
            if let Err(e) = std::os::unix::fs::symlink("/dev/null", &p) {
                io.err(&format!("Failed to mask unit: {e}\n"));
                return 1;
            }
            io.err(&format!("Created symlink {abs} \u{2192} /dev/null.\n"));
        } else if masked(node, n) {
            let _ = std::fs::remove_file(&p);
            io.err(&format!("Removed {abs}.\n"));
        }
    }
    0
}

fn timestamp(secs: u64) -> String {
    if secs == 0 {
        return String::new();
    }
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd =
        ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][usize::try_from(days % 7).unwrap_or(0)];
    format!(
        "{wd} {y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn properties(node: &Node, u: &Units, n: &str) -> Vec<(&'static str, String)> {
    let Some(k) = lookup(node, n) else {
        let load = if masked(node, n) {
            "masked"
        } else {
            "not-found"
        };
        return vec![
            ("Id", n.to_owned()),
            ("Names", n.to_owned()),
            ("Description", n.to_owned()),
            ("LoadState", load.to_owned()),
            ("ActiveState", "inactive".to_owned()),
            ("SubState", "dead".to_owned()),
            ("FragmentPath", String::new()),
            (
                "UnitFileState",
                if load == "masked" {
                    "masked".to_owned()
                } else {
                    String::new()
                },
            ),
            ("MainPID", "0".to_owned()),
            ("ActiveEnterTimestamp", String::new()),
        ];
    };
    let (active, sub, since) = active_state(node, u, &k);
    let load = if masked(node, n) { "masked" } else { "loaded" };
    vec![
        ("Id", n.to_owned()),
        ("Names", n.to_owned()),
        ("Description", k.def.description.clone()),
        ("LoadState", load.to_owned()),
        ("ActiveState", active.to_owned()),
        ("SubState", sub.to_owned()),
        ("FragmentPath", k.fragment.clone()),
        ("UnitFileState", unit_file_state(node, &k).to_owned()),
        (
            "MainPID",
            if sub == "running" {
                pid_of(n).to_string()
            } else {
                "0".to_owned()
            },
        ),
        (
            "ActiveEnterTimestamp",
            if active == "active" {
                timestamp(since)
            } else {
                String::new()
            },
        ),
    ]
}

/// A stable made-up PID for a running unit.
fn pid_of(n: &str) -> u32 {
    300 + n.bytes().map(u32::from).sum::<u32>() % 5000
}

fn status(node: &Node, u: &Units, names: &[String], io: &mut Io) -> i32 {
    let (ver, _) = release(node);
    let pad = if ver == "18.04" { "   " } else { "     " };
    let mut code = 0;
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            io.out("\n");
        }
        let Some(k) = lookup(node, n) else {
            if masked(node, n) {
                io.out(&format!(
                    "\u{25cb} {n}\n{pad}Loaded: masked (Reason: Unit {n} is masked.)\n{pad}Active: inactive (dead)\n"
                ));
                code = code.max(3);
                continue;
            }
            io.err(&format!("Unit {n} could not be found.\n"));
            code = 4;
            continue;
        };
        let (active, sub, since) = active_state(node, u, &k);
        let bullet = match (ver, active) {
            ("22.04", "inactive") => "\u{25cb}",
            ("22.04", "failed") => "\u{00d7}",
            _ => "\u{25cf}",
        };
        let ufs = unit_file_state(node, &k);
        let preset = if k.def.installable {
            "enabled"
        } else {
            "disabled"
        };
        let loaded = if ufs == "masked" {
            format!("masked (Reason: Unit {n} is masked.)")
        } else {
            format!("loaded ({}; {ufs}; vendor preset: {preset})", k.fragment)
        };
        io.out(&format!(
            "{bullet} {n} - {}\n{pad}Loaded: {loaded}\n",
            k.def.description
        ));
        let ago = now().saturating_sub(since);
        let when = if since > 0 {
            format!(" since {}; {}s ago", timestamp(since), ago)
        } else {
            String::new()
        };
        match active {
            "activating" => io.out(&format!(
                "{pad}Active: activating (auto-restart) (Result: exit-code){when}\n"
            )),
            "inactive" => io.out(&format!("{pad}Active: inactive (dead)\n")),
            other => io.out(&format!("{pad}Active: {other} ({sub}){when}\n")),
        }
        if !k.def.docs.is_empty() {
            io.out(&format!("{pad}  Docs: {}\n", k.def.docs));
        }
        if sub == "running" {
            let pid = pid_of(n);
            let prog = k.def.exec.split_whitespace().next().unwrap_or("");
            let short = prog.rsplit('/').next().unwrap_or(prog);
            io.out(&format!(
                "{pad}Main PID: {pid} ({short})\n{pad}   Tasks: 8 (limit: 4915)\n{pad}  CGroup: /system.slice/{n}\n{pad}          \u{2514}\u{2500}{pid} {}\n",
                k.def.exec
            ));
        }
        if active != "active" {
            code = code.max(3);
        }
    }
    code
}

fn list_unit_files(node: &Node, o: &Opts, io: &mut Io) -> i32 {
    let mut names: Vec<String> = all_defs(node).into_iter().map(|d| d.name).collect();
    if let Ok(rd) = std::fs::read_dir(node.path(UNIT_DIR)) {
        for e in rd.filter_map(Result::ok) {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.contains('.') && !is_wants(&n) && !names.contains(&n) {
                names.push(n);
            }
        }
    }
    names.sort();
    names.dedup();
    let pats: Vec<glob::Pattern> = o
        .units
        .iter()
        .filter_map(|p| glob::Pattern::new(p).ok())
        .collect();
    let mut rows = Vec::new();
    for n in names {
        if let Some(t) = &o.unit_type
            && !n.ends_with(&format!(".{t}"))
        {
            continue;
        }
        if !pats.is_empty() && !pats.iter().any(|p| p.matches(&n)) {
            continue;
        }
        let (state, preset) = match lookup(node, &n) {
            Some(k) => (
                unit_file_state(node, &k),
                if k.def.installable { "enabled" } else { "-" },
            ),
            None if masked(node, &n) => ("masked", "enabled"),
            None => continue,
        };
        if let Some(s) = &o.state
            && !s.split(',').any(|x| x == state)
        {
            continue;
        }
        rows.push((n, state, preset));
    }
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(9);
    io.out(&format!(
        "{:<w$} {:<15} VENDOR PRESET\n",
        "UNIT FILE", "STATE"
    ));
    for (n, s, p) in &rows {
        io.out(&format!("{n:<w$} {s:<15} {p}\n"));
    }
    io.out(&format!("\n{} unit files listed.\n", rows.len()));
    0
}

fn list_units(node: &Node, u: &Units, o: &Opts, io: &mut Io) -> i32 {
    let mut rows = Vec::new();
    let mut defs = all_defs(node);
    defs.sort_by(|a, b| a.name.cmp(&b.name));
    for d in defs {
        let Some(k) = lookup(node, &d.name) else {
            continue;
        };
        let (active, sub, _) = active_state(node, u, &k);
        if active == "inactive" {
            continue;
        }
        if let Some(t) = &o.unit_type
            && !d.name.ends_with(&format!(".{t}"))
        {
            continue;
        }
        if let Some(s) = &o.state
            && !s.split(',').any(|x| x == active || x == sub)
        {
            continue;
        }
        rows.push((d.name.clone(), active, sub, k.def.description.clone()));
    }
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(4) + 2;
    io.out(&format!(
        "  {:<w$}LOAD   ACTIVE     SUB          DESCRIPTION\n",
        "UNIT"
    ));
    for (n, a, s, d) in &rows {
        io.out(&format!("  {n:<w$}loaded {a:<10} {s:<12} {d}\n"));
    }
    io.out(&format!(
        "\nLOAD   = Reflects whether the unit definition was properly loaded.\nACTIVE = The high-level unit activation state, i.e. generalization of SUB.\nSUB    = The low-level unit activation state, values depend on unit type.\n{} loaded units listed.\n",
        rows.len()
    ));
    0
}

#[cfg(test)]
mod tests {
    use super::super::packages::testnode::{add_kube_repo, fixture, node, sh, shape};

    #[test]
    fn unknown_units_fail_like_systemctl() {
        let (_d, n) = node();
        assert_eq!(
            sh(&n, "systemctl", "start foo"),
            (
                5,
                String::new(),
                "Failed to start foo.service: Unit foo.service not found.\n".to_owned()
            )
        );
        assert_eq!(
            sh(&n, "systemctl", "stop foo.service"),
            (
                5,
                String::new(),
                "Failed to stop foo.service: Unit foo.service not loaded.\n".to_owned()
            )
        );
        assert_eq!(
            sh(&n, "systemctl", "show -p LoadState foo").1,
            "LoadState=not-found\n"
        );
        assert_eq!(
            sh(&n, "systemctl", "is-active foo"),
            (3, "inactive\n".to_owned(), String::new())
        );
        assert_eq!(
            sh(&n, "systemctl", "is-enabled foo"),
            (
                1,
                String::new(),
                "Failed to get unit file state for foo.service: No such file or directory\n"
                    .to_owned()
            )
        );
        assert_eq!(
            sh(&n, "systemctl", "enable foo"),
            (
                1,
                String::new(),
                "Failed to enable unit: Unit file foo.service does not exist.\n".to_owned()
            )
        );
        assert_eq!(
            sh(&n, "systemctl", "status foo"),
            (
                4,
                String::new(),
                "Unit foo.service could not be found.\n".to_owned()
            )
        );
        assert_eq!(
            sh(&n, "systemctl", "frob x"),
            (1, String::new(), "Unknown command verb frob.\n".to_owned())
        );
        assert_eq!(
            sh(&n, "systemctl", "start"),
            (1, String::new(), "Too few arguments.\n".to_owned())
        );
    }

    #[test]
    fn base_units_start_stop_enable_disable() {
        let (_d, n) = node();
        assert_eq!(
            sh(&n, "systemctl", "is-active ssh"),
            (0, "active\n".to_owned(), String::new())
        );
        assert_eq!(
            sh(&n, "systemctl", "is-enabled sshd"),
            (0, "enabled\n".to_owned(), String::new())
        );
        assert_eq!(
            sh(&n, "systemctl", "is-enabled systemd-journald"),
            (0, "static\n".to_owned(), String::new())
        );
        let (code, out, _) = sh(&n, "systemctl", "status ssh");
        assert_eq!(code, 0);
        let got = shape(&out);
        let want = shape(&fixture("systemctl-status-ssh.txt"));
        assert_eq!(got[..2], want[..2], "{out}");
        assert!(
            got[2].starts_with("     Active: active (running) since "),
            "{out}"
        );
        assert!(out.contains("   Main PID: "), "{out}");
        assert_eq!(sh(&n, "systemctl", "stop cron").0, 0);
        assert_eq!(
            sh(&n, "systemctl", "is-active cron"),
            (3, "inactive\n".to_owned(), String::new())
        );
        let (code, out, _) = sh(&n, "systemctl", "status cron");
        assert_eq!(code, 3);
        let want = shape(&fixture("systemctl-status-stopped.txt"));
        assert_eq!(shape(&out)[..2], want[..2], "{out}");
        assert_eq!(shape(&out)[2], "     Active: inactive (dead)");
        let (code, _, err) = sh(&n, "systemctl", "disable --now ssh");
        assert_eq!(code, 0);
        assert_eq!(
            err,
            "Removed /etc/systemd/system/multi-user.target.wants/ssh.service.\n"
        );
        assert!(
            !n.path("/etc/systemd/system/multi-user.target.wants/ssh.service")
                .exists()
        );
        assert_eq!(
            sh(&n, "systemctl", "is-enabled ssh"),
            (1, "disabled\n".to_owned(), String::new())
        );
        assert_eq!(sh(&n, "systemctl", "is-active ssh").0, 3);
        let (code, _, err) = sh(&n, "systemctl", "enable --now ssh");
        assert_eq!(code, 0);
        assert_eq!(
            err,
            "Created symlink /etc/systemd/system/multi-user.target.wants/ssh.service \u{2192} /lib/systemd/system/ssh.service.\n"
        );
        assert_eq!(sh(&n, "systemctl", "is-active ssh").0, 0);
        assert_eq!(
            sh(&n, "systemctl", "enable ssh"),
            (0, String::new(), String::new())
        );
        assert_eq!(
            sh(
                &n,
                "systemctl",
                "show -p ActiveState -p SubState -p UnitFileState ssh"
            )
            .1,
            "ActiveState=active\nSubState=running\nUnitFileState=enabled\n"
        );
        assert_eq!(
            sh(&n, "systemctl", "show --property=LoadState --value ssh").1,
            "loaded\n"
        );
        assert_eq!(sh(&n, "systemctl", "reload ssh").0, 0);
        let (code, _, err) = sh(&n, "systemctl", "reload systemd-journald");
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "Failed to reload systemd-journald.service: Job type reload is not applicable for unit systemd-journald.service.\n"
        );
        assert_eq!(sh(&n, "systemctl", "daemon-reload").0, 0);
    }

    #[test]
    fn mask_unmask_and_custom_units() {
        let (_d, n) = node();
        let (code, _, err) = sh(&n, "systemctl", "mask cron");
        assert_eq!(code, 0);
        assert_eq!(
            err,
            "Created symlink /etc/systemd/system/cron.service \u{2192} /dev/null.\n"
        );
        assert_eq!(
            sh(&n, "systemctl", "is-enabled cron"),
            (1, "masked\n".to_owned(), String::new())
        );
        assert_eq!(
            sh(&n, "systemctl", "show -p LoadState cron").1,
            "LoadState=masked\n"
        );
        assert_eq!(
            sh(&n, "systemctl", "restart cron"),
            (
                1,
                String::new(),
                "Failed to restart cron.service: Unit cron.service is masked.\n".to_owned()
            )
        );
        assert_eq!(
            sh(&n, "systemctl", "unmask cron").2,
            "Removed /etc/systemd/system/cron.service.\n"
        );
        assert_eq!(sh(&n, "systemctl", "restart cron").0, 0);
        // A unit file written by a playbook.
        std::fs::write(
            n.path("/etc/systemd/system/gpu-init.service"),
            "[Unit]\nDescription=GPU init\n\n[Service]\nType=oneshot\nExecStart=/usr/local/bin/gpu-init\n\n[Install]\nWantedBy=multi-user.target\n",
        )
        .unwrap();
        assert_eq!(
            sh(&n, "systemctl", "is-enabled gpu-init"),
            (1, "disabled\n".to_owned(), String::new())
        );
        let (code, _, err) = sh(&n, "systemctl", "enable --now gpu-init.service");
        assert_eq!(code, 0);
        assert_eq!(
            err,
            "Created symlink /etc/systemd/system/multi-user.target.wants/gpu-init.service \u{2192} /etc/systemd/system/gpu-init.service.\n"
        );
        assert_eq!(
            sh(&n, "systemctl", "show -p SubState gpu-init").1,
            "SubState=exited\n"
        );
        let (code, out, _) = sh(&n, "systemctl", "list-unit-files --type=service gpu*");
        assert_eq!(code, 0);
        assert_eq!(
            out,
            "UNIT FILE        STATE           VENDOR PRESET\ngpu-init.service enabled         enabled\n\n1 unit files listed.\n"
        );
        let (code, _, err) = sh(&n, "systemctl", "mask gpu-init");
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "Failed to mask unit: File /etc/systemd/system/gpu-init.service already exists.\n"
        );
    }

    #[test]
    fn kubelet_restarts_until_the_node_joins() {
        let (_d, n) = node();
        assert_eq!(
            sh(&n, "systemctl", "show -p LoadState kubelet").1,
            "LoadState=not-found\n"
        );
        add_kube_repo(&n, 30);
        assert_eq!(sh(&n, "apt-get", "install -y kubelet").0, 0);
        assert_eq!(sh(&n, "systemctl", "is-enabled kubelet").1, "enabled\n");
        assert_eq!(
            sh(&n, "systemctl", "is-active kubelet"),
            (3, "activating\n".to_owned(), String::new())
        );
        let (code, out, _) = sh(&n, "systemctl", "status kubelet");
        assert_eq!(code, 3);
        assert!(
            out.contains("     Active: activating (auto-restart) (Result: exit-code) since "),
            "{out}"
        );
        let nodes = n.cluster_dir().join("nodes");
        std::fs::create_dir_all(&nodes).unwrap();
        std::fs::write(nodes.join("node01.json"), "{}").unwrap();
        assert_eq!(
            sh(&n, "systemctl", "is-active kubelet"),
            (0, "active\n".to_owned(), String::new())
        );
        // Stopped stays stopped, joined or not; removing the package forgets the unit.
        assert_eq!(sh(&n, "systemctl", "stop kubelet").0, 0);
        assert_eq!(sh(&n, "systemctl", "is-active kubelet").1, "inactive\n");
        assert_eq!(sh(&n, "systemctl", "start kubelet").0, 0);
        assert_eq!(sh(&n, "apt-get", "purge -y kubelet").0, 0);
        assert_eq!(
            sh(&n, "systemctl", "show -p LoadState kubelet").1,
            "LoadState=not-found\n"
        );
        assert!(
            !n.path("/etc/systemd/system/multi-user.target.wants/kubelet.service")
                .exists()
        );
    }
}
