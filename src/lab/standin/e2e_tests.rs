//! kamo's own `apt` and `systemd` module scripts run against the stand-ins.
//!
//! Why this way: the module scripts call `apt-get`, `dpkg-query`, `systemctl` ... by name
//! through `/bin/sh`, and the library's unit tests have no kamo binary to put on `PATH`. So
//! the sandbox's tools are small scripts that re-run this test binary on the ignored test
//! [`exec_standin`], which runs the stand-in named in the environment and exits with its
//! code; its output goes to file descriptors 3 and 4 so the test harness's own lines stay
//! out of it.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use super::{Io, NODE_ENV, Node, run};
use crate::playbook::model::Module;
use crate::playbook::modules::syslib::testkit::{Sandbox, args};
use crate::playbook::modules::{Flags, ModuleResult, build};

const TOOL_ENV: &str = "KAMO_STANDIN_TOOL";
const ARGS_ENV: &str = "KAMO_STANDIN_ARGS";

#[test]
#[ignore = "a stand-in tool run by the end-to-end tests, not a test of its own"]
fn exec_standin() {
    let Ok(tool) = std::env::var(TOOL_ENV) else {
        return;
    };
    let raw = std::env::var(ARGS_ENV).unwrap_or_default();
    let argv: Vec<String> = if raw.is_empty() {
        Vec::new()
    } else {
        raw.trim_end_matches('\u{1f}')
            .split('\u{1f}')
            .map(str::to_owned)
            .collect()
    };
    let node = Node::load().unwrap();
    let mut io = Io::default();
    let code = run(&tool, &node, &argv, &mut io);
    for (fd, bytes) in [("/dev/fd/3", &io.out), ("/dev/fd/4", &io.err)] {
        let mut f = std::fs::OpenOptions::new().write(true).open(fd).unwrap();
        f.write_all(bytes).unwrap();
    }
    std::process::exit(code);
}

