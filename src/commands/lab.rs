//! `kamo lab up|status|down|fault`: a rehearsal cluster on this machine (see [`crate::lab`]).

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::{
    LabDiskArgs, LabDownArgs, LabFaultArgs, LabNodeArgs, LabStatusArgs, LabUpArgs, OutputFormat,
};
use crate::error::{Error, ExitCode, Result};
use crate::lab::{Lab, NodeSpec, node, node_name};

fn lab_dir(dir: Option<&PathBuf>) -> PathBuf {
    let d = dir.cloned().unwrap_or_else(|| PathBuf::from("lab"));
    std::path::absolute(&d).unwrap_or(d)
}

/// For the commands that act as root: `None` to go on in this process (root, or root of the
/// lab's user namespace), or the exit code of this same command run again in a user namespace
/// for an ordinary user (see [`crate::lab::userns`]); refused with what is missing where this
/// machine does not allow that.
fn as_root() -> Result<Option<ExitCode>> {
    if nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let probe = crate::lab::userns::probe();
    if !crate::lab::userns::missing(&probe).is_empty() {
        return Err(Error::Other(crate::lab::userns::refusal(&probe)));
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    Ok(Some(ExitCode::from_code(crate::lab::userns::reexec(
        &args,
    )?)))
}

/// Refuses to act on a lab made in the other mode: a user-namespace lab's files belong to ids
/// of that namespace, a root lab's to the machine's root.
fn same_mode(lab: &Lab) -> Result<()> {
    let ordinary = !nix::unistd::geteuid().is_root() || crate::lab::userns::inside();
    match (lab.userns, ordinary) {
        (true, false) => Err(Error::Usage(format!(
            "the lab in {} was started by an ordinary user, in a user namespace; run kamo lab \
             as that user (the owner of {})",
            lab.dir.display(),
            Lab::file(&lab.dir).display()
        ))),
        (false, true) => Err(Error::Usage(format!(
            "the lab in {} was started as root; run kamo lab as root (with sudo)",
            lab.dir.display()
        ))),
        _ => Ok(()),
    }
}

/// The supervisor's pid when it is running.
fn supervisor(dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(Lab::supervisor_pid_file(dir)).ok()?;
    let mut it = text.split_whitespace();
    let pid: i32 = it.next()?.parse().ok()?;
    let start: Option<i64> = it.next().and_then(|s| s.parse().ok());
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let ours = String::from_utf8_lossy(&cmdline).contains("supervise");
    (ours && crate::journal::lock::alive(i64::from(pid), start)).then_some(pid)
}

/// Where labs claim their loopback blocks, machine-wide: `/run/kamo-lab`, created sticky and
/// world-writable like /tmp so that ordinary users' labs claim there too; where that cannot be
/// created (an ordinary user first), the same under the temporary directory.
fn claims_dir() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    for d in [
        PathBuf::from("/run/kamo-lab"),
        std::env::temp_dir().join("kamo-lab"),
    ] {
        if !d.is_dir() && std::fs::create_dir(&d).is_ok() {
            let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777));
        }
        if nix::unistd::access(&d, nix::unistd::AccessFlags::W_OK).is_ok() {
            return d;
        }
    }
    std::env::temp_dir().join("kamo-lab")
}

/// Whether the lab that claimed a block still holds it: its directory exists and its
/// lab.json uses the block, or it is still being set up (no lab.json yet, claimed recently).
fn claim_is_live(claim: &Path, block: u8) -> bool {
    let Ok(dir) = std::fs::read_to_string(claim) else {
        return true; // being written: treat as taken
    };
    let dir = PathBuf::from(dir.trim());
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        // Another user's lab, in a directory this user cannot see into: still held.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return true,
        _ => return false,
    }
    match Lab::load(&dir) {
        Ok(l) => l
            .nodes
            .first()
            .is_some_and(|n| n.address.starts_with(&format!("127.{block}."))),
        Err(_) => std::fs::metadata(claim)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|e| e < Duration::from_secs(600))),
    }
}

