//! `kamo migrate --from OLD_INV --to NEW_INV`: the cluster moves to new machines, and kamo
//! proves that nothing was lost; `kamo migrate finalize --from OLD_INV` cleans the old one.
//!
//! The steps, each journaled (pseudo-host `migrate`, see [`crate::coordinator::dbjournal`])
//! so that `kamo resume` continues where a run stopped:
//! 1. preflight (every time, also on resume): both clusters answer (`kamo check`'s probes),
//!    the data sets resolve ([`crate::coordinator::datasets`]), every source exists, every
//!    target has room for what it receives (from the source's size) and is new or empty; the
//!    databases of both clusters are found. Nothing is touched before all of it holds.
//! 2. the typed confirmation (not on resume);
//! 3. `stop-app`: the app on the old cluster stops (`clean app`); its data stays;
//! 4. `dump-db`: `pg_dump -Fc` of the old database into the state directory, checked with
//!    `pg_restore --list`, its size and SHA-256 journaled (a resume reuses it while the
//!    checksum holds);
//! 5. `copy:NAME` per data set ([`crate::transfer::copy`]): streamed, verified by manifests,
//!    moved into place; a verified data set is not sent again on resume, an interrupted one
//!    is sent again from the start;
//! 6. `deploy-infra`: Kubernetes and NFS on the new cluster, at the old cluster's version;
//! 7. `restore-db`: the dump into the new cluster's database (one transaction);
//! 8. `deploy-app`: the app on the new cluster, which starts on the restored data, then the
//!    postflight check.
//!
//! The old cluster is left as it was (app stopped, data in place) until `finalize`, which
//! refuses unless the journal holds a finished migration from that inventory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::copy::{Connected, connect_all, failure_code, human, multi_progress, progress_bar};
use super::exec::{BecomeArgs, prepare_hosts};
use crate::cli::{
    CheckPhase, ConnectionArgs, InventoryArgs, LifecycleArgs, MigrateArgs, MigrateCommand,
    MigrateFinalizeArgs, OutputFormat, ResumeArgs,
};
use crate::commands::check::{self, Cluster};
use crate::coordinator::confirm::{self, Question};
use crate::coordinator::datasets::{self, DataSet};
use crate::coordinator::dbjournal::Steps;
use crate::coordinator::matrix::{Deployable, Matrix};
use crate::coordinator::playbooks;
use crate::db::backup::{self, Backup};
use crate::db::target::DbTarget;
use crate::error::{Error, ExitCode, Result};
use crate::inventory::Inventory;
use crate::journal::{NewRun, RunState};
use crate::secret::Secret;
use crate::transfer::copy::{self as transfer, Job, Side};

/// The pseudo-host the steps are recorded on.
pub const HOST: &str = "migrate";

/// The fixed steps, in order (the `copy:NAME` steps come between `dump-db` and `deploy-infra`).
pub const STEPS: [(&str, &str); 6] = [
    (
        "stop-app",
        "stop the app on the old cluster (its data stays)",
    ),
    (
        "dump-db",
        "dump the old database (pg_dump -Fc), verify the dump",
    ),
    (
        "deploy-infra",
        "deploy Kubernetes and NFS on the new cluster",
    ),
    (
        "restore-db",
        "restore the dump into the new cluster's database",
    ),
    (
        "deploy-app",
        "deploy the app on the new cluster, postflight check",
    ),
    ("done", "done"),
];

/// What a migration is, as its journal records it (so `kamo resume` can run it again).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// Always `migrate`: tells `kamo resume` this is not a playbook run.
    pub kind: String,
    pub from: PathBuf,
    pub to: PathBuf,
    pub map: Vec<String>,
    pub playbooks: Option<PathBuf>,
    /// Node to node (`--direct`), not through the workstation.
    #[serde(default)]
    pub direct: bool,
    /// The extra secret-name patterns in force (`--secret-vars`), for the resume.
    #[serde(default)]
    pub secret_vars: Vec<String>,
}

