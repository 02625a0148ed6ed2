//! Shell injection through a real sshd: a host name, variables and file paths holding quotes,
//! spaces, `$()`, backticks, `;` and newlines reach the node's shell as data. Any of them read
//! as code would create a file named `CANARY` (in the base directory, or in the login user's
//! home where a relative path lands); none may exist, and each value must arrive unchanged.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::kamo::{Kamo, empty_home};
use crate::support::sshd::{SshCluster, TEST_USER};

/// One path component: no `/`; its canary is relative (the node's working directory).
const NAME: &str = "a b'c\"d$(touch CANARY)`touch CANARY`;touch CANARY\ntouch CANARY #x";
/// The inventory host name (INI host names are one line).
const HOST: &str = "n1'$(touch CANARY)`touch CANARY`;touch CANARY \"x";

fn data(base: &Path) -> String {
    let c = base.join("CANARY");
    let c = c.display();
    format!("x' \"y\" $(touch {c}) `touch {c}`; touch {c}\ntouch {c} # \\\" '\\''")
}

fn home_of(user: &str) -> PathBuf {
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .unwrap_or_else(|| panic!("no {user} in /etc/passwd"));
    PathBuf::from(line.split(':').nth(5).unwrap())
}

/// Canary files under `dirs` (not following symlinks), removed once found so a failure does
/// not leak into other tests.
fn canaries(dirs: &[&Path]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p.clone());
            } else if e.file_name() == "CANARY" {
                found.push(p);
            }
        }
    }
    for p in &found {
        let _ = fs::remove_file(p);
    }
    found
}

#[test]
fn hostile_host_names_variables_and_paths_stay_data_on_the_node() {
    let c = SshCluster::start(1);
    let h = &c.hosts[0];
    let home = empty_home();
    let base = tempfile::tempdir().unwrap();
    fs::set_permissions(
        base.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let b = base.path().display().to_string();
    let weird = data(base.path());
    let weird_line = weird.replace('\n', " ");
    // The host line quotes the name as Python's shlex reads it (`'` closed, escaped, reopened).
    let inv = home.path().join("hosts.ini");
    fs::write(
        &inv,
        format!(
            "[nodes]\n'{}' ansible_host={} ansible_port={}\n\n[all:vars]\nansible_user={TEST_USER}\nansible_ssh_private_key_file={}\n",
            HOST.replace('\'', r"'\''"),
            h.addr,
            h.port,
            c.client_key.display()
        ),
    )
    .unwrap();
    let vars = serde_json::json!({
        "base": b, "weird": weird, "weird_line": weird_line, "weird_name": NAME,
    });
    let pb = home.path().join("site.yml");
    fs::write(
        &pb,
        format!(
            r#"- hosts: all
  gather_facts: false
  vars: {vars}
  tasks:
    - name: command argv
      command:
        argv: [touch, "{{{{ base }}}}/{{{{ weird_name }}}}"]
    - name: shell with the quote filter
      shell: "printf '%s' {{{{ weird | quote }}}} > {{{{ base }}}}/shell.out"
    - name: copy to a hostile path
      copy:
        content: "{{{{ weird }}}}"
        dest: "{{{{ base }}}}/{{{{ weird_name }}}}.copy"
    - name: a hostile directory
      file:
        path: "{{{{ base }}}}/{{{{ weird_name }}}}.dir"
        state: directory
    - name: a hostile line
      lineinfile:
        path: "{{{{ base }}}}/lines"
        line: "{{{{ weird_line }}}}"
        create: true
    - name: the host name as content
      copy:
        content: "{{{{ inventory_hostname }}}}"
        dest: "{{{{ base }}}}/host.out"
    - name: the host name through a shell
      shell: "printf '%s' {{{{ inventory_hostname | quote }}}} > {{{{ base }}}}/host2.out"
"#
        ),
    )
    .unwrap();
    let run = Kamo::new(home.path())
        .run_playbook(&pb, &inv, &c.known_hosts)
        .args(["--output", "json"])
        .run();
    let node_home = home_of(TEST_USER);
    let found = canaries(&[base.path(), &node_home, home.path()]);
    assert!(found.is_empty(), "values ran as code: {found:?}\n{run:?}");
    run.assert_code(0);
    let p = base.path().join(NAME);
    assert!(p.exists(), "{run:?}");
    let read = |rel: &str| fs::read_to_string(base.path().join(rel)).unwrap();
    assert_eq!(read("shell.out"), weird);
    assert_eq!(read(&format!("{NAME}.copy")), weird);
    assert!(base.path().join(format!("{NAME}.dir")).is_dir());
    assert_eq!(read("lines"), format!("{weird_line}\n"));
    assert_eq!(read("host.out"), HOST);
    assert_eq!(read("host2.out"), HOST);

    // kamo exec with an argv: each word quoted for the remote shell.
    let run = Kamo::new(home.path())
        .args(["exec", "all", "-i"])
        .arg_path(&inv)
        .args(["--known-hosts"])
        .arg_path(&c.known_hosts)
        .args(["--output", "json", "--", "printf", "%s|%s", &weird, NAME])
        .run();
    let found = canaries(&[base.path(), &node_home, home.path()]);
    assert!(found.is_empty(), "values ran as code: {found:?}\n{run:?}");
    run.assert_code(0);
    assert_eq!(run.host(HOST)["stdout"], format!("{weird}|{NAME}"));
}
