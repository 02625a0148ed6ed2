//! `kamo exec` and secrets (issue 10): the command travels on stdin, so no process list shows
//! it; output that holds a known secret value is masked.

use std::path::Path;

use crate::support::kamo::{Run, exec_all};
use crate::support::planted::{Excused, Watch};
use crate::support::sshd::{SshCluster, TEST_PASSWORD};

/// `kamo exec all` on the cluster's hosts, with its known_hosts.
fn exec(c: &SshCluster, inv: &Path, extra: &[&str], cmd: &str) -> Run {
    exec_all(&c.known_hosts, inv, extra, cmd)
}

/// Issue 10: "Task text travels to the node's shell on stdin, not as command-line arguments."
/// The command of `kamo exec`, with and without `-b`, with a sudo password or none, with a
/// time limit (whose path names the process group first) and on a local connection, is on no
/// process's command line while it runs, and still runs: its output arrives.
#[test]
fn exec_commands_travel_on_stdin_so_no_process_list_shows_them() {
    let c = SshCluster::start(2);
    let needle = "PLANTED_SECRET_VALUE_";
    let cmd = "sleep 3; echo PLANTED_SECRET_VALUE_123";
    let local = "\n[coordinator]\nlocalhost ansible_connection=local\n";
    let plain = c.write_inventory(local);
    let with_pw = c.write_inventory(&format!("ansible_become_password={TEST_PASSWORD}\n"));
    let root = c.write_inventory("ansible_user=root\n");
    let cases: [(&str, &Path, &[&str], &[&str]); 5] = [
        ("plain", &plain, &[], &["node01", "node02", "localhost"]),
        (
            "with --task-timeout",
            &plain,
            &["--task-timeout", "60"],
            &["node01", "node02", "localhost"],
        ),
        (
            "-b with a sudo password",
            &with_pw,
            &["-b"],
            &["node01", "node02"],
        ),
        (
            "-b with a sudo password and --task-timeout",
            &with_pw,
            &["-b", "--task-timeout", "60"],
            &["node01", "node02"],
        ),
        (
            "-b without a password (root)",
            &root,
            &["-b"],
            &["node01", "node02"],
        ),
    ];
    for (what, inv, extra, hosts) in cases {
        let mut args = vec!["--output", "json"];
        args.extend_from_slice(extra);
        // Every process's command line (the workstation's and the loopback nodes') is
        // sampled while it runs; kamo's own, where the operator typed the command, is not
        // reported but counted: seeing it proves the sampler saw the run.
        let watch = Watch::start(&[needle], Excused::KamoArgs);
        let run = exec(&c, inv, &args, cmd);
        let own = watch.assert_clean_for(what);
        run.assert_code(0);
        for h in hosts {
            assert_eq!(
                run.host(h)["stdout"],
                "PLANTED_SECRET_VALUE_123\n",
                "{what}: {run:?}"
            );
        }
        assert!(
            own > 0,
            "{what}: the sampler never saw kamo's own command line"
        );
    }
}

/// A secret-named inventory variable's value.
const DB_PASSWORD: &str = "abcPLANTEDxyz";
/// A value hidden only by the operator's `--secret-vars '*_credential'`.
const CREDENTIAL: &str = "cred-4471-value";

/// Issue 10: what `kamo exec` prints hides the host's known secret values (a secret-named
/// inventory variable, the sudo password, a `--secret-vars` variable), in text and JSON, on
/// stdout and stderr, with and without `-b`, also when the command prints a value in two
/// writes that reach kamo in separate SSH packets. Values under 4 bytes are not hidden (they
/// would blank out ordinary words): `xq9` stays.
#[test]
fn exec_output_hides_known_secret_values_even_split_across_reads() {
    let c = SshCluster::start(1);
    let inv = c.write_inventory(&format!(
        "ansible_become_password={TEST_PASSWORD}\ndb_password={DB_PASSWORD}\n\
         site_credential={CREDENTIAL}\nshort_token=xq9\n"
    ));
    let cmd = "printf 'abcPLAN'; sleep 0.3; printf 'TEDxyz\\n'; echo abcPLANTEDxyz >&2; \
               printf 'kamo-Test'; sleep 0.3; printf '%s\\n' -pw-7731; \
               printf 'cred-' >&2; sleep 0.3; printf '4471-value\\n' >&2; echo short=xq9";
    let cases: [&[&str]; 3] = [
        &["--output", "json"],
        &["--output", "text"],
        &["-b", "--output", "json"],
    ];
    for extra in cases {
        let mut args = extra.to_vec();
        args.extend(["--secret-vars", "*_credential"]);
        let run = exec(&c, &inv, &args, cmd);
        run.assert_code(0);
        for s in [DB_PASSWORD, TEST_PASSWORD, CREDENTIAL] {
            assert!(
                !run.stdout.contains(s) && !run.stderr.contains(s),
                "{extra:?}: {s:?} was printed: {run:?}"
            );
        }
        assert!(run.stdout.contains("short=xq9"), "{extra:?}: {run:?}");
        let (out, err) = if extra.contains(&"json") {
            let r = run.host("node01");
            (
                r["stdout"].as_str().unwrap().to_owned(),
                r["stderr"].as_str().unwrap().to_owned(),
            )
        } else {
            let (out, err) = run.stdout.split_once("stderr:\n").unwrap();
            (out.to_owned(), err.to_owned())
        };
        assert!(
            out.contains("********\n********\n") && err.contains("********\n********\n"),
            "{extra:?}: {run:?}"
        );
    }
}