pub async fn run(args: MigrateArgs, verbose: u8) -> Result<ExitCode> {
    if let Some(MigrateCommand::Finalize(f)) = args.command {
        return finalize(f, verbose).await;
    }
    let (Some(from), Some(to)) = (args.from.clone(), args.to.clone()) else {
        return Err(Error::Usage(
            "kamo migrate needs --from OLD_INV and --to NEW_INV".into(),
        ));
    };
    let req = Request {
        kind: "migrate".into(),
        secret_vars: crate::secret::patterns().to_vec(),
        from: std::path::absolute(&from).unwrap_or(from),
        to: std::path::absolute(&to).unwrap_or(to),
        map: args.map.clone(),
        playbooks: args.playbooks.clone(),
        direct: args.direct,
    };
    let password = if args.check {
        None
    } else {
        super::lifecycle::read_password(
            args.password_stdin,
            "admin password of the new cluster's app (also its DB and storage password): ",
            false,
        )?
    };
    let opts = Opts {
        connection: args.connection,
        ask_become_pass: args.ask_become_pass,
        state_dir: super::run::state_dir(args.state_dir.as_ref()),
        verbose,
    };
    let stdin_taken = args.password_stdin;
    execute(
        req,
        &opts,
        args.check,
        (args.yes, stdin_taken),
        password,
        None,
    )
    .await
}

/// `kamo resume` of a migration.
pub async fn resume(
    run_id: i64,
    options: &Value,
    args: &ResumeArgs,
    verbose: u8,
) -> Result<ExitCode> {
    let req: Request = super::resume::recorded(run_id, options)?;
    // The password the journal does not keep, given again as `kamo resume` takes secrets.
    let password = if args.extra_vars_stdin {
        super::resume::stdin_vars()?
            .get("admin_password")
            .and_then(Value::as_str)
            .map(|s| Secret::new(s.to_owned()))
    } else {
        None
    };
    let opts = Opts {
        connection: args.connection.clone(),
        ask_become_pass: false,
        state_dir: super::run::state_dir(args.state_dir.as_ref()),
        verbose,
    };
    execute(
        req,
        &opts,
        false,
        (true, args.extra_vars_stdin),
        password,
        Some(run_id),
    )
    .await
}

struct Opts {
    connection: ConnectionArgs,
    ask_become_pass: bool,
    state_dir: PathBuf,
    verbose: u8,
}

/// One cluster's inputs.
struct Loaded {
    path: PathBuf,
    inventory: Inventory,
    cluster: Cluster,
}

fn load_side(path: &Path, which: &str) -> Result<Loaded> {
    let inventory = Inventory::load(&[path.to_path_buf()])
        .map_err(|e| Error::Usage(format!("the {which} inventory {}: {e}", path.display())))?;
    let cluster = Cluster::from_inventory(&inventory, &[])?;
    if cluster.hosts.is_empty() {
        return Err(Error::Usage(format!(
            "the {which} inventory {} has no host",
            path.display()
        )));
    }
    Ok(Loaded {
        path: path.to_path_buf(),
        inventory,
        cluster,
    })
}

fn lifecycle_args(side: &Loaded, opts: &Opts, playbooks: Option<&PathBuf>) -> LifecycleArgs {
    LifecycleArgs {
        inventory: InventoryArgs {
            inventory: vec![side.path.clone()],
            limit: Vec::new(),
            // The vault passwords were installed from migrate's own flags.
            vault: crate::cli::VaultArgs::default(),
        },
        connection: opts.connection.clone(),
        playbooks: playbooks.cloned(),
        extra_vars: Vec::new(),
        check: false,
        plan: false,
        ask_become_pass: opts.ask_become_pass,
        state_dir: Some(opts.state_dir.clone()),
        output: OutputFormat::Text,
        grace_period: 30,
    }
}

/// The database of a cluster, from its settings (`db_host`, ...), when it has one.
fn database(side: &Loaded) -> Result<Option<DbTarget>> {
    let first = &side.cluster.hosts[0];
    let vars = side.inventory.vars_for(first);
    if vars.get("db_host").is_none() {
        return Ok(None);
    }
    let mut db = DbTarget::from_settings(&vars)?;
    db.resolve_password(true)?;
    Ok(Some(db))
}

