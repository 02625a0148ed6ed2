//! `apt_key` and `apt_repository`.
//!
//! `apt_key`: the key text (`data`) or a key file on the host (`file`) is written to `keyring`,
//! or, without `keyring`, to `/etc/apt/trusted.gpg.d/ID.gpg` (trusted for every repository,
//! as `apt-key add` did). An ASCII-armoured key is dearmoured with `gpg --dearmor` unless the
//! keyring ends in `.asc` (apt reads both); without gpg that is an error. The file is replaced
//! only when its bytes differ. `state: absent` removes the keyring file. `id` names the file;
//! it is not checked against the key. Refused: `url` (kamo does not download keys yet) and
//! `keyserver`.
//!
//! `apt_repository`: `repo` (a one-line `deb`/`deb-src` entry; `ppa:` is refused), `state`,
//! `filename` (default derived from the URL as Ansible does: `download_docker_com_linux_ubuntu`),
//! `mode` (default 0644, for a new file), `update_cache` (default yes: `apt-get update` when
//! something changed). Present: unchanged when an identical line (whitespace-normalised) is in
//! `/etc/apt/sources.list` or any `/etc/apt/sources.list.d/*.list`; else the line is appended
//! to `/etc/apt/sources.list.d/FILENAME.list`. Absent: the line is removed from all of those
//! files, and a `.list` file left empty is deleted.

use serde_json::{Map, Value};

use super::sh::{arg_bool, arg_str, known_args, q};
use super::syslib::{arg_choice, arg_req, js, sys_prelude};
use super::{ArgError, Flags, RemoteStep};
use crate::playbook::model::Module;

pub fn build(
    module: Module,
    args: &Map<String, Value>,
    flags: Flags,
) -> Result<RemoteStep, ArgError> {
    if module == Module::AptKey {
        apt_key(args, flags)
    } else {
        apt_repository(args, flags, "")
    }
}

fn apt_key(args: &Map<String, Value>, flags: Flags) -> Result<RemoteStep, ArgError> {
    let m = Module::AptKey;
    known_args(
        m,
        args,
        &[
            "data",
            "file",
            "keyring",
            "id",
            "url",
            "keyserver",
            "state",
            "validate_certs",
        ],
    )?;
    if arg_str(m, args, "url")?.is_some() {
        return Err(ArgError::new(
            m,
            "`url` is not supported yet (kamo does not download keys); fetch the key with \
             `get_url` to /etc/apt/keyrings/NAME.asc (and use `signed-by=` in the repository \
             line), or give the key text in `data` or a file on the host in `file`",
        ));
    }
    if arg_str(m, args, "keyserver")?.is_some() {
        return Err(ArgError::new(
            m,
            "`keyserver` is not supported; use `data` or `file`",
        ));
    }
    let present = arg_choice(m, args, "state", &["present", "absent"], Some("present"))?.as_deref()
        == Some("present");
    let keyring = match (arg_str(m, args, "keyring")?, arg_str(m, args, "id")?) {
        (Some(k), _) => k,
        (None, Some(id)) if id.chars().all(|c| c.is_ascii_alphanumeric()) => {
            format!("/etc/apt/trusted.gpg.d/{id}.gpg")
        }
        (None, Some(id)) => return Err(ArgError::new(m, format!("{id:?} is not a key id"))),
        (None, None) => {
            return Err(ArgError::new(
                m,
                "give `keyring` (a path) or `id` to name the key file",
            ));
        }
    };
    if !keyring.starts_with('/') {
        return Err(ArgError::new(m, "`keyring` must be an absolute path"));
    }
    let k = q(&keyring);
    let mut s = sys_prelude(flags);
    s.push_str(&format!(
        "kamo_extra=\",\\\"keyring\\\":\"{}\n",
        q(&js(&keyring))
    ));
    if !present {
        s.push_str(&format!("kamo_remove {k} || true\nkamo_done\n"));
        return Ok(RemoteStep {
            script: s,
            summary: vec![format!("remove {keyring} (if it exists)")],
        });
    }
    let (src, shown) = match (arg_str(m, args, "data")?, arg_str(m, args, "file")?) {
        (Some(d), None) => (
            format!("printf '%s\\n' {} > \"$kamo_errf.key\"\n", q(d.trim_end())),
            "the key in `data`".to_owned(),
        ),
        (None, Some(f)) => (
            format!(
                "kamo_must {} cp {} \"$kamo_errf.key\"\n",
                q(&format!("read {f}")),
                q(&f)
            ),
            f,
        ),
        _ => {
            return Err(ArgError::new(
                m,
                "give exactly one of `data` or `file` (or `url`)",
            ));
        }
    };
    let asc = std::path::Path::new(&keyring)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("asc"));
    s.push_str("trap 'rm -f \"$kamo_errf\" \"$kamo_errf.new\" \"$kamo_errf.key\"' EXIT\n");
    s.push_str(&src);
    s.push_str(&format!(
        "if ! grep -q -e '-----BEGIN PGP PUBLIC KEY BLOCK-----' \"$kamo_errf.key\" || {asc}; then cp \"$kamo_errf.key\" \"$kamo_errf.new\"\n\
         elif command -v gpg >/dev/null 2>&1; then rm -f \"$kamo_errf.new\"; kamo_must 'gpg --dearmor' gpg --batch --yes --dearmor -o \"$kamo_errf.new\" \"$kamo_errf.key\"\n\
         else kamo_fail {}; fi\n\
         kamo_put {k} 0644 || true\nkamo_done\n",
        q("apt_key: the key is ASCII-armoured and gpg is not installed to dearmor it; install gnupg or use a keyring path ending in .asc")
    ));
    Ok(RemoteStep {
        script: s,
        summary: vec![format!(
            "{keyring}: {shown}{} (if different)",
            if asc { "" } else { ", dearmored" }
        )],
    })
}