/// Claims the first loopback block `127.B.0.0/16` (and a port) that no other lab holds and
/// where nothing listens. Claims are files created with O_EXCL, so two labs starting at the
/// same moment never get the same block.
fn pick_addresses(dir: &Path, n: usize) -> Result<(u8, u16)> {
    let claims = claims_dir();
    std::fs::create_dir_all(&claims).map_err(|e| Error::io("cannot create", &claims, e))?;
    for b in 100u8..=250 {
        let claim = claims.join(format!("127.{b}"));
        let mut file = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&claim)
        {
            Ok(f) => f,
            Err(_) if claim_is_live(&claim, b) => continue,
            Err(_) => {
                // A stale claim (its lab was purged): take it over, once.
                let _ = std::fs::remove_file(&claim);
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&claim)
                {
                    Ok(f) => f,
                    Err(_) => continue,
                }
            }
        };
        {
            use std::io::Write;
            file.write_all(dir.to_string_lossy().as_bytes())
                .map_err(|e| Error::io("cannot write", &claim, e))?;
        }
        for port in [22u16, 2222, 22022] {
            let first = Ipv4Addr::new(127, b, 0, 1);
            let last: Ipv4Addr = address(b, n - 1).parse().unwrap_or(first);
            let free = |a: Ipv4Addr| std::net::TcpListener::bind((a, port)).is_ok();
            if free(first) && free(last) {
                return Ok((b, port));
            }
        }
        let _ = std::fs::remove_file(&claim);
    }
    Err(Error::Other(
        "no free loopback block 127.100-250.x.y for the lab".into(),
    ))
}

/// Gives the lab's block back (`down --purge`).
fn release_addresses(lab: &Lab) {
    if let Some(b) = lab.nodes.first().and_then(|n| n.address.split('.').nth(1)) {
        let claim = claims_dir().join(format!("127.{b}"));
        if std::fs::read_to_string(&claim).is_ok_and(|d| Path::new(d.trim()) == lab.dir) {
            let _ = std::fs::remove_file(claim);
        }
    }
}

fn address(block: u8, i: usize) -> String {
    format!("127.{block}.{}.{}", i / 250, i % 250 + 1)
}