/// Preflight of one cluster with `kamo check`'s probes; returns its deployed version.
async fn probe(
    side: &Loaded,
    matrix: &Matrix,
    opts: &Opts,
    which: &str,
) -> Result<(Option<String>, Vec<String>)> {
    let o = check::Options {
        phase: CheckPhase::Pre,
        version: None,
        max_skew: 5,
        min_free_mib: 0,
        ports: false,
    };
    let report = check::gather(
        &opts.connection,
        opts.ask_become_pass,
        &side.inventory,
        &side.cluster,
        matrix,
        &o,
    )
    .await?;
    let failed = report
        .checks
        .iter()
        .filter(|r| r.status == "fail")
        .map(|r| format!("{which} cluster: {} {}: {}", r.host, r.name, r.detail))
        .collect();
    Ok((report.app_version, failed))
}

fn say(step: &str, msg: &str) {
    crate::ui::eprint_line(&format!("[{step}] {msg}"));
}

/// A failed step: recorded, reported, the run ended as failed.
async fn fail(steps: &mut Steps, step: &str, msg: &str, code: ExitCode) -> Result<ExitCode> {
    steps.failed(step, msg).await?;
    steps.finish(RunState::Failed, Some(msg)).await?;
    crate::ui::eprint_line(&format!(
        "migrate: {step} failed: {msg}\n`kamo resume {}` continues from this step once the cause is fixed",
        steps.run_id
    ));
    Ok(code)
}

