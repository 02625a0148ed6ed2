//! The KAMONOHASHI lifecycle verbs: `deploy`, `clean`, `update`, `credentials`, `rebuild`.
//!
//! Each verb is a short sequence: find the playbooks (the version's directory from the
//! matrix), settle the variables (version, Kubernetes version, passwords from stdin or a hidden
//! prompt), ask the typed confirmation a destructive verb needs, then hand one run to the same
//! engine `kamo run` uses, so every verb is journaled, resumable with `kamo resume`, and shown
//! exactly by `kamo plan` of the same playbooks.
//!
//! Passwords never reach a command line: they travel as extra variables inside the task
//! scripts (sent on the SSH channel's stdin), the playbooks mark those tasks `no_log`, and the
//! journal keeps only their names (`kamo resume` asks for them again).

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use serde_json::{Map, Value, json};

use crate::cli::{
    CheckPhase, CleanArgs, CleanTarget, CredentialsArgs, CredentialsTarget, DeployArgs,
    DeployTarget, LifecycleArgs, PlaybookArgs, RebuildArgs, RunArgs, UpdateArgs, UpdateTarget,
};
use crate::commands::check::{self, Cluster, DEPLOYED_JSON};
use crate::coordinator::confirm::{self, Question};
use crate::coordinator::matrix::{Deployable, Matrix};
use crate::coordinator::playbooks;
use crate::error::{Error, ExitCode, Result};
use crate::inventory::Inventory;
use crate::secret::Secret;

/// The loaded inputs every verb starts from.
struct Context {
    root: PathBuf,
    matrix: Matrix,
    inventory: Inventory,
    cluster: Cluster,
}

fn context(common: &LifecycleArgs) -> Result<Context> {
    let root = playbooks::root(common.playbooks.as_deref())?;
    let matrix = Matrix::load(&root)?;
    let sources = super::inventory_sources(&common.inventory)?;
    let inventory = Inventory::load(&sources)?;
    let cluster = Cluster::from_inventory(&inventory, &common.inventory.limit)?;
    if cluster.hosts.is_empty() {
        return Err(Error::Usage(
            "the inventory (with --limit) selects no host".into(),
        ));
    }
    Ok(Context {
        root,
        matrix,
        inventory,
        cluster,
    })
}

/// The version to deploy: `--version`, else the settings' `app_version`; it must be deployable.
fn target_version(ctx: &Context, flag: Option<&str>) -> Result<Deployable> {
    let v = flag
        .map(str::to_owned)
        .or_else(|| ctx.cluster.settings_version.clone())
        .ok_or_else(|| {
            Error::Usage(
                "no app version: pass --version V or set app_version in the inventory's \
                 group_vars/all/settings.yml"
                    .into(),
            )
        })?;
    ctx.matrix.deployable(&v)
}

/// One run of `files` with `vars`, through the engine `kamo run` uses.
pub(crate) async fn run_playbooks(
    common: &LifecycleArgs,
    files: Vec<PathBuf>,
    vars: Map<String, Value>,
    verbose: u8,
) -> Result<ExitCode> {
    let mut extra = vec![Value::Object(vars).to_string()];
    // The operator's own -e come last, so they win, as with `kamo run`.
    extra.extend(common.extra_vars.iter().cloned());
    let playbook_args = PlaybookArgs {
        extra_vars: extra.clone(),
        tags: Vec::new(),
        skip_tags: Vec::new(),
        start_at_task: None,
        r#become: false,
        become_user: None,
        ask_become_pass: false,
    };
    if common.plan {
        let mut worst = ExitCode::Ok;
        for f in files {
            let code = super::plan::run(&crate::cli::PlanArgs {
                playbook: f,
                inventory: common.inventory.clone(),
                vars: playbook_args.clone(),
                scripts: false,
                output: common.output,
            })?;
            if code != ExitCode::Ok {
                worst = code;
            }
        }
        return Ok(worst);
    }
    let args = RunArgs {
        playbooks: files,
        inventory: common.inventory.clone(),
        connection: common.connection.clone(),
        playbook: PlaybookArgs {
            ask_become_pass: common.ask_become_pass,
            ..playbook_args
        },
        check: common.check,
        diff: false,
        step: false,
        state_dir: common.state_dir.clone(),
        output: common.output,
        grace_period: common.grace_period,
        task_timeout: None,
    };
    super::run::execute(args, verbose, None).await
}

pub(crate) fn base_vars() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("kamo_version".into(), json!(env!("CARGO_PKG_VERSION")));
    m
}

