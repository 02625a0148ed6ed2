//! Connection settings of one host, resolved from the inventory, `~/.ssh/config` and the
//! command line, in Ansible's order of precedence.
//!
//! Precedence, highest first: inventory connection variables (`ansible_host`, `ansible_port`,
//! `ansible_user`, `ansible_ssh_private_key_file`, ...), then command-line options (`-u`,
//! `--private-key`), then the user's ssh config for the host (`HostName`, `Port`, `User`,
//! `IdentityFile`, `ProxyJump`), then defaults (port 22, the local user). This matches what
//! Ansible does when it hands `ansible_host` to the OpenSSH client.
//!
//! The ssh config is parsed by the `ssh2-config` crate (OpenSSH's `Host` matching and
//! first-value-wins rules), not by us. `ProxyJump` through one jump host is supported; a chain
//! (`a,b`) is refused with a clear message. `ansible_ssh_common_args`/`ansible_ssh_extra_args`
//! are ignored with a warning, since kamo does not run the OpenSSH client.

use std::path::{Path, PathBuf};

use serde_json::Value;
use ssh2_config::{ParseRule, SshConfig};

use super::{Phase, TransportError};
use crate::inventory::Vars;
use crate::secret::Secret;

/// A jump host (ssh config `ProxyJump`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Jump {
    pub address: String,
    pub port: u16,
    pub user: String,
    pub identity_files: Vec<PathBuf>,
}

/// Everything needed to reach one inventory host.
#[derive(Debug, Clone)]
pub struct Target {
    /// The inventory name, used in every message.
    pub name: String,
    /// The address or DNS name to connect to, and the one looked up in `known_hosts`.
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Explicit identity files (inventory, `--private-key`, ssh config); empty = defaults.
    pub identity_files: Vec<PathBuf>,
    pub password: Option<Secret<String>>,
    pub become_user: Option<String>,
    pub become_password: Option<Secret<String>>,
    pub jump: Option<Jump>,
    /// `ansible_connection=local`: run on the workstation.
    pub local: bool,
    /// `known_hosts` files named by `-o UserKnownHostsFile=...` in `ansible_ssh_common_args`
    /// or `ansible_ssh_extra_args` (how Ansible inventories point at a cluster's own file).
    pub known_hosts_files: Vec<PathBuf>,
}

/// Command-line settings that apply to every host unless the inventory says otherwise.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub user: Option<String>,
    pub private_key: Option<PathBuf>,
    pub password: Option<Secret<String>>,
    pub become_user: Option<String>,
    pub become_password: Option<Secret<String>>,
}

/// The user's ssh config, loaded once.
#[derive(Default)]
pub struct SshConfigFile {
    config: Option<SshConfig>,
}

impl SshConfigFile {
    /// Reads `path` if it exists; unknown or unsupported options are tolerated (kamo uses only
    /// a few of them), a malformed file is an error.
    pub fn load(path: Option<&Path>) -> Result<Self, crate::error::Error> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(crate::error::Error::io("cannot read ssh config", path, e)),
        };
        let mut reader = std::io::BufReader::new(file);
        let mut cfg = SshConfig::default();
        if let Some(home) = std::env::home_dir() {
            cfg = cfg.home_dir(home);
        }
        let cfg = cfg
            .parse(
                &mut reader,
                ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS,
            )
            .map_err(|e| {
                crate::error::Error::parse(crate::error::Located::new(
                    path,
                    0,
                    format!("cannot parse ssh config: {e}"),
                ))
            })?;
        Ok(Self { config: Some(cfg) })
    }

    fn query(&self, host: &str) -> Option<ssh2_config::HostParams> {
        self.config.as_ref().map(|c| c.query(host))
    }
}

/// The current user's name, OpenSSH's default login.
fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".to_owned())
}

/// A variable as a string: strings as they are, numbers and booleans printed.
fn var_str(vars: &Vars, names: &[&str]) -> Result<Option<String>, String> {
    for n in names {
        match vars.get(*n) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => {
                if s.contains("{{") || s.contains("{%") {
                    return Err(format!(
                        "{n} is a template ({s:?}); templated connection variables are not supported yet"
                    ));
                }
                return Ok(Some(s.clone()));
            }
            Some(Value::Number(x)) => return Ok(Some(x.to_string())),
            Some(Value::Bool(b)) => return Ok(Some(b.to_string())),
            Some(_) => return Err(format!("{n} must be a string, not a list or mapping")),
        }
    }
    Ok(None)
}