#[allow(clippy::too_many_lines)]
async fn execute(
    req: Request,
    opts: &Opts,
    check_only: bool,
    (yes, stdin_taken): (bool, bool),
    password: Option<Secret<String>>,
    resuming: Option<i64>,
) -> Result<ExitCode> {
    // 1. Preflight: inputs first, then both clusters, then every data set.
    let old = load_side(&req.from, "old")?;
    let new = load_side(&req.to, "new")?;
    let map = datasets::parse_map(&req.map, &old.inventory, &new.inventory)?;
    let sets = datasets::plan(&old.inventory, &new.inventory, &map)?;
    let root = playbooks::root(req.playbooks.as_deref())?;
    let matrix = Matrix::load(&root)?;
    let old_db = database(&old)?;
    let new_db = database(&new)?;
    if old_db.is_some() && new_db.is_none() {
        return Err(Error::Usage(format!(
            "the old cluster has a database (db_host in its settings), the new one's settings \
             ({}) name none to restore it into",
            new.path.display()
        )));
    }
    let ((old_version, mut problems), (_, new_problems)) = tokio::try_join!(
        probe(&old, &matrix, opts, "old"),
        probe(&new, &matrix, opts, "new")
    )?;
    problems.extend(new_problems);
    // Both databases answer now, not after the app was stopped.
    for (db, which) in [(old_db.as_ref(), "old"), (new_db.as_ref(), "new")] {
        if let Some(db) = db
            && let Err(f) = super::db::connect(db, None, "kamo migrate preflight").await
        {
            problems.push(format!("{which} cluster's database: {}", f.message));
        }
    }
    let version = old_version
        .clone()
        .or_else(|| old.cluster.settings_version.clone())
        .ok_or_else(|| {
            Error::Usage(
                "the old cluster's deployed version is unknown (no /etc/kamonohashi/deployed.json, \
                 no app_version in its settings)"
                    .into(),
            )
        })?;
    let deployable: Deployable = matrix.deployable(&version)?;
    if !problems.is_empty() {
        crate::ui::eprint_line(&format!(
            "preflight failed, nothing was changed:\n  {}",
            problems.join("\n  ")
        ));
        return Ok(ExitCode::HostFailed);
    }
    let become_args = BecomeArgs {
        r#become: true,
        user: None,
        ask_pass: opts.ask_become_pass,
    };
    let mut hosts_old: Vec<String> = sets.iter().map(|s| s.from_host.clone()).collect();
    hosts_old.dedup();
    let mut hosts_new: Vec<String> = sets.iter().map(|s| s.to_host.clone()).collect();
    hosts_new.dedup();
    let (ctx_old, plan_old) =
        prepare_hosts(&opts.connection, &become_args, &old.inventory, &hosts_old)?;
    let (ctx_new, plan_new) =
        prepare_hosts(&opts.connection, &become_args, &new.inventory, &hosts_new)?;
    let ((conns_old, bad_old), (conns_new, bad_new)) = tokio::join!(
        connect_all(&ctx_old, plan_old),
        connect_all(&ctx_new, plan_new)
    );
    if !bad_old.is_empty() || !bad_new.is_empty() {
        for (h, e) in bad_old.iter().chain(&bad_new) {
            crate::ui::eprint_line(&format!("{h}: UNREACHABLE: {e}"));
        }
        return Ok(ExitCode::Unreachable);
    }
    let manifests = opts.state_dir.join("manifests");
    // A resumed run: data sets it verified already are not checked (nor sent) again.
    let mut resumed = match resuming {
        Some(id) => {
            crate::ui::eprint_line(&format!("resuming run {id}"));
            Some(Steps::resume_on(&opts.state_dir, id, HOST, &STEPS).await?)
        }
        None => None,
    };
    let pending: Vec<&DataSet> = sets
        .iter()
        .filter(|s| {
            resumed
                .as_ref()
                .is_none_or(|st| st.done_before(&format!("copy:{}", s.name)).is_none())
        })
        .collect();
    let jobs: Vec<(&DataSet, Job<'_>)> = pending
        .iter()
        .map(|s| (*s, job(s, &conns_old, &conns_new, &manifests, req.direct)))
        .collect();
    let checks = futures::future::join_all(jobs.iter().map(|(_, j)| transfer::preflight(j))).await;
    let mut lines = Vec::new();
    let mut refused = Vec::new();
    let mut worst = ExitCode::Ok;
    let mut needed: BTreeMap<String, u64> = BTreeMap::new();
    for ((s, _), c) in jobs.iter().zip(checks) {
        match c {
            Ok(p) => {
                needed.insert(s.name.clone(), p.needed);
                lines.push(format!(
                    "{}: {}:{} -> {}:{} ({}{})",
                    s.name,
                    s.from_host,
                    s.from_path,
                    s.to_host,
                    s.to_path,
                    human(p.needed),
                    if p.already_there {
                        ", there already, verified"
                    } else {
                        ""
                    }
                ));
            }
            Err(f) => {
                worst = super::copy::worse(worst, failure_code(&f));
                refused.push(format!("{}: {f}", s.name));
            }
        }
    }
    if !refused.is_empty() {
        crate::ui::eprint_line(&format!(
            "preflight failed, nothing was changed:\n  {}",
            refused.join("\n  ")
        ));
        return Ok(worst);
    }
    let summary = format!(
        "migrate KAMONOHASHI {version} from {} to {}:\n  {}\n  database: {}",
        old.path.display(),
        new.path.display(),
        lines.join("\n  "),
        match (&old_db, &new_db) {
            (Some(a), Some(b)) => format!("{} -> {} (dump and restore)", a.display(), b.display()),
            _ => "none in the old cluster's settings".into(),
        }
    );
    if check_only {
        crate::ui::print_text(&format!("{summary}\npreflight passed; nothing was changed"));
        return Ok(ExitCode::Ok);
    }

    // 2. The confirmation.
    if resuming.is_none() {
        let mut hosts = old.cluster.hosts.clone();
        hosts.extend(new.cluster.hosts.iter().cloned());
        let mut destroys = vec![
            format!(
                "the app on the old cluster stops (its data stays): {}",
                old.cluster.hosts.join(", ")
            ),
            format!(
                "the new cluster's hosts get Kubernetes, NFS and KAMONOHASHI {version}: {}",
                new.cluster.hosts.join(", ")
            ),
        ];
        if let Some(b) = &new_db {
            destroys.push(format!(
                "the database {} is replaced by the old cluster's",
                b.display()
            ));
        }
        crate::ui::eprint_line(&summary);
        confirm::ask(
            &Question {
                action: "move the cluster to the new machines",
                hosts: &hosts,
                destroys: &destroys,
                word: &confirm::word_for(&new.inventory, &new.cluster.hosts),
            },
            yes,
            stdin_taken,
        )?;
    }
    let mut steps = if let Some(steps) = resumed.take() {
        steps
    } else {
        let run = NewRun {
            command: crate::journal::redact::redact_argv(&std::env::args().collect::<Vec<_>>()),
            user: crate::journal::lock::current_user(),
            playbook: format!("migrate {} -> {}", old.path.display(), new.path.display()),
            playbook_hash: String::new(),
            inventory_hash: String::new(),
            extra_vars: "{}".into(),
            options: serde_json::to_string(&req).unwrap_or_default(),
            files: Vec::new(),
        };
        Steps::start_on(&opts.state_dir, &run, HOST, &STEPS).await?
    };
    let run_id = steps.run_id;
    let manifests = manifests.join(format!("run-{run_id}"));
    let jobs: Vec<(&DataSet, Job<'_>)> = sets
        .iter()
        .map(|s| (s, job(s, &conns_old, &conns_new, &manifests, req.direct)))
        .collect();
    let ctx = Ctx {
        old: &old,
        new: &new,
        opts,
        req: &req,
        deployable: &deployable,
        old_db: old_db.as_ref(),
        new_db: new_db.as_ref(),
        sets: &sets,
        jobs: &jobs,
        needed: &needed,
        password: password.as_ref(),
    };
    let outcome = tokio::select! {
        r = run_steps(&mut steps, &ctx) => r,
        () = super::rollback::interrupted() => {
            steps.finish(RunState::Interrupted, Some("interrupted")).await?;
            crate::ui::eprint_line(&format!(
                "interrupted: the step in flight was abandoned; `kamo resume {run_id}` continues"
            ));
            return Ok(ExitCode::Interrupted);
        }
    };
    match outcome {
        Ok(()) => {
            steps.kept("done", "migrated", None).await?;
            steps.finish(RunState::Ok, None).await?;
            crate::ui::print_text(&format!(
                "migrated: KAMONOHASHI {version} runs on {}; every data set verified (manifests \
                 in {}). The old cluster is intact (app stopped); `kamo migrate finalize --from \
                 {}` cleans it.",
                new.path.display(),
                manifests.display(),
                old.path.display()
            ));
            Ok(ExitCode::Ok)
        }
        Err((step, msg, code)) => fail(&mut steps, &step, &msg, code).await,
    }
}

fn job<'a>(
    s: &'a DataSet,
    old: &'a std::collections::HashMap<String, Connected>,
    new: &'a std::collections::HashMap<String, Connected>,
    manifests: &'a Path,
    direct: bool,
) -> Job<'a> {
    let (a, b) = (&old[&s.from_host], &new[&s.to_host]);
    Job {
        name: &s.name,
        from: Side {
            host: &s.from_host,
            session: &a.session,
            sudo: a.sudo.as_ref(),
            path: &s.from_path,
            address: &a.address,
            port: a.port,
        },
        to: Side {
            host: &s.to_host,
            session: &b.session,
            sudo: b.sudo.as_ref(),
            path: &s.to_path,
            address: &b.address,
            port: b.port,
        },
        manifests,
        direct,
    }
}