/// A password from one line of stdin (`--password-stdin`) or a hidden prompt typed twice;
/// `None` when neither is possible or the operator leaves it empty.
pub(crate) fn read_password(
    from_stdin: bool,
    prompt: &str,
    required: bool,
) -> Result<Option<Secret<String>>> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Error::Other(format!("cannot read the password from stdin: {e}")))?;
        let pw = line.trim_end_matches(['\n', '\r']).to_owned();
        return check_password(pw).map(Some);
    }
    if !std::io::stdin().is_terminal() {
        if required {
            return Err(Error::Usage(
                "no terminal to ask for the password on: pass it with --password-stdin".into(),
            ));
        }
        return Ok(None);
    }
    let first = rpassword::prompt_password(prompt)
        .map_err(|e| Error::Other(format!("cannot read the password: {e}")))?;
    if first.is_empty() && !required {
        return Ok(None);
    }
    let again = rpassword::prompt_password("Again: ")
        .map_err(|e| Error::Other(format!("cannot read the password: {e}")))?;
    if first != again {
        return Err(Error::Usage(
            "the two passwords differ; nothing was changed".into(),
        ));
    }
    check_password(first).map(Some)
}

fn check_password(pw: String) -> Result<Secret<String>> {
    if pw.chars().count() < 8 {
        return Err(Error::Usage(
            "the password is shorter than 8 characters; nothing was changed".into(),
        ));
    }
    if pw.chars().any(char::is_control) {
        return Err(Error::Usage(
            "the password holds control characters; nothing was changed".into(),
        ));
    }
    Ok(Secret::new(pw))
}

pub(crate) fn insert_passwords(vars: &mut Map<String, Value>, pw: &Secret<String>) {
    // As the deploy tool does: the admin password is also the DB and storage password.
    for k in [
        "kqi_admin_password",
        "kqi_db_password",
        "kqi_storage_password",
    ] {
        vars.insert(k.into(), json!(pw.expose()));
    }
}

pub async fn deploy(args: DeployArgs, verbose: u8) -> Result<ExitCode> {
    let ctx = context(&args.common)?;
    let target = target_version(&ctx, args.version.as_deref())?;
    let name = match args.target {
        DeployTarget::All => "all",
        DeployTarget::Infra => "infra",
        DeployTarget::Nfs => "nfs",
        DeployTarget::K8s => "k8s",
        DeployTarget::App => "app",
    };
    let files = playbooks::paths(&target.playbooks, "deploy", name)?;
    let mut vars = base_vars();
    vars.insert("app_version".into(), json!(target.version));
    if args.version.is_some()
        && matches!(
            args.target,
            DeployTarget::All | DeployTarget::Infra | DeployTarget::K8s
        )
        && let Some(k) = &target.kube_version
    {
        vars.insert("kube_version".into(), json!(k));
    }
    if matches!(args.target, DeployTarget::All | DeployTarget::App) {
        let pw = if (args.yes || args.common.plan) && !args.password_stdin {
            None
        } else {
            read_password(
                args.password_stdin,
                "Admin password (empty: keep the cluster's, or generate one on the first deploy): ",
                false,
            )?
        };
        if let Some(pw) = pw {
            insert_passwords(&mut vars, &pw);
        }
    }
    let code = run_playbooks(&args.common, files, vars, verbose).await?;
    if code == ExitCode::Ok
        && matches!(args.target, DeployTarget::All | DeployTarget::App)
        && !args.common.check
        && !args.common.plan
    {
        crate::ui::eprint_line(
            "the app's passwords are in the cluster's secret: `kamo credentials show` prints them",
        );
    }
    Ok(code)
}

/// What `clean TARGET` destroys, for the confirmation.
fn clean_losses(ctx: &Context, target: CleanTarget, purge: bool) -> Vec<String> {
    let storage = ctx
        .cluster
        .storage
        .clone()
        .unwrap_or_else(|| "the storage node".into());
    let paths = ctx.cluster.storage_paths.join(" and ");
    match target {
        CleanTarget::All => {
            let mut v = vec![
                "the app (Helm release kamonohashi in kqi-system) and every pod and job".to_owned(),
                "Kubernetes on every host (kubeadm reset; kubeadm, kubelet, kubectl, containerd \
                 purged; /etc/kubernetes, /var/lib/etcd, /var/lib/kubelet removed)"
                    .to_owned(),
                "NVIDIA driver and container toolkit packages on the GPU nodes".to_owned(),
                format!("{DEPLOYED_JSON} on every host"),
            ];
            v.push(if purge {
                format!("THE DATA on {storage}: {paths} (--purge-data)")
            } else {
                format!("(kept: the data on {storage}: {paths}; --purge-data would delete it)")
            });
            v
        }
        CleanTarget::App => vec![
            "the app (Helm release kamonohashi in kqi-system); its database and storage data \
             on disk are kept"
                .to_owned(),
        ],
        CleanTarget::NvidiaRepo => vec!["the NVIDIA apt repositories and keys".to_owned()],
        CleanTarget::NvidiaPackages => {
            vec!["the NVIDIA driver and container toolkit packages".to_owned()]
        }
    }
}