/// Ansible's default file name for a repository line.
fn suggest_filename(repo: &str) -> String {
    let mut line = String::new();
    let mut depth = 0;
    for c in repo.chars() {
        match c {
            '[' => depth += 1,
            ']' if depth > 0 => depth -= 1,
            _ if depth == 0 => line.push(c),
            _ => {}
        }
    }
    let first = line
        .split_whitespace()
        .find(|p| *p != "deb" && *p != "deb-src")
        .unwrap_or("");
    let first = first.split_once("://").map_or(first, |(_, r)| r);
    let first = first.rsplit_once('@').map_or(first, |(_, r)| r);
    first
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

fn apt_repository(
    args: &Map<String, Value>,
    flags: Flags,
    root: &str,
) -> Result<RemoteStep, ArgError> {
    let m = Module::AptRepository;
    known_args(
        m,
        args,
        &[
            "repo",
            "state",
            "filename",
            "mode",
            "update_cache",
            "update-cache",
            "codename",
            "install_python_apt",
            "validate_certs",
        ],
    )?;
    let repo = arg_req(m, args, &["repo"])?;
    if repo.starts_with("ppa:") {
        return Err(ArgError::new(
            m,
            "PPAs are not supported; give the deb line and its key",
        ));
    }
    let repo = repo.split_whitespace().collect::<Vec<_>>().join(" ");
    if !(repo.starts_with("deb ") || repo.starts_with("deb-src ")) {
        return Err(ArgError::new(
            m,
            format!("`repo` must be a `deb` or `deb-src` line, not {repo:?}"),
        ));
    }
    let present = arg_choice(m, args, "state", &["present", "absent"], Some("present"))?.as_deref()
        == Some("present");
    let filename = match arg_str(m, args, "filename")? {
        Some(f) => f.trim_end_matches(".list").to_owned(),
        None => suggest_filename(&repo),
    };
    if filename.is_empty() || filename.contains('/') {
        return Err(ArgError::new(m, format!("bad `filename` {filename:?}")));
    }
    let mode = arg_str(m, args, "mode")?.unwrap_or_else(|| "0644".to_owned());
    if !mode.chars().all(|c| c.is_digit(8)) {
        return Err(ArgError::new(m, "`mode` must be octal digits"));
    }
    let update =
        arg_bool(m, args, "update_cache", true)? && arg_bool(m, args, "update-cache", true)?;
    let dir = format!("{root}/etc/apt/sources.list.d");
    let file = format!("{dir}/{filename}.list");
    let mut summary = vec![if present {
        format!("{file}: {repo} (unless already in a sources file)")
    } else {
        format!("remove {repo} from /etc/apt/sources.list and {dir}/*.list")
    }];
    let mut s = sys_prelude(flags);
    if flags.diff {
        s.push_str("kamo_diff=true\n");
    }
    s.push_str(&format!(
        "R={} ; export R\n\
         kamo_extra=\",\\\"repo\\\":\"{}\",\\\"state\\\":\\\"{}\\\"\"\n\
         kamo_norm='{{ l = $0; gsub(/[ \\t]+/, \" \", l); sub(/^ /, \"\", l); sub(/ $/, \"\", l) }}'\n\
         kamo_has() {{ awk \"$kamo_norm\"' l == ENVIRON[\"R\"] {{ f = 1 }} END {{ exit !f }}' \"$1\" 2>/dev/null; }}\n",
        q(&repo),
        q(&js(&repo)),
        if present { "present" } else { "absent" }
    ));
    let all = format!(
        "{} {}/*.list",
        q(&format!("{root}/etc/apt/sources.list")),
        q(&dir)
    );
    if present {
        s.push_str(&format!(
            "kamo_found=false\nfor kamo_s in {all}; do [ -f \"$kamo_s\" ] && kamo_has \"$kamo_s\" && kamo_found=true; done\n\
             if ! $kamo_found; then\n\
             {{ awk '{{ print }}' {f} 2>/dev/null; printf '%s\\n' \"$R\"; }} > \"$kamo_errf.new\"\n\
             kamo_put {f} {mode} || true\nfi\n",
            f = q(&file),
        ));
    } else {
        s.push_str(&format!(
            "for kamo_s in {all}; do\n\
             [ -f \"$kamo_s\" ] && kamo_has \"$kamo_s\" || continue\n\
             awk \"$kamo_norm\"' l != ENVIRON[\"R\"] {{ print }}' \"$kamo_s\" > \"$kamo_errf.new\"\n\
             case \"$kamo_s\" in *.list) if [ ! -s \"$kamo_errf.new\" ]; then kamo_remove \"$kamo_s\"; continue; fi ;; esac\n\
             kamo_put \"$kamo_s\" 0644 || true\n\
             done\n",
        ));
    }
    if update {
        summary.push("apt-get update (if changed)".to_owned());
        if !flags.check {
            s.push_str("if $kamo_changed; then DEBIAN_FRONTEND=noninteractive; export DEBIAN_FRONTEND; kamo_must 'apt-get update' apt-get update -q; fi\n");
        }
    }
    s.push_str("kamo_done\n");
    Ok(RemoteStep { script: s, summary })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::modules::syslib::testkit::{CHECK, Sandbox, args};
    use serde_json::json;

    const KEY: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBFit2ioBEAC\n-----END PGP PUBLIC KEY BLOCK-----";

    #[test]
    fn filenames_as_ansible_derives_them() {
        assert_eq!(
            suggest_filename(
                "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.gpg] https://download.docker.com/linux/ubuntu jammy stable"
            ),
            "download_docker_com_linux_ubuntu"
        );
        assert_eq!(
            suggest_filename("deb http://user:pw@ppa.example.org/x/ y main"),
            "ppa_example_org_x"
        );
    }

    #[test]
    fn repository_added_once_and_removed() {
        let sb = Sandbox::new();
        sb.stub("apt-get", "exit 0");
        let root = sb.t();
        sb.write(
            "etc/apt/sources.list",
            "deb http://archive.ubuntu.com/ubuntu jammy main\n",
        );
        let repo = "deb [signed-by=/k.gpg]  https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /";
        let a = args(json!({"repo": repo}));
        let chk = sb.run(
            Module::AptRepository,
            &apt_repository(&a, CHECK, &root).unwrap(),
        );
        assert!(chk.changed, "{chk:?}");
        assert!(sb.take_log().is_empty());
        let step = apt_repository(&a, Flags::default(), &root).unwrap();
        let rel = "etc/apt/sources.list.d/pkgs_k8s_io_core_stable_v1_30_deb.list";
        assert_eq!(
            step.summary[0],
            format!(
                "{root}/{rel}: deb [signed-by=/k.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ / (unless already in a sources file)"
            )
        );
        let r = sb.run(Module::AptRepository, &step);
        assert!(r.changed && !r.failed, "{r:?}");
        assert_eq!(
            sb.read(rel).unwrap(),
            "deb [signed-by=/k.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n"
        );
        assert_eq!(sb.take_log(), "apt-get update -q\n");
        assert!(!sb.run(Module::AptRepository, &step).changed);
        // Already in sources.list (other spacing): no change.
        let a = args(
            json!({"repo": "deb  http://archive.ubuntu.com/ubuntu jammy main", "filename": "x"}),
        );
        assert!(
            !sb.run(
                Module::AptRepository,
                &apt_repository(&a, Flags::default(), &root).unwrap()
            )
            .changed
        );
        let gone = args(json!({"repo": repo, "state": "absent", "update_cache": false}));
        let step = apt_repository(&gone, Flags::default(), &root).unwrap();
        assert!(sb.run(Module::AptRepository, &step).changed);
        assert!(sb.read(rel).is_none());
        assert!(!sb.run(Module::AptRepository, &step).changed);
        assert!(sb.take_log().is_empty());
        assert!(
            build(
                Module::AptRepository,
                &args(json!({"repo": "ppa:x/y"})),
                Flags::default()
            )
            .is_err()
        );
    }

    #[test]
    fn keys_written_dearmored_and_removed() {
        let sb = Sandbox::new();
        sb.stub("gpg", r#"grep -v -e ----- "$6" > "$5""#);
        let k = format!("{}/keyrings/docker.gpg", sb.t());
        let a = args(json!({"data": KEY, "keyring": k}));
        assert!(
            sb.run(Module::AptKey, &build(Module::AptKey, &a, CHECK).unwrap())
                .changed
        );
        assert!(sb.read("keyrings/docker.gpg").is_none());
        let step = build(Module::AptKey, &a, Flags::default()).unwrap();
        let r = sb.run(Module::AptKey, &step);
        assert!(r.changed && !r.failed, "{r:?}");
        assert_eq!(
            sb.read("keyrings/docker.gpg").unwrap(),
            "\nmQINBFit2ioBEAC\n"
        );
        assert!(!sb.run(Module::AptKey, &step).changed);
        let asc = format!("{}/keyrings/x.asc", sb.t());
        sb.write("key.asc", KEY);
        let step = build(
            Module::AptKey,
            &args(json!({"file": format!("{}/key.asc", sb.t()), "keyring": asc})),
            Flags::default(),
        )
        .unwrap();
        assert!(sb.run(Module::AptKey, &step).changed);
        assert_eq!(sb.read("keyrings/x.asc").unwrap(), KEY);
        let gone = build(
            Module::AptKey,
            &args(json!({"keyring": k, "state": "absent"})),
            Flags::default(),
        )
        .unwrap();
        assert!(sb.run(Module::AptKey, &gone).changed);
        assert!(!sb.run(Module::AptKey, &gone).changed);
        let e = build(
            Module::AptKey,
            &args(json!({"url": "https://x/key.gpg", "keyring": k})),
            Flags::default(),
        )
        .unwrap_err();
        assert!(e.message.contains("get_url"));
        assert!(
            build(
                Module::AptKey,
                &args(json!({"data": KEY})),
                Flags::default()
            )
            .is_err()
        );
        let step = build(
            Module::AptKey,
            &args(json!({"data": KEY, "id": "ABCD1234"})),
            Flags::default(),
        )
        .unwrap();
        assert_eq!(
            step.summary,
            ["/etc/apt/trusted.gpg.d/ABCD1234.gpg: the key in `data`, dearmored (if different)"]
        );
    }
}