struct Ctx<'a> {
    old: &'a Loaded,
    new: &'a Loaded,
    opts: &'a Opts,
    req: &'a Request,
    deployable: &'a Deployable,
    old_db: Option<&'a DbTarget>,
    new_db: Option<&'a DbTarget>,
    /// Every data set, in order; `jobs` holds those not verified by an earlier attempt.
    sets: &'a [DataSet],
    jobs: &'a [(&'a DataSet, Job<'a>)],
    needed: &'a BTreeMap<String, u64>,
    password: Option<&'a Secret<String>>,
}

type StepError = (String, String, ExitCode);

fn journal_error(step: &str) -> impl Fn(Error) -> StepError + '_ {
    move |e| (step.to_owned(), e.to_string(), e.exit_code())
}

async fn run_steps(steps: &mut Steps, c: &Ctx<'_>) -> std::result::Result<(), StepError> {
    // 3. The app on the old cluster stops; its data stays.
    let clean = playbooks::paths(&c.deployable.playbooks, "clean", "app")
        .map_err(journal_error("stop-app"))?;
    let mut vars = super::lifecycle::base_vars();
    vars.insert("purge_data".into(), json!(false));
    playbook_once(
        steps,
        c,
        "stop-app",
        c.old,
        clean,
        vars,
        "the app is stopped; its data stays",
    )
    .await?;
    // 4. The old database, dumped and checked.
    let dump = dump_db(steps, c).await?;
    // 5. The data sets: verified ones are not sent again.
    copy_sets(steps, c).await?;
    // 6. Kubernetes and NFS on the new cluster, at the old cluster's version.
    let mut vars = super::lifecycle::base_vars();
    vars.insert("app_version".into(), json!(c.deployable.version));
    if let Some(k) = &c.deployable.kube_version {
        vars.insert("kube_version".into(), json!(k));
    }
    let infra = playbooks::paths(&c.deployable.playbooks, "deploy", "infra")
        .map_err(journal_error("deploy-infra"))?;
    let done = "Kubernetes and NFS deployed";
    playbook_once(steps, c, "deploy-infra", c.new, infra, vars.clone(), done).await?;
    // 7. The dump into the new database.
    restore_db(steps, c, dump).await?;
    // 8. The app, which starts on the restored data, and the postflight check.
    let mut app = playbooks::paths(&c.deployable.playbooks, "deploy", "app")
        .map_err(journal_error("deploy-app"))?;
    app.extend(
        playbooks::paths(&c.deployable.playbooks, "check", "post")
            .map_err(journal_error("deploy-app"))?,
    );
    if let Some(pw) = c.password {
        super::lifecycle::insert_passwords(&mut vars, pw);
    }
    let done = "the app runs on the new cluster; postflight passed";
    playbook_once(steps, c, "deploy-app", c.new, app, vars, done).await
}