pub async fn up(args: &LabUpArgs) -> Result<ExitCode> {
    let existing = lab_dir(args.dir.as_ref());
    if Lab::file(&existing).exists() {
        same_mode(&Lab::load(&existing)?)?;
    }
    if let Some(code) = as_root()? {
        return Ok(code);
    }
    let userns = crate::lab::userns::inside();
    if userns && args.with_db {
        return Err(Error::Usage(
            "--with-db needs root: the lab's PostgreSQL runs as the machine's postgres user".into(),
        ));
    }
    if args.nodes == 0 || args.nodes > 2000 {
        return Err(Error::Usage("--nodes must be between 1 and 2000".into()));
    }
    if args.gpu_nodes > args.nodes {
        return Err(Error::Usage("--gpu-nodes cannot exceed --nodes".into()));
    }
    let dir = lab_dir(args.dir.as_ref());
    if dir.to_string_lossy().contains([',', ':', '\\']) {
        return Err(Error::Usage(format!(
            "the lab directory {} must not contain ',', ':' or '\\' (overlay mount options cannot \
             hold them)",
            dir.display()
        )));
    }
    if args.with_db {
        crate::lab::db::preflight(&dir)?;
    }
    let started = Instant::now();
    if Lab::file(&dir).exists() {
        let mut lab = Lab::load(&dir)?;
        if args.with_db && lab.db.is_none() {
            return Err(Error::Usage(format!(
                "the lab in {} has no database; `kamo lab down --purge --dir {}` first, or use \
                 another --dir",
                dir.display(),
                dir.display()
            )));
        }
        if let Some(pid) = supervisor(&dir) {
            let db_note = ensure_db_running(&mut lab).await?;
            crate::ui::print_text(&format!(
                "a lab of {} nodes is already running in {} (supervisor pid {pid}{db_note}); see \
                 `kamo lab status --dir {}`",
                lab.nodes.len(),
                dir.display(),
                dir.display()
            ));
            return Ok(ExitCode::Ok);
        }
        if lab.nodes.len() != args.nodes {
            return Err(Error::Usage(format!(
                "the lab in {} has {} nodes, not {}; `kamo lab down --purge --dir {}` first, or \
                 use another --dir",
                dir.display(),
                lab.nodes.len(),
                args.nodes,
                dir.display()
            )));
        }
        let db_note = ensure_db_running(&mut lab).await?;
        start_supervisor(&dir).await?;
        crate::ui::print_text(&format!(
            "lab of {} nodes started again in {} ({:.1}s{db_note}); inventory: {}",
            lab.nodes.len(),
            dir.display(),
            started.elapsed().as_secs_f64(),
            dir.join("inventory.ini").display()
        ));
        return Ok(ExitCode::Ok);
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
    warn_unreachable_parents(&dir);
    let (block, port) = pick_addresses(&dir, args.nodes)?;
    let nodes: Vec<NodeSpec> = (0..args.nodes)
        .map(|i| NodeSpec {
            name: node_name(i + 1, args.nodes),
            address: address(block, i),
            port,
            gpu: i >= args.nodes - args.gpu_nodes,
        })
        .collect();
    let mut lab = Lab {
        dir: dir.clone(),
        nodes,
        port,
        os_release: args.os_release.clone(),
        with_db: args.with_db,
        created_at: crate::journal::now_ms(),
        reboot_seconds: 3,
        db: None,
        userns,
    };
    let client_key = dir.join("id_ed25519");
    node::keygen(&client_key, "kamo-lab")?;
    let public = std::fs::read_to_string(client_key.with_extension("pub"))
        .map_err(|e| Error::io("cannot read", &client_key, e))?;
    std::fs::write(dir.join("authorized_keys"), &public)
        .map_err(|e| Error::io("cannot write", &dir.join("authorized_keys"), e))?;
    let password_hash = if args.sudo_password {
        Some(password_hash()?)
    } else {
        None
    };
    if userns {
        node::prepare_userns_sudo(&dir)?;
    }
    let mut base = node::Base::read(&args.os_release, password_hash, userns)?;
    // Every node knows every other by name, as cluster DNS (or DeepOps' /etc/hosts role)
    // provides on real machines: kubeadm, NFS mounts and `kamo check` use the names.
    base.hosts.push_str("\n# kamo lab nodes\n");
    for n in &lab.nodes {
        let _ = writeln!(base.hosts, "{} {}", n.address, n.name);
    }
    prepare_nodes(&lab, &base)?;
    lab.save()?;
    let db_line = if args.with_db {
        match start_new_db(&mut lab, block).await {
            Ok(line) => line,
            Err(e) => {
                if let Some(db) = lab.db.as_mut() {
                    crate::lab::db::stop(&dir, db).await;
                }
                let _ = lab.save();
                return Err(Error::Other(format!(
                    "{e}\n(the lab's nodes were not started; `kamo lab down --purge --dir {}` \
                     removes what was created)",
                    dir.display()
                )));
            }
        }
    } else {
        String::new()
    };
    write_files(&lab, args.gpu_nodes)?;
    tracing::info!("nodes prepared in {:.2}s", started.elapsed().as_secs_f64());
    start_supervisor(&dir).await?;
    crate::ui::print_text(&format!(
        "lab up: {} nodes in {:.1}s\n  inventory: {}{db_line}\n  try: kamo exec all -i {} -- \
         uname -n",
        lab.nodes.len(),
        started.elapsed().as_secs_f64(),
        dir.join("inventory.ini").display(),
        dir.join("inventory.ini").display()
    ));
    Ok(ExitCode::Ok)
}

/// The database's port on the master's address: PostgreSQL's own 5432 when it is free there.
fn pick_db_port(address: &str) -> Result<u16, Error> {
    if std::net::TcpListener::bind((address, 5432)).is_ok() {
        return Ok(5432);
    }
    std::net::TcpListener::bind((address, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| {
            Error::Other(format!(
                "no free port for the lab database on {address}: {e}"
            ))
        })
}

/// `--with-db` on a new lab: initdb, start, load the schema and the sample rows. Returns the
/// line `up` prints about it (never the password).
async fn start_new_db(lab: &mut Lab, block: u8) -> Result<String, Error> {
    let migrations = crate::db::migrations::load(&crate::db::migrations::default_dir())?;
    let address = lab.nodes[0].address.clone();
    let port = pick_db_port(&address)?;
    let db = crate::lab::db::create(
        &lab.dir,
        &address,
        port,
        claims_dir().join(format!("pg-127.{block}")),
    )?;
    lab.db = Some(db);
    lab.save()?;
    let db = lab.db.as_mut().expect("just set");
    crate::lab::db::start(&lab.dir, db).await?;
    lab.save()?;
    let db = lab.db.as_ref().expect("just set");
    let applied = crate::lab::db::load(&lab.dir, db, &migrations).await?;
    Ok(format!(
        "\n  database: {}@{}:{}/{} at {} ({} migrations, sample rows; password in {})",
        db.user,
        db.address,
        db.port,
        db.name,
        applied.last().map_or("no migration", String::as_str),
        applied.len(),
        crate::lab::db::LabDb::password_file(&lab.dir).display()
    ))
}

/// Starts the lab's database again when it has one that is not running (`up` on a lab that is
/// down, or whose server died); never a second server. Returns a note for `up`'s message.
async fn ensure_db_running(lab: &mut Lab) -> Result<String, Error> {
    let dir = lab.dir.clone();
    let Some(db) = lab.db.as_mut() else {
        return Ok(String::new());
    };
    if let Some(pid) = db.running(&dir) {
        return Ok(format!(", database pid {pid}"));
    }
    crate::lab::db::start(&dir, db).await?;
    let pid = db.pid.unwrap_or_default();
    lab.save()?;
    Ok(format!(", database started again, pid {pid}"))
}

/// The nodes' `ubuntu` user reads the shared cluster state in the lab directory (kubectl
/// without sudo): say so when a parent directory keeps other users out.
fn warn_unreachable_parents(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for p in dir.ancestors().skip(1) {
        if let Ok(m) = std::fs::metadata(p)
            && m.permissions().mode() & 0o001 == 0
        {
            crate::ui::eprint_line(&format!(
                "warning: {} is not searchable by other users, so commands run as ubuntu on the \
                 nodes (kubectl, helm without sudo) cannot read the cluster state in {}; \
                 `chmod o+x {}` or use another --dir",
                p.display(),
                dir.display(),
                p.display()
            ));
            return;
        }
    }
}

fn password_hash() -> Result<String> {
    let pw = match std::env::var("KAMO_LAB_SUDO_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ => rpassword::prompt_password("sudo password for the lab's ubuntu user: ")
            .map_err(|e| Error::Other(format!("cannot read the password: {e}")))?,
    };
    let mut child = std::process::Command::new("openssl")
        .args(["passwd", "-6", "-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::Other(format!("cannot run openssl to hash the password: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = writeln!(stdin, "{pw}");
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Other(format!("openssl: {e}")))?;
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || !hash.starts_with("$6$") {
        return Err(Error::Other("openssl passwd -6 failed".into()));
    }
    Ok(hash)
}

fn prepare_nodes(lab: &Lab, base: &node::Base) -> Result<()> {
    let workers = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let chunk = lab.nodes.len().div_ceil(workers).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = lab
            .nodes
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || -> Result<()> {
                    for n in part {
                        node::prepare(&lab.dir, n, base)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| Error::Other("preparing the nodes panicked".into()))??;
        }
        Ok(())
    })
}

/// What `kamo lab up` writes as each repository key (see `apt_keys_dir` in playbooks/README.md).
const LAB_APT_KEY: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\
# kamo lab stand-in key: a lab has no network, and its apt only checks that the key file exists.\n\
-----END PGP PUBLIC KEY BLOCK-----\n";

/// The roles of a lab's nodes, as KAMONOHASHI's deploy-tools lays out a cluster: the first
/// node is the master (and the app node), the second the storage (NFS) node, the rest compute
/// nodes; kube-node holds the app node, the storage node and the compute nodes (deploy-tools'
/// `KUBE_NODES`). Labs of one or two nodes double up.
struct Roles<'a> {
    master: &'a str,
    storage: &'a str,
    compute: Vec<&'a str>,
    kube_nodes: Vec<&'a str>,
}