/// Expands a leading `~/` against the home directory, as OpenSSH and Ansible do.
#[must_use]
pub fn expand_tilde(p: &str) -> PathBuf {
    if let (Some(rest), Some(home)) = (p.strip_prefix("~/"), std::env::home_dir()) {
        home.join(rest)
    } else {
        PathBuf::from(p)
    }
}

impl Target {
    /// Resolves the host's connection settings. Errors are in the `Resolve` phase and make the
    /// host unreachable without any network traffic.
    pub fn resolve(
        name: &str,
        vars: &Vars,
        defaults: &Defaults,
        ssh_config: &SshConfigFile,
    ) -> Result<Self, TransportError> {
        let err = |m: String| TransportError::new(Phase::Resolve, m);
        let mut known_hosts_files = Vec::new();
        for key in [
            "ansible_ssh_common_args",
            "ansible_ssh_extra_args",
            "ansible_ssh_args",
        ] {
            let Some(args) = var_str(vars, &[key]).map_err(err)? else {
                continue;
            };
            let (files, ignored) = ssh_args_known_hosts(&args);
            known_hosts_files.extend(files.iter().map(|f| expand_tilde(f)));
            if !ignored.is_empty() {
                tracing::warn!(
                    "{name}: {key}: {} ignored: kamo does not run the OpenSSH client (only -o UserKnownHostsFile is read)",
                    ignored.join(" ")
                );
            }
        }
        let connection = var_str(vars, &["ansible_connection"]).map_err(err)?;
        let local = match connection.as_deref() {
            None | Some("ssh" | "smart" | "paramiko" | "ansible.builtin.ssh") => false,
            Some("local" | "ansible.builtin.local") => true,
            Some(other) => {
                return Err(err(format!(
                    "ansible_connection={other} is not supported (use ssh or local)"
                )));
            }
        };
        let host = var_str(vars, &["ansible_host", "ansible_ssh_host"])
            .map_err(err)?
            .unwrap_or_else(|| name.to_owned());
        let params = ssh_config.query(&host);
        if known_hosts_files.is_empty() {
            // The ssh config's `UserKnownHostsFile` (the inventory's `-o` wins, as on
            // OpenSSH's command line); a path with `%` tokens is not expanded and not used.
            let files = params
                .as_ref()
                .and_then(|p| p.unsupported_fields.get("userknownhostsfile"));
            for f in files.into_iter().flatten() {
                if f.contains('%') {
                    tracing::warn!(
                        "{name}: ssh config UserKnownHostsFile {f}: % tokens are not supported; not read"
                    );
                } else {
                    known_hosts_files.push(expand_tilde(f));
                }
            }
        }
        let address = params
            .as_ref()
            .and_then(|p| p.host_name.clone())
            .unwrap_or_else(|| host.clone());
        let port = match var_str(vars, &["ansible_port", "ansible_ssh_port"]).map_err(err)? {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| err(format!("ansible_port={p:?} is not a port number")))?,
            None => params.as_ref().and_then(|p| p.port).unwrap_or(22),
        };
        let user = var_str(vars, &["ansible_user", "ansible_ssh_user"])
            .map_err(err)?
            .or_else(|| defaults.user.clone())
            .or_else(|| params.as_ref().and_then(|p| p.user.clone()))
            .unwrap_or_else(local_user);
        let mut identity_files = Vec::new();
        if let Some(k) = var_str(
            vars,
            &["ansible_ssh_private_key_file", "ansible_private_key_file"],
        )
        .map_err(err)?
        {
            identity_files.push(expand_tilde(&k));
        } else if let Some(k) = &defaults.private_key {
            identity_files.push(k.clone());
        } else if let Some(files) = params.as_ref().and_then(|p| p.identity_file.clone()) {
            identity_files.extend(files);
        }
        let password = var_str(
            vars,
            &[
                "ansible_password",
                "ansible_ssh_pass",
                "ansible_ssh_password",
            ],
        )
        .map_err(err)?
        .map(Secret::new)
        .or_else(|| defaults.password.clone());
        let become_user = var_str(vars, &["ansible_become_user"])
            .map_err(err)?
            .or_else(|| defaults.become_user.clone());
        let become_password = var_str(
            vars,
            &[
                "ansible_become_password",
                "ansible_become_pass",
                "ansible_sudo_pass",
            ],
        )
        .map_err(err)?
        .map(Secret::new)
        .or_else(|| defaults.become_password.clone());
        let jump = match params.as_ref().and_then(|p| p.proxy_jump.clone()) {
            None => None,
            Some(hops) => resolve_jump(&hops, ssh_config).map_err(err)?,
        };
        Ok(Self {
            name: name.to_owned(),
            address,
            port,
            user,
            identity_files,
            password,
            become_user,
            become_password,
            jump,
            local,
            known_hosts_files,
        })
    }
}