pub async fn clean(args: CleanArgs, verbose: u8) -> Result<ExitCode> {
    let ctx = context(&args.common)?;
    let name = match args.target {
        CleanTarget::All => "all",
        CleanTarget::App => "app",
        CleanTarget::NvidiaRepo => "nvidia-repo",
        CleanTarget::NvidiaPackages => "nvidia-packages",
    };
    let files = playbooks::paths(&ctx.root, "clean", name)?;
    let mut vars = base_vars();
    vars.insert("purge_data".into(), json!(args.purge_data));
    if !args.common.check && !args.common.plan {
        let losses = clean_losses(&ctx, args.target, args.purge_data);
        confirm::ask(
            &Question {
                action: &format!("clean {name}"),
                hosts: &ctx.cluster.hosts,
                destroys: &losses,
                word: &confirm::word_for(&ctx.inventory, &ctx.cluster.hosts),
            },
            args.yes,
            false,
        )?;
    }
    run_playbooks(&args.common, files, vars, verbose).await
}

pub async fn update(args: UpdateArgs, verbose: u8) -> Result<ExitCode> {
    let ctx = context(&args.common)?;
    let (name, dir, vars) = match args.target {
        UpdateTarget::App => {
            let t = target_version(&ctx, args.version.as_deref())?;
            let mut vars = base_vars();
            vars.insert("app_version".into(), json!(t.version));
            ("app", t.playbooks, vars)
        }
        UpdateTarget::NodeConf => ("node-conf", ctx.root.clone(), base_vars()),
        UpdateTarget::KubeCerts => ("kube-certs", ctx.root.clone(), base_vars()),
    };
    if args.version.is_some() && args.target != UpdateTarget::App {
        return Err(Error::Usage(format!(
            "--version applies to `update app`, not `update {name}`"
        )));
    }
    let files = playbooks::paths(&dir, "update", name)?;
    run_playbooks(&args.common, files, vars, verbose).await
}

pub async fn credentials(args: CredentialsArgs, verbose: u8) -> Result<ExitCode> {
    let ctx = context(&args.common)?;
    let kind = match args.target {
        CredentialsTarget::Db => "db",
        CredentialsTarget::Storage => "storage",
        CredentialsTarget::All => "all",
        CredentialsTarget::Show => return show_credentials(&args, &ctx).await,
    };
    let files = playbooks::paths(&ctx.root, "credentials", kind)?;
    let pw = read_password(args.password_stdin, &format!("New {kind} password: "), true)?
        .ok_or_else(|| Error::Usage("no password given; nothing was changed".into()))?;
    let mut vars = base_vars();
    vars.insert("credential_kind".into(), json!(kind));
    vars.insert("new_password".into(), json!(pw.expose()));
    run_playbooks(&args.common, files, vars, verbose).await
}

/// Prints the app's credentials from the cluster's secret (read on the master with sudo).
async fn show_credentials(args: &CredentialsArgs, ctx: &Context) -> Result<ExitCode> {
    let master = ctx
        .cluster
        .master
        .clone()
        .ok_or_else(|| Error::Usage("the inventory has no kube-master host".into()))?;
    let sudo = super::exec::BecomeArgs {
        r#become: true,
        user: None,
        ask_pass: args.common.ask_become_pass,
    };
    let (ssh, plan) = super::exec::prepare_hosts(
        &args.common.connection,
        &sudo,
        &ctx.inventory,
        std::slice::from_ref(&master),
    )?;
    let cmd = format!(
        "KUBECONFIG=/etc/kubernetes/admin.conf kubectl get secret {SECRET} -n {} -o json",
        check::NAMESPACE
    );
    let commands: std::collections::HashMap<String, String> =
        std::iter::once((master.clone(), cmd)).collect();
    let results = super::exec::run_all(&ssh, plan, &commands, 1).await;
    let Some(r) = results.into_iter().next() else {
        return Err(Error::Other(format!("{master}: no answer")));
    };
    if r.status != super::exec::Status::Ok {
        return Err(Error::Other(format!(
            "{master}: cannot read the secret {SECRET} in {}: {}",
            check::NAMESPACE,
            crate::ui::sanitize(&r.stderr).trim()
        )));
    }
    let v: Value = serde_json::from_slice(&r.stdout)
        .map_err(|e| Error::Other(format!("{master}: unreadable secret: {e}")))?;
    let mut rows = Vec::new();
    if let Some(data) = v["data"].as_object() {
        for (k, val) in data {
            let text = val
                .as_str()
                .and_then(|b| {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.decode(b).ok()
                })
                .map(|b| crate::ui::sanitize(&b))
                .unwrap_or_default();
            rows.push(vec![k.clone(), text]);
        }
    }
    crate::ui::print_table(&["KEY", "VALUE"], rows);
    Ok(ExitCode::Ok)
}