impl<'a> Roles<'a> {
    fn of(names: &[&'a str]) -> Roles<'a> {
        let master = names[0];
        let (storage, compute) = match names.len() {
            1 => (master, vec![master]),
            2 => (master, vec![names[1]]),
            _ => (names[1], names[2..].to_vec()),
        };
        let mut kube_nodes = vec![master, storage];
        kube_nodes.extend(&compute);
        kube_nodes.dedup();
        Roles {
            master,
            storage,
            compute,
            kube_nodes,
        }
    }
}

/// The inventory (DeepOps/KAMONOHASHI layout), its settings and known_hosts.
fn write_files(lab: &Lab, gpu_nodes: usize) -> Result<()> {
    let dir = &lab.dir;
    let names: Vec<&str> = lab.nodes.iter().map(|n| n.name.as_str()).collect();
    let roles = Roles::of(&names);
    let gpu: Vec<&str> = lab
        .nodes
        .iter()
        .filter(|n| n.gpu)
        .map(|n| n.name.as_str())
        .collect();
    let mut inv = String::from(
        "# A kamo lab: every node is a real sshd on this machine (`kamo lab status`).\n[all]\n",
    );
    for n in &lab.nodes {
        let _ = write!(inv, "{} ansible_host={}", n.name, n.address);
        if n.port != 22 {
            let _ = write!(inv, " ansible_port={}", n.port);
        }
        inv.push('\n');
    }
    let _ = write!(
        inv,
        "\n[kube-master]\n{master}\n\n[etcd]\n{master}\n\n[kube-node]\n{}\n\n\
         [k8s-cluster:children]\nkube-master\nkube-node\n\n[nfs-server]\n{storage}\n\n[gpu-node]\n{}\n\n\
         [all:vars]\nansible_user={}\nansible_ssh_private_key_file={}\n\
         ansible_ssh_common_args='-o UserKnownHostsFile={}'\n",
        roles.kube_nodes.join("\n"),
        gpu.join("\n"),
        node::USER,
        dir.join("id_ed25519").display(),
        dir.join("known_hosts").display(),
        master = roles.master,
        storage = roles.storage,
    );
    let _ = gpu_nodes;
    std::fs::write(dir.join("inventory.ini"), inv)
        .map_err(|e| Error::io("cannot write", &dir.join("inventory.ini"), e))?;
    let keys = dir.join("apt-keys");
    std::fs::create_dir_all(&keys).map_err(|e| Error::io("cannot create", &keys, e))?;
    for key in ["kubernetes", "docker", "helm", "nvidia-container"] {
        let p = keys.join(format!("{key}.asc"));
        std::fs::write(&p, LAB_APT_KEY).map_err(|e| Error::io("cannot write", &p, e))?;
    }
    let settings = format!(
        "# Cluster settings of this lab, with the keys `kamo configure` writes.\n\
         kube_master: {master}\nkqi_node: {master}\nstorage_node: {storage}\n\
         compute_nodes: [{}]\napp_version: \"2.1.0\"\nkube_version: \"1.29.15\"\n\
         nfs_export_path: /srv/kamonohashi/nfs\nminio_data_path: /srv/kamonohashi/minio\n\
         proxy_env: {{}}\n\
         # The lab has no network: the playbooks copy these stand-in keys instead of\n\
         # downloading the repositories' keys (the lab's apt only checks that they exist).\n\
         apt_keys_dir: {}\n",
        roles.compute.join(", "),
        keys.display(),
        master = roles.master,
        storage = roles.storage,
    );
    let settings = match &lab.db {
        Some(db) => format!(
            "{settings}# The app database (kamo lab --with-db); the password is in the file.\n\
             db_host: {}\ndb_port: {}\ndb_name: {}\ndb_user: {}\ndb_password_file: {}\n",
            db.address,
            db.port,
            db.name,
            db.user,
            crate::lab::db::LabDb::password_file(dir).display()
        ),
        None => settings,
    };
    let gv = dir.join("group_vars/all");
    std::fs::create_dir_all(&gv).map_err(|e| Error::io("cannot create", &gv, e))?;
    std::fs::write(gv.join("settings.yml"), settings)
        .map_err(|e| Error::io("cannot write", &gv.join("settings.yml"), e))?;
    let mut known = String::new();
    for n in &lab.nodes {
        let p = node::dir(dir, &n.name).join("host_key.pub");
        let key = std::fs::read_to_string(&p).map_err(|e| Error::io("cannot read", &p, e))?;
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        let host = if n.port == 22 {
            n.address.clone()
        } else {
            format!("[{}]:{}", n.address, n.port)
        };
        let _ = writeln!(known, "{host} {}", key.join(" "));
    }
    std::fs::write(dir.join("known_hosts"), known)
        .map_err(|e| Error::io("cannot write", &dir.join("known_hosts"), e))
}

/// Starts the supervisor in the background (its own process group, so a Ctrl-C in this
/// terminal does not reach it) and waits until every node answers.
async fn start_supervisor(dir: &Path) -> Result<()> {
    use std::os::unix::process::CommandExt;
    // sshd refuses to start without its privilege separation directory, which only the
    // distribution's service unit creates (tmpfiles.d); a machine whose sshd never ran as a
    // service (containers, CI) lacks it.
    // (A lab in a user namespace gives each node a /run of its own instead.)
    if !crate::lab::userns::inside() {
        std::fs::create_dir_all("/run/sshd")
            .map_err(|e| Error::io("cannot create sshd's directory", Path::new("/run/sshd"), e))?;
    }
    let exe = std::env::current_exe()
        .map_err(|e| Error::Other(format!("cannot find the kamo binary: {e}")))?;
    let log = std::fs::File::create(dir.join("supervisor.log"))
        .map_err(|e| Error::io("cannot create", &dir.join("supervisor.log"), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| Error::io("cannot create", &dir.join("supervisor.log"), e))?;
    let _ = std::fs::remove_file(dir.join("ready"));
    let child = std::process::Command::new(exe)
        .args(["lab", "supervise", "--dir"])
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(|e| Error::Other(format!("cannot start the lab supervisor: {e}")))?;
    let pid = child.id();
    let start = crate::journal::lock::process_start(pid);
    std::fs::write(
        Lab::supervisor_pid_file(dir),
        format!("{pid} {}\n", start.unwrap_or_default()),
    )
    .map_err(|e| Error::io("cannot write", &Lab::supervisor_pid_file(dir), e))?;
    let ready = dir.join("ready");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            if text.starts_with("ok") {
                return Ok(());
            }
            stop_supervisor(dir);
            return Err(Error::Other(format!(
                "lab nodes did not start: {}; see {}/nodes/NODE/sshd.log",
                text.trim(),
                dir.display()
            )));
        }
        if crate::journal::lock::process_start(pid).is_none() || Instant::now() > deadline {
            stop_supervisor(dir);
            let log = std::fs::read_to_string(dir.join("supervisor.log")).unwrap_or_default();
            return Err(Error::Other(format!(
                "the lab supervisor did not get the nodes up: {}",
                log.trim()
            )));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Stops a supervisor that did not get its nodes up (it takes its nodes down with it).
fn stop_supervisor(dir: &Path) {
    if let Some(pid) = supervisor(dir) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

/// `kamo lab node --dir DIR NODE` (run by the supervisor, single-threaded, before any runtime).
pub fn node(args: &LabNodeArgs) -> Result<ExitCode> {
    let lab = Lab::load(&args.dir)?;
    let spec = lab.node(&args.node)?.clone();
    if args.config.contains('/') {
        return Err(Error::Usage(
            "--config names a file in the node's directory".into(),
        ));
    }
    Err(node::exec_node(&lab.dir, &spec, &args.config, lab.userns))
}

/// `kamo lab disk --dir DIR --pid PID NODE fill|free` (run by the supervisor for the
/// `disk-full` fault, single-threaded, before any runtime: `setns` refuses threaded callers).
pub fn disk(args: &LabDiskArgs) -> Result<ExitCode> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::Usage(
            "kamo lab disk is the supervisor's, which runs it as (namespace) root".into(),
        ));
    }
    let lab = Lab::load(&args.dir)?;
    let spec = lab.node(&args.node)?;
    crate::lab::disk::enter(&spec.name, args.pid)?;
    if args.action == "fill" {
        crate::lab::disk::fill(&lab.dir, &spec.name, lab.userns)?;
    } else {
        crate::lab::disk::free(&spec.name)?;
    }
    Ok(ExitCode::Ok)
}

pub async fn supervise(dir: &Path) -> Result<ExitCode> {
    crate::lab::supervisor::run(dir).await?;
    Ok(ExitCode::Ok)
}

pub async fn down(args: &LabDownArgs) -> Result<ExitCode> {
    let dir = lab_dir(args.dir.as_ref());
    let mut lab = Lab::load(&dir)?;
    same_mode(&lab)?;
    if let Some(db) = lab.db.as_mut() {
        crate::lab::db::stop(&dir, db).await;
        if args.purge {
            crate::lab::db::purge(&dir, db)?;
        } else {
            lab.save()?;
        }
    }
    if let Some(pid) = supervisor(&dir) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while supervisor(&dir).is_some() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    // Whatever is left (a supervisor that was killed): each node's own process tree, by PID.
    for n in &lab.nodes {
        let d = node::dir(&dir, &n.name);
        if let Some(pid) = std::fs::read_to_string(d.join("pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            && std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&d.display().to_string()))
        {
            let mut all = crate::lab::supervisor::descendants(pid);
            all.push(pid);
            for p in all {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(i32::try_from(p).unwrap_or(0)),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = std::fs::remove_file(d.join("pid"));
        let _ = std::fs::remove_file(d.join("sshd.pid"));
    }
    for f in ["ready", "supervisor.pid"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    if args.purge && lab.userns && !crate::lab::userns::inside() {
        // Some node files belong to the nodes' ubuntu: only the namespace's root may remove
        // them, so the removal runs again in a namespace of the same mapping.
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        return Ok(ExitCode::from_code(crate::lab::userns::reexec(&args)?));
    }
    if args.purge {
        release_addresses(&lab);
        for f in [
            "lab.json",
            "inventory.ini",
            "known_hosts",
            "id_ed25519",
            "id_ed25519.pub",
            "authorized_keys",
            "supervisor.log",
            "group_vars/all/settings.yml",
        ] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        for d in ["nodes", "cluster", "ctl", "userns", "apt-keys"] {
            let p = dir.join(d);
            if p.exists() {
                std::fs::remove_dir_all(&p).map_err(|e| Error::io("cannot remove", &p, e))?;
            }
        }
        for d in ["group_vars/all", "group_vars", ""] {
            let _ = std::fs::remove_dir(dir.join(d));
        }
    }
    crate::ui::print_text(&format!(
        "lab in {} is down{}",
        dir.display(),
        if args.purge { " and removed" } else { "" }
    ));
    Ok(ExitCode::Ok)
}

pub async fn status(args: &LabStatusArgs) -> Result<ExitCode> {
    let dir = lab_dir(args.dir.as_ref());
    let lab = Lab::load(&dir)?;
    let running = supervisor(&dir);
    let checks = futures::future::join_all(lab.nodes.iter().map(|n| {
        crate::lab::supervisor::wait_listening(&n.address, n.port, Duration::from_millis(300))
    }))
    .await;
    let mut rows = Vec::new();
    let mut json_nodes = Vec::new();
    for (n, listening) in lab.nodes.iter().zip(checks) {
        let recorded = std::fs::read_to_string(node::dir(&dir, &n.name).join("state"))
            .map_or_else(|_| "down".into(), |s| s.trim().to_owned());
        let state = match (recorded.as_str(), listening) {
            ("hung", _) => "hung",
            ("slow", true) => "slow",
            ("rebooting", _) => "rebooting",
            (_, true) => "up",
            (_, false) => "down",
        };
        let joined = dir
            .join("cluster/nodes")
            .join(format!("{}.json", n.name))
            .exists();
        let (packages, kubelet) = node_software(&dir, &n.name, joined);
        let disk_full = running.is_some() && crate::lab::disk::is_set(&dir, &n.name);
        rows.push(vec![
            n.name.clone(),
            if disk_full {
                format!("{state}, disk full")
            } else {
                state.to_owned()
            },
            format!("{}:{}", n.address, n.port),
            if n.gpu { "gpu".into() } else { "-".into() },
            kubelet.clone(),
            if joined { "yes".into() } else { "no".into() },
            if packages.is_empty() {
                "-".into()
            } else {
                packages.join(" ")
            },
        ]);
        json_nodes.push(serde_json::json!({
            "name": n.name, "state": state, "address": n.address, "port": n.port,
            "gpu": n.gpu, "joined": joined, "kubelet": kubelet, "packages": packages,
            "disk_full": disk_full,
        }));
    }
    let cluster: Option<crate::lab::standin::cluster::Cluster> =
        crate::lab::standin::cluster::read_json(&dir.join("cluster/cluster.json"))
            .ok()
            .flatten();
    let releases: Vec<serde_json::Value> = cluster
        .as_ref()
        .map(|c| {
            c.releases
                .iter()
                .filter_map(|r| {
                    let last = r.revisions.last()?;
                    Some(serde_json::json!({
                        "name": r.name, "namespace": r.namespace, "revision": last.revision,
                        "status": last.status, "chart": format!("{}-{}", last.chart, last.chart_version),
                        "app_version": last.app_version,
                    }))
                })
                .collect()
        })
        .unwrap_or_default();
    let database = match &lab.db {
        Some(db) => Some((db, crate::lab::db::status(&dir, db).await)),
        None => None,
    };
    if args.output == OutputFormat::Json {
        crate::ui::print_json(&serde_json::json!({
            "dir": dir, "supervisor": running, "nodes": json_nodes,
            "cluster": cluster.as_ref().map(|c| serde_json::json!({
                "control_plane": c.control_plane, "version": c.version,
            })),
            "releases": releases,
            "database": database.as_ref().map(|(db, st)| serde_json::json!({
                "address": db.address, "port": db.port, "name": db.name, "user": db.user,
                "state": st.state, "pid": st.pid, "newest_migration": st.newest_migration,
                "migrations": st.migrations, "error": st.error,
                "password_file": crate::lab::db::LabDb::password_file(&dir),
            })),
        }));
        return Ok(ExitCode::Ok);
    }
    crate::ui::print_text(&format!(
        "lab {}: {} nodes, supervisor {}",
        dir.display(),
        lab.nodes.len(),
        running.map_or_else(|| "not running".to_owned(), |p| format!("pid {p}"))
    ));
    crate::ui::print_table(
        &[
            "NODE", "STATE", "ADDRESS", "GPU", "KUBELET", "JOINED", "PACKAGES",
        ],
        rows,
    );
    match &cluster {
        Some(c) => {
            let mut text = format!(
                "\ncluster: Kubernetes {} (control plane {}), {} releases",
                c.version,
                c.control_plane,
                releases.len()
            );
            for r in &releases {
                let _ = write!(
                    text,
                    "\n  {}/{} {} ({}, revision {})",
                    r["namespace"].as_str().unwrap_or_default(),
                    r["name"].as_str().unwrap_or_default(),
                    r["chart"].as_str().unwrap_or_default(),
                    r["status"].as_str().unwrap_or_default(),
                    r["revision"]
                );
            }
            crate::ui::print_text(&text);
        }
        None => crate::ui::print_text("\ncluster: none (no `kubeadm init` yet)"),
    }
    if let Some((db, st)) = &database {
        let mut text = format!(
            "\ndatabase: {} {}@{}:{}/{}",
            st.state, db.user, db.address, db.port, db.name
        );
        if let Some(pid) = st.pid {
            let _ = write!(text, " (pid {pid})");
        }
        if st.state == "up" {
            let _ = write!(
                text,
                ", migration {} ({} applied)",
                st.newest_migration.as_deref().unwrap_or("none"),
                st.migrations
            );
        }
        if let Some(e) = &st.error {
            let _ = write!(text, ": {e}");
        }
        crate::ui::print_text(&text);
    }
    Ok(ExitCode::Ok)
}

/// The packages a node has beyond a fresh server's, and its kubelet's state, read from the
/// node's own layer of `/var/lib` (the stand-ins' databases).
fn node_software(dir: &Path, name: &str, joined: bool) -> (Vec<String>, String) {
    let state = node::dir(dir, name).join("upper/var_lib/kamo-lab");
    let db: Option<crate::lab::standin::packages::Db> =
        crate::lab::standin::cluster::read_json(&state.join("dpkg.json"))
            .ok()
            .flatten();
    let base = crate::lab::standin::catalog::base_packages();
    let packages: Vec<String> = db
        .map(|d| {
            d.packages
                .iter()
                .filter(|(n, e)| e.status == "installed" && !base.contains(&n.as_str()))
                .map(|(n, e)| format!("{n}={}", e.version))
                .collect()
        })
        .unwrap_or_default();
    let has_kubelet = packages.iter().any(|p| p.starts_with("kubelet="));
    let kubelet = if !has_kubelet {
        "-".to_owned()
    } else if joined {
        "active".to_owned()
    } else {
        "activating (auto-restart)".to_owned()
    };
    (packages, kubelet)
}

pub async fn fault(args: &LabFaultArgs) -> Result<ExitCode> {
    let dir = lab_dir(args.dir.as_ref());
    let lab = Lab::load(&dir)?;
    lab.node(&args.node)?;
    let action = args.action.as_str();
    if !crate::lab::supervisor::ACTIONS.contains(&action) || action == "reboot" {
        return Err(Error::Usage(format!(
            "fault {action:?} is not available; use one of: down, up, hang, hostkey-change, \
             slow, disk-full, clear"
        )));
    }
    if supervisor(&dir).is_none() {
        return Err(Error::Usage(format!(
            "the lab in {} is not running (`kamo lab up --dir {}`)",
            dir.display(),
            dir.display()
        )));
    }
    let ctl = lab.ctl_dir();
    std::fs::create_dir_all(&ctl).map_err(|e| Error::io("cannot create", &ctl, e))?;
    let req = ctl.join(format!("{}.{action}", args.node));
    let done = ctl.join(format!("{}.{action}.done", args.node));
    let _ = std::fs::remove_file(&done);
    std::fs::write(&req, "").map_err(|e| Error::io("cannot write", &req, e))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(&done) {
            let _ = std::fs::remove_file(&done);
            if let Some(e) = text.strip_prefix("error: ") {
                return Err(Error::Other(format!("{}: {}", args.node, e.trim())));
            }
            if action == "hostkey-change" {
                // The lab's own known_hosts keeps the old key: exactly what a client sees.
                crate::ui::print_text(&format!(
                    "{}: new host key (the lab's known_hosts still has the old one)",
                    args.node
                ));
            } else {
                crate::ui::print_text(&format!("{}: {action}", args.node));
            }
            return Ok(ExitCode::Ok);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(Error::Other(format!(
        "the lab supervisor did not carry out {action} on {} within 60 s",
        args.node
    )))
}