/// A playbook step, unless an earlier attempt did it.
async fn playbook_once(
    steps: &Steps,
    c: &Ctx<'_>,
    step: &str,
    on: &Loaded,
    files: Vec<PathBuf>,
    vars: Map<String, Value>,
    done: &str,
) -> std::result::Result<(), StepError> {
    if steps.done_before(step).is_some() {
        let msg = "done by an earlier attempt";
        steps
            .kept(step, msg, None)
            .await
            .map_err(journal_error(step))?;
        say(step, msg);
        return Ok(());
    }
    steps.begin(step).await.map_err(journal_error(step))?;
    say(
        step,
        &format!("running {} on {}", names(&files), on.path.display()),
    );
    let args = lifecycle_args(on, c.opts, c.req.playbooks.as_ref());
    playbook_step(step, args, files, vars, c.opts.verbose).await?;
    steps
        .ok(step, true, done, None)
        .await
        .map_err(journal_error(step))
}

fn names(files: &[PathBuf]) -> String {
    files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `pg_dump` of the old database (or the dump of an earlier attempt, while its checksum holds).
async fn dump_db(steps: &Steps, c: &Ctx<'_>) -> std::result::Result<Option<Backup>, StepError> {
    let step = "dump-db";
    let Some(db) = c.old_db else {
        let msg = "no database in the old cluster's settings";
        steps
            .skipped(step, msg)
            .await
            .map_err(journal_error(step))?;
        return Ok(None);
    };
    let earlier: Option<Backup> = steps
        .registered(step)
        .and_then(|v| serde_json::from_value(v).ok());
    if let Some(b) = earlier.filter(backup::still_valid) {
        let v = serde_json::to_value(&b).unwrap_or_default();
        let msg = format!("kept {} (checksum verified)", b.path.display());
        steps
            .kept(step, &msg, Some(&v))
            .await
            .map_err(journal_error(step))?;
        say(step, &msg);
        return Ok(Some(b));
    }
    steps.begin(step).await.map_err(journal_error(step))?;
    let dir = c.opts.state_dir.join("backups");
    let name = backup::file_name(db, "migrate");
    let b = backup::dump(db, None, &dir, &name).await.map_err(|e| {
        (
            step.to_owned(),
            format!("{e}; the old cluster's data is untouched"),
            ExitCode::HostFailed,
        )
    })?;
    let v = serde_json::to_value(&b).unwrap_or_default();
    let msg = b.describe();
    steps
        .ok(step, true, &msg, Some(&v))
        .await
        .map_err(journal_error(step))?;
    say(step, &msg);
    Ok(Some(b))
}

/// How many data sets move at once (each is one stream and, after it, two hashing passes).
pub const PARALLEL_SETS: usize = 3;

/// Every data set not verified by an earlier attempt: checked, streamed, verified, in place;
/// [`PARALLEL_SETS`] at a time. One that fails does not stop the others (each is recorded on
/// its own, so a resume sends only what did not verify); the first failure, in data set order,
/// is the step's.
async fn copy_sets(steps: &Steps, c: &Ctx<'_>) -> std::result::Result<(), StepError> {
    let multi = multi_progress();
    let sem = tokio::sync::Semaphore::new(PARALLEL_SETS);
    let results = futures::future::join_all(c.sets.iter().map(|s| {
        let (sem, multi) = (&sem, &multi);
        async move {
            let _permit = sem.acquire().await;
            copy_one(steps, c, s, multi).await
        }
    }))
    .await;
    results.into_iter().collect()
}

async fn copy_one(
    steps: &Steps,
    c: &Ctx<'_>,
    s: &DataSet,
    multi: &indicatif::MultiProgress,
) -> std::result::Result<(), StepError> {
    let step = format!("copy:{}", s.name);
    if steps.done_before(&step).is_some() {
        let earlier = steps.registered(&step);
        let msg = "verified by an earlier attempt";
        steps
            .kept(&step, msg, earlier.as_ref())
            .await
            .map_err(journal_error(&step))?;
        say(&step, &format!("{msg}: not sent again"));
        return Ok(());
    }
    let Some((_, job)) = c.jobs.iter().find(|(d, _)| d.name == s.name) else {
        return Ok(());
    };
    steps.begin(&step).await.map_err(journal_error(&step))?;
    let failed = |f: transfer::Failure| (step.clone(), f.to_string(), failure_code(&f));
    let pre = transfer::preflight(job).await.map_err(failed)?;
    if pre.already_there {
        let msg = "the target holds the source already (verified): nothing sent";
        steps
            .ok(&step, false, msg, None)
            .await
            .map_err(journal_error(&step))?;
        say(&step, msg);
        return Ok(());
    }
    let total = c.needed.get(&s.name).copied().unwrap_or(pre.needed);
    let bar = progress_bar(multi, &s.name, total);
    let done = transfer::copy(job, Some(&bar)).await;
    bar.finish_and_clear();
    let done = match done {
        Ok(d) => d,
        Err(f) => {
            let e = failed(f);
            // Recorded now: the other data sets go on, and the run ends with this failure.
            steps
                .failed(&step, &e.1)
                .await
                .map_err(journal_error(&step))?;
            return Err(e);
        }
    };
    let msg = format!(
        "{}:{} -> {}:{}: {} files, {} in {:.1}s, verified",
        s.from_host,
        s.from_path,
        s.to_host,
        s.to_path,
        done.files,
        human(done.bytes),
        done.seconds
    );
    let v = serde_json::to_value(&done).unwrap_or_default();
    steps
        .ok(&step, true, &msg, Some(&v))
        .await
        .map_err(journal_error(&step))?;
    say(&step, &msg);
    Ok(())
}

/// `pg_restore` of the dump into the new cluster's database, in one transaction.
async fn restore_db(
    steps: &Steps,
    c: &Ctx<'_>,
    dump: Option<Backup>,
) -> std::result::Result<(), StepError> {
    let step = "restore-db";
    let (Some(b), Some(db)) = (dump, c.new_db) else {
        let msg = "no database to restore";
        return steps.skipped(step, msg).await.map_err(journal_error(step));
    };
    if steps.done_before(step).is_some() {
        let msg = "done by an earlier attempt";
        return steps
            .kept(step, msg, None)
            .await
            .map_err(journal_error(step));
    }
    steps.begin(step).await.map_err(journal_error(step))?;
    if !backup::still_valid(&b) {
        let msg = format!(
            "the dump {} changed since it was verified",
            b.path.display()
        );
        return Err((step.into(), msg, ExitCode::Other));
    }
    backup::restore(db, None, &b.path)
        .await
        .map_err(|e| (step.to_owned(), e.to_string(), ExitCode::HostFailed))?;
    let msg = format!("{} restored into {}", b.path.display(), db.display());
    steps
        .ok(step, true, &msg, None)
        .await
        .map_err(journal_error(step))?;
    say(step, &msg);
    Ok(())
}

async fn playbook_step(
    step: &str,
    args: LifecycleArgs,
    files: Vec<PathBuf>,
    vars: Map<String, Value>,
    verbose: u8,
) -> std::result::Result<(), StepError> {
    let names = names(&files);
    let code = super::lifecycle::run_playbooks(&args, files, vars, verbose)
        .await
        .map_err(journal_error(step))?;
    if code == ExitCode::Ok {
        Ok(())
    } else {
        Err((
            step.to_owned(),
            format!("{names} ended with exit code {}", code as u8),
            code,
        ))
    }
}

/// `kamo migrate finalize --from OLD_INV`.
async fn finalize(args: MigrateFinalizeArgs, verbose: u8) -> Result<ExitCode> {
    let from = std::path::absolute(&args.from).unwrap_or(args.from.clone());
    let old = load_side(&from, "old")?;
    let state_dir = super::run::state_dir(args.state_dir.as_ref());
    let finished = finished_migration(&state_dir, &from).await?;
    match (&finished, args.force) {
        (Some(id), _) => crate::ui::eprint_line(&format!(
            "run {id} migrated this cluster and finished; its data is verified on the new one"
        )),
        (None, true) => crate::ui::eprint_line(
            "warning: no finished migration from this inventory in the journal (--force)",
        ),
        (None, false) => {
            return Err(Error::Usage(format!(
                "no finished `kamo migrate --from {}` in the journal at {}: the old cluster may \
                 hold the only copy of its data; finish the migration (`kamo resume`), or pass \
                 --force",
                from.display(),
                state_dir.display()
            )));
        }
    }
    let root = playbooks::root(args.playbooks.as_deref())?;
    let matrix = Matrix::load(&root)?;
    let version = old
        .cluster
        .settings_version
        .clone()
        .ok_or_else(|| Error::Usage("the old cluster's settings have no app_version".into()))?;
    let d = matrix.deployable(&version)?;
    let files = playbooks::paths(&d.playbooks, "clean", "all")?;
    let mut destroys = vec![format!(
        "Kubernetes, NFS and the app are uninstalled from {}",
        old.cluster.hosts.join(", ")
    )];
    if args.purge_data {
        destroys.push(format!(
            "the old data is deleted: {}",
            old.cluster.storage_paths.join(", ")
        ));
    }
    confirm::ask(
        &Question {
            action: "clean the old cluster (clean all)",
            hosts: &old.cluster.hosts,
            destroys: &destroys,
            word: &confirm::word_for(&old.inventory, &old.cluster.hosts),
        },
        args.yes,
        false,
    )?;
    let opts = Opts {
        connection: args.connection,
        ask_become_pass: args.ask_become_pass,
        state_dir,
        verbose,
    };
    let mut vars = super::lifecycle::base_vars();
    vars.insert("purge_data".into(), json!(args.purge_data));
    vars.insert("app_version".into(), json!(version));
    super::lifecycle::run_playbooks(
        &lifecycle_args(&old, &opts, args.playbooks.as_ref()),
        files,
        vars,
        verbose,
    )
    .await
}

/// The newest migration from `from` that finished, by run id.
async fn finished_migration(state_dir: &Path, from: &Path) -> Result<Option<i64>> {
    let Ok(mut j) = crate::journal::Journal::open_existing(state_dir).await else {
        return Ok(None);
    };
    let runs = crate::journal::query::runs(&mut j).await?;
    Ok(runs.into_iter().find_map(|r| {
        let opts: Request = serde_json::from_str(&r.options).ok()?;
        (opts.kind == "migrate" && opts.from == from && r.state == "ok").then_some(r.id)
    }))
}