/// A sandbox whose `apt-get`, `apt-cache`, `dpkg-query`, `systemctl` are the stand-ins, on a
/// node rooted in the sandbox.
fn lab_sandbox() -> (Sandbox, Node) {
    let sb = Sandbox::new();
    let node = Node {
        name: "node01".to_owned(),
        address: "127.0.0.2".to_owned(),
        lab_dir: sb.dir.path().join("lab"),
        gpu: false,
        os_release: "22.04".to_owned(),
        kamo_bin: "/opt/kamo/kamo".into(),
        root: sb.dir.path().join("root"),
    };
    let node_file = sb.dir.path().join("node.json");
    std::fs::write(&node_file, serde_json::to_string(&node).unwrap()).unwrap();
    let me = std::env::current_exe().unwrap();
    for tool in ["apt-get", "apt-cache", "dpkg-query", "dpkg", "systemctl"] {
        let p = sb.bin.join(tool);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\n{TOOL_ENV}={tool}\n{ARGS_ENV}=$(printf '%s\\037' \"$@\")\n{NODE_ENV}='{}'\nexport {TOOL_ENV} {ARGS_ENV} {NODE_ENV}\nexec '{}' --ignored --exact lab::standin::e2e_tests::exec_standin --nocapture --test-threads=1 3>&1 4>&2 >/dev/null 2>/dev/null\n",
                node_file.display(),
                me.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (sb, node)
}

fn module(sb: &Sandbox, m: Module, a: serde_json::Value) -> ModuleResult {
    let step = build(m, &args(a), Flags::default()).unwrap();
    sb.run(m, &step)
}

fn dpkg_status(sb: &Sandbox, pkg: &str) -> String {
    let out = std::process::Command::new(sb.bin.join("dpkg-query"))
        .args(["-W", "-f=${Status} ${Version}", pkg])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn apt_module_against_the_stand_ins() {
    let (sb, node) = lab_sandbox();
    let r = module(
        &sb,
        Module::Apt,
        json!({"name": "jq", "update_cache": true}),
    );
    assert!(r.changed && !r.failed, "{r:?}");
    assert_eq!(r.data["cache_updated"], true);
    assert_eq!(r.data["packages"]["installed"], json!(["jq"]));
    assert_eq!(
        dpkg_status(&sb, "libjq1"),
        "install ok installed 1.6-2.1ubuntu3"
    );
    let r = module(&sb, Module::Apt, json!({"name": "jq"}));
    assert!(!r.changed && !r.failed, "{r:?}");
    // Unknown packages fail with apt's message and code.
    let r = module(&sb, Module::Apt, json!({"name": "nosuch"}));
    assert!(r.failed && r.rc == Some(100), "{r:?}");
    assert!(
        r.msg
            .unwrap()
            .contains("E: Unable to locate package nosuch")
    );
    // A third-party repository: the packages appear after the source and an update.
    let r = module(&sb, Module::Apt, json!({"name": "kubeadm=1.29.3*"}));
    assert!(r.failed && r.rc == Some(100), "{r:?}");
    std::fs::create_dir_all(node.path("/etc/apt/sources.list.d")).unwrap();
    std::fs::write(
        node.path("/etc/apt/sources.list.d/kubernetes.list"),
        "deb https://pkgs.k8s.io/core:/stable:/v1.29/deb/ /\n",
    )
    .unwrap();
    let pins = json!({"name": ["kubeadm=1.29.3*", "kubelet=1.29.3*"], "update_cache": true});
    let r = module(&sb, Module::Apt, pins.clone());
    assert!(r.changed && !r.failed, "{r:?}");
    assert_eq!(
        dpkg_status(&sb, "kubeadm"),
        "install ok installed 1.29.3-1.1"
    );
    let mut again = pins;
    again["update_cache"] = json!(false);
    let r = module(&sb, Module::Apt, again);
    assert!(!r.changed && !r.failed, "{r:?}");
    // latest: the candidate from apt-cache policy.
    let r = module(
        &sb,
        Module::Apt,
        json!({"name": "kubeadm", "state": "latest"}),
    );
    assert!(r.changed && !r.failed, "{r:?}");
    assert_eq!(
        dpkg_status(&sb, "kubeadm"),
        "install ok installed 1.29.15-1.1"
    );
    let r = module(
        &sb,
        Module::Apt,
        json!({"name": "kubeadm", "state": "latest"}),
    );
    assert!(!r.changed, "{r:?}");
    // absent leaves config files; absent with purge takes them.
    let r = module(&sb, Module::Apt, json!({"name": "nfs-kernel-server"}));
    assert!(r.changed && !r.failed, "{r:?}");
    let r = module(
        &sb,
        Module::Apt,
        json!({"name": "nfs-kernel-server", "state": "absent"}),
    );
    assert!(r.changed && !r.failed, "{r:?}");
    assert_eq!(
        dpkg_status(&sb, "nfs-kernel-server"),
        "deinstall ok config-files 1:2.6.1-1ubuntu1.2"
    );
    assert!(node.path("/etc/exports").exists());
    let r = module(
        &sb,
        Module::Apt,
        json!({"name": "nfs-kernel-server", "state": "absent"}),
    );
    assert!(!r.changed, "{r:?}");
    let r = module(
        &sb,
        Module::Apt,
        json!({"name": "nfs-kernel-server", "state": "absent", "purge": true}),
    );
    assert!(r.changed && !r.failed, "{r:?}");
    assert_eq!(dpkg_status(&sb, "nfs-kernel-server"), "");
    assert!(!node.path("/etc/exports").exists());
    // autoremove takes what nothing needs any more.
    let r = module(
        &sb,
        Module::Apt,
        json!({"name": "jq", "state": "absent", "autoremove": true}),
    );
    assert!(r.changed && !r.failed, "{r:?}");
    assert_eq!(dpkg_status(&sb, "libjq1"), "");
    assert_eq!(dpkg_status(&sb, "nfs-common"), "");
    let r = module(&sb, Module::Apt, json!({"autoremove": true}));
    assert!(!r.changed && !r.failed, "{r:?}");
}

#[test]
fn systemd_module_against_the_stand_ins() {
    let (sb, node) = lab_sandbox();
    let r = module(
        &sb,
        Module::Systemd,
        json!({"name": "nosuch", "state": "started"}),
    );
    assert!(r.failed, "{r:?}");
    assert!(
        r.msg
            .unwrap()
            .contains("Could not find the requested service nosuch")
    );
    let r = module(
        &sb,
        Module::Systemd,
        json!({"name": "cron", "state": "stopped", "enabled": false}),
    );
    assert!(r.changed && !r.failed, "{r:?}");
    assert_eq!(r.data["status"]["ActiveState"], "inactive");
    assert_eq!(r.data["status"]["UnitFileState"], "disabled");
    let r = module(
        &sb,
        Module::Systemd,
        json!({"name": "cron", "state": "stopped", "enabled": false}),
    );
    assert!(!r.changed, "{r:?}");
    let on = json!({"name": "cron", "state": "started", "enabled": true, "daemon_reload": true});
    let r = module(&sb, Module::Systemd, on.clone());
    assert!(r.changed && !r.failed, "{r:?}");
    assert_eq!(r.data["status"]["SubState"], "running");
    assert!(!module(&sb, Module::Systemd, on).changed);
    let r = module(
        &sb,
        Module::Systemd,
        json!({"name": "cron", "state": "restarted"}),
    );
    assert!(r.changed && !r.failed, "{r:?}");
    let r = module(
        &sb,
        Module::Systemd,
        json!({"name": "ssh", "state": "reloaded"}),
    );
    assert!(r.changed && !r.failed, "{r:?}");
    // Masking does not stop a running unit (as in systemd); a masked unit does not start.
    let masked = json!({"name": "cron", "masked": true, "state": "stopped"});
    let r = module(&sb, Module::Systemd, masked.clone());
    assert!(r.changed && !r.failed, "{r:?}");
    assert_eq!(r.data["status"]["LoadState"], "masked");
    assert!(!module(&sb, Module::Systemd, masked).changed);
    let r = module(
        &sb,
        Module::Systemd,
        json!({"name": "cron", "state": "started"}),
    );
    assert!(r.failed, "{r:?}");
    assert!(r.msg.unwrap().contains("Unit cron.service is masked."));
    // kubelet from its package: enabled, restarting until the node joins.
    std::fs::create_dir_all(node.path("/etc/apt/sources.list.d")).unwrap();
    std::fs::write(
        node.path("/etc/apt/sources.list.d/kubernetes.list"),
        "deb https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n",
    )
    .unwrap();
    let r = module(
        &sb,
        Module::Apt,
        json!({"name": "kubelet", "update_cache": true}),
    );
    assert!(r.changed && !r.failed, "{r:?}");
    let r = module(
        &sb,
        Module::Systemd,
        json!({"name": "kubelet", "state": "started", "enabled": true}),
    );
    assert!(!r.changed && !r.failed, "{r:?}");
    assert_eq!(r.data["status"]["ActiveState"], "activating");
    assert_eq!(r.data["status"]["SubState"], "auto-restart");
}