/// The `UserKnownHostsFile` values in an OpenSSH argument string, and the other words.
fn ssh_args_known_hosts(args: &str) -> (Vec<String>, Vec<String>) {
    let words = shlex::split(args).unwrap_or_else(|| vec![args.to_owned()]);
    let mut files = Vec::new();
    let mut other = Vec::new();
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        let opt = if w == "-o" {
            it.next().unwrap_or_default()
        } else if let Some(rest) = w.strip_prefix("-o") {
            rest.to_owned()
        } else {
            other.push(w);
            continue;
        };
        let (k, v) = opt
            .split_once(['=', ' '])
            .map_or((opt.as_str(), ""), |(k, v)| (k.trim(), v.trim()));
        if k.eq_ignore_ascii_case("UserKnownHostsFile") && !v.is_empty() {
            files.extend(v.split_whitespace().map(str::to_owned));
        } else {
            other.push(format!("-o {opt}"));
        }
    }
    (files, other)
}

/// Parses a `ProxyJump` value: `[user@]host[:port]`, itself resolved through the ssh config.
fn resolve_jump(hops: &[String], ssh_config: &SshConfigFile) -> Result<Option<Jump>, String> {
    let hops: Vec<&str> = hops
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    match hops.as_slice() {
        [] | ["none"] => Ok(None),
        [one] => {
            let spec = one.strip_prefix("ssh://").unwrap_or(one);
            let (user, rest) = match spec.rsplit_once('@') {
                Some((u, r)) => (Some(u.to_owned()), r),
                None => (None, spec),
            };
            let (host, port) =
                match rest.rsplit_once(':') {
                    Some((h, p)) if !h.contains(':') => (
                        h,
                        Some(p.parse::<u16>().map_err(|_| {
                            format!("ProxyJump {one:?}: {p:?} is not a port number")
                        })?),
                    ),
                    _ => (rest, None),
                };
            let params = ssh_config.query(host);
            if params
                .as_ref()
                .and_then(|p| p.proxy_jump.as_ref())
                .is_some_and(|j| j.iter().any(|x| x != "none"))
            {
                return Err(format!(
                    "ProxyJump {one:?}: the jump host has a ProxyJump of its own; kamo supports one jump host"
                ));
            }
            Ok(Some(Jump {
                address: params
                    .as_ref()
                    .and_then(|p| p.host_name.clone())
                    .unwrap_or_else(|| host.to_owned()),
                port: port
                    .or_else(|| params.as_ref().and_then(|p| p.port))
                    .unwrap_or(22),
                user: user
                    .or_else(|| params.as_ref().and_then(|p| p.user.clone()))
                    .unwrap_or_else(local_user),
                identity_files: params.and_then(|p| p.identity_file).unwrap_or_default(),
            }))
        }
        many => Err(format!(
            "ProxyJump through {} hosts ({}) is not supported; kamo supports one jump host",
            many.len(),
            many.join(",")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: serde_json::Value) -> Vars {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn user_known_hosts_file_comes_from_ssh_common_args() {
        let (files, other) = ssh_args_known_hosts(
            "-o UserKnownHostsFile=/lab/known_hosts -oStrictHostKeyChecking=no -C",
        );
        assert_eq!(files, ["/lab/known_hosts"]);
        assert_eq!(other, ["-o StrictHostKeyChecking=no", "-C"]);
        let (files, _) = ssh_args_known_hosts("-o 'UserKnownHostsFile /a /b'");
        assert_eq!(files, ["/a", "/b"]);
        let t = Target::resolve(
            "n1",
            &vars(json!({"ansible_ssh_common_args": "-o UserKnownHostsFile=/lab/kh"})),
            &Defaults::default(),
            &SshConfigFile::default(),
        )
        .unwrap();
        assert_eq!(t.known_hosts_files, [PathBuf::from("/lab/kh")]);
    }

    fn config(text: &str) -> SshConfigFile {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config");
        std::fs::write(&p, text).unwrap();
        SshConfigFile::load(Some(&p)).unwrap()
    }

    /// `UserKnownHostsFile` of the ssh config names the host's file when the inventory
    /// names none; the inventory's `-o` wins; `%` tokens are not expanded, so not used.
    #[test]
    fn user_known_hosts_file_comes_from_the_ssh_config_unless_the_inventory_names_one() {
        let cfg = config(
            "Host n1\n  UserKnownHostsFile /lab/cfg_kh /lab/second\nHost n2\n  UserKnownHostsFile /x/%h\n",
        );
        let t = Target::resolve("n1", &vars(json!({})), &Defaults::default(), &cfg).unwrap();
        assert_eq!(
            t.known_hosts_files,
            [PathBuf::from("/lab/cfg_kh"), PathBuf::from("/lab/second")]
        );
        let t = Target::resolve(
            "n1",
            &vars(json!({"ansible_ssh_common_args": "-o UserKnownHostsFile=/lab/kh"})),
            &Defaults::default(),
            &cfg,
        )
        .unwrap();
        assert_eq!(t.known_hosts_files, [PathBuf::from("/lab/kh")]);
        let t = Target::resolve("n2", &vars(json!({})), &Defaults::default(), &cfg).unwrap();
        assert!(t.known_hosts_files.is_empty());
    }

    #[test]
    fn inventory_beats_cli_beats_ssh_config() {
        let cfg = config(
            "Host n1\n  HostName 10.1.1.1\n  Port 2022\n  User cfguser\n  IdentityFile /keys/cfg\n",
        );
        let d = Defaults {
            user: Some("cliuser".into()),
            ..Defaults::default()
        };
        let t = Target::resolve("n1", &vars(json!({})), &d, &cfg).unwrap();
        assert_eq!(
            (t.address.as_str(), t.port, t.user.as_str()),
            ("10.1.1.1", 2022, "cliuser")
        );
        assert_eq!(t.identity_files, vec![PathBuf::from("/keys/cfg")]);
        let t = Target::resolve(
            "n1",
            &vars(json!({"ansible_port": 2200, "ansible_user": "inv", "ansible_ssh_private_key_file": "/keys/inv"})),
            &d,
            &cfg,
        )
        .unwrap();
        assert_eq!((t.port, t.user.as_str()), (2200, "inv"));
        assert_eq!(t.identity_files, vec![PathBuf::from("/keys/inv")]);
    }

    #[test]
    fn ansible_host_is_what_ssh_config_matches() {
        let cfg = config("Host 10.0.0.5\n  Port 2201\n");
        let t = Target::resolve(
            "gpu1",
            &vars(json!({"ansible_host": "10.0.0.5"})),
            &Defaults::default(),
            &cfg,
        )
        .unwrap();
        assert_eq!((t.address.as_str(), t.port), ("10.0.0.5", 2201));
    }

    #[test]
    fn proxy_jump_one_hop_and_refused_chain() {
        let cfg = config(
            "Host bastion\n  HostName 10.9.9.9\n  User jumper\nHost inner\n  ProxyJump bastion:2222\nHost deep\n  ProxyJump a,b\n",
        );
        let t = Target::resolve("inner", &vars(json!({})), &Defaults::default(), &cfg).unwrap();
        let j = t.jump.unwrap();
        assert_eq!(
            (j.address.as_str(), j.port, j.user.as_str()),
            ("10.9.9.9", 2222, "jumper")
        );
        let e = Target::resolve("deep", &vars(json!({})), &Defaults::default(), &cfg).unwrap_err();
        assert!(e.message.contains("one jump host"), "{e}");
    }

    #[test]
    fn bad_values_are_resolve_errors() {
        let cfg = SshConfigFile::default();
        let e = Target::resolve(
            "n",
            &vars(json!({"ansible_port": "ssh"})),
            &Defaults::default(),
            &cfg,
        )
        .unwrap_err();
        assert_eq!(e.phase, Phase::Resolve);
        assert!(e.message.contains("not a port number"));
        let e = Target::resolve(
            "n",
            &vars(json!({"ansible_connection": "winrm"})),
            &Defaults::default(),
            &cfg,
        )
        .unwrap_err();
        assert!(e.message.contains("winrm"));
        let t = Target::resolve(
            "n",
            &vars(json!({"ansible_connection": "local", "ansible_password": "pw"})),
            &Defaults::default(),
            &cfg,
        )
        .unwrap();
        assert!(t.local);
        assert!(!format!("{t:?}").contains("pw\""));
    }
}