/// The Kubernetes secret that holds the app's credentials.
pub const SECRET: &str = "kamonohashi-credentials";

pub async fn rebuild(args: RebuildArgs, verbose: u8) -> Result<ExitCode> {
    let ctx = context(&args.common)?;
    let target = ctx.matrix.deployable(&args.to_version)?;
    // 1. Preflight (not in a dry run, which connects to nothing): every host answers, sudo
    //    works, the OS suits the target version; it also reads what is deployed now.
    let deployed_now = if args.common.plan {
        None
    } else {
        let opts = check::Options {
            phase: CheckPhase::Pre,
            version: Some(target.version.clone()),
            max_skew: 5,
            min_free_mib: 0,
            ports: false,
        };
        let report = check::gather(
            &args.common.connection,
            args.common.ask_become_pass,
            &ctx.inventory,
            &ctx.cluster,
            &ctx.matrix,
            &opts,
        )
        .await?;
        let failed: Vec<String> = report
            .checks
            .iter()
            .filter(|r| r.status == "fail")
            .map(|r| format!("{} {}: {}", r.host, r.name, r.detail))
            .collect();
        if !failed.is_empty() {
            crate::ui::eprint_line(&format!(
                "preflight failed, nothing was changed:\n  {}",
                failed.join("\n  ")
            ));
            return Ok(ExitCode::HostFailed);
        }
        report.app_version
    };
    // 2. The version deployed now chooses the clean playbooks.
    let from = args.from_version.clone().or(deployed_now);
    let (old_dir, old_version) = if let Some(v) = &from {
        let d = ctx.matrix.deployable(v).map_err(|e| {
            Error::Usage(format!(
                "the cluster runs {v} ({DEPLOYED_JSON}), whose playbooks kamo does not have: {e}"
            ))
        })?;
        (d.playbooks, Some(d.version))
    } else {
        crate::ui::eprint_line(&format!(
            "no deployed version known ({DEPLOYED_JSON} on no host{}): cleaning with the {} \
             playbooks",
            if args.common.plan {
                ", and --plan reads no host: pass --from-version"
            } else {
                ""
            },
            target.version
        ));
        (target.playbooks.clone(), None)
    };
    let mut files = playbooks::paths(&old_dir, "clean", "all")?;
    files.extend(playbooks::paths(&target.playbooks, "deploy", "all")?);
    files.extend(playbooks::paths(&target.playbooks, "check", "post")?);
    let pw = if args.password_stdin {
        read_password(true, "", true)?
    } else {
        None
    };
    // 3. One confirmation naming every host and what goes.
    if !args.common.check && !args.common.plan {
        let mut losses = clean_losses(&ctx, CleanTarget::All, args.purge_data);
        losses.push(format!(
            "then: deploy KAMONOHASHI {} (Kubernetes {}) from scratch{}",
            target.version,
            target.kube_version.as_deref().unwrap_or("?"),
            old_version
                .as_ref()
                .map(|o| format!("; now deployed: {o}"))
                .unwrap_or_default()
        ));
        confirm::ask(
            &Question {
                action: &format!("rebuild the cluster at version {}", target.version),
                hosts: &ctx.cluster.hosts,
                destroys: &losses,
                word: &confirm::word_for(&ctx.inventory, &ctx.cluster.hosts),
            },
            args.yes,
            args.password_stdin,
        )?;
    }
    // 4. clean all (old) + deploy all (new) + postflight, as one journaled run.
    let mut vars = base_vars();
    vars.insert("app_version".into(), json!(target.version));
    if let Some(k) = &target.kube_version {
        vars.insert("kube_version".into(), json!(k));
    }
    vars.insert("purge_data".into(), json!(args.purge_data));
    if let Some(o) = &old_version {
        vars.insert("previous_app_version".into(), json!(o));
    }
    if let Some(pw) = pw {
        insert_passwords(&mut vars, &pw);
    }
    run_playbooks(&args.common, files, vars, verbose).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_control_passwords_are_refused() {
        assert!(check_password("short".into()).is_err());
        assert!(check_password("has\u{7}bell-char".into()).is_err());
        assert_eq!(
            check_password("long enough".into()).unwrap().expose(),
            "long enough"
        );
    }

    #[test]
    fn one_password_becomes_all_three() {
        let mut m = Map::new();
        insert_passwords(&mut m, &Secret::new("s3cret-pass".to_owned()));
        assert_eq!(m.len(), 3);
        assert!(
            crate::journal::redact::secret_keys(&m).len() == 3,
            "every key is treated as secret"
        );
    }
}
