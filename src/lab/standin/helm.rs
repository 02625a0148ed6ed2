//! `helm` stand-in: releases kept with the cluster (as helm keeps them in Secrets), repositories
//! in the user's own `repositories.yaml` (per node, as on real machines).
//!
//! Charts are not rendered: a release's workloads are a fixed, plausible set per chart (the
//! KAMONOHASHI chart gets its web, API, PostgreSQL and MinIO pods; a device-plugin or CNI chart
//! a DaemonSet; anything else one Deployment), which is what `kubectl get pods` and
//! `kubectl exec` in a playbook need. Errors a real helm gives for an unreachable cluster,
//! a missing namespace, a reused name or an unknown release are given word for word.

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::cluster::{self, Args, Reach, Release, Revision, Store, uitable};
use super::kube::{self, Workload};
use super::{Io, Node};

const DEFAULT_HELM_VERSION: &str = "3.13.1";

fn helm_flags(name: &str) -> Option<bool> {
    match name {
        "version" | "n" | "namespace" | "f" | "values" | "set" | "set-string" | "timeout" | "o"
        | "output" | "kubeconfig" | "kube-context" | "repo" | "description" | "username"
        | "password" | "max" => Some(true),
        "i" | "install" | "create-namespace" | "wait" | "A" | "all-namespaces" | "short"
        | "atomic" | "debug" | "reuse-values" | "reset-values" | "dry-run" | "force"
        | "wait-for-jobs" | "all" | "a" | "deployed" | "failed" | "force-update"
        | "cleanup-on-fail" | "keep-history" | "q" | "dependency-update" => Some(false),
        _ => None,
    }
}

/// `helm`.
pub fn helm(node: &Node, args: &[String], io: &mut Io) -> i32 {
    let a = match Args::parse(args, helm_flags) {
        Ok(a) => a,
        Err(e) => {
            io.err(&format!("Error: {e}\n"));
            return 1;
        }
    };
    let words: Vec<&str> = a.positional.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        ["version", ..] => {
            version(node, &a, io);
            Ok(())
        }
        ["repo", rest @ ..] => repo(node, rest, &a, io),
        ["install", release, chart] => install(node, &a, release, chart, false, io),
        ["upgrade", release, chart] => install(node, &a, release, chart, true, io),
        ["uninstall" | "delete" | "un" | "del", names @ ..] if !names.is_empty() => {
            uninstall(node, &a, names, io)
        }
        ["list" | "ls"] => list(node, &a, io),
        ["status", release] => status(node, &a, release, io),
        ["history" | "hist", release] => history(node, &a, release, io),
        [] => {
            io.out("The Kubernetes package manager\n\nUsage:\n  helm [command]\n");
            Ok(())
        }
        [cmd, ..] => Err(format!(
            "unknown command \"{cmd}\" for \"helm\"\nRun 'helm --help' for usage."
        )),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            io.err(&format!("Error: {e}\n"));
            1
        }
    }
}

fn version(node: &Node, a: &Args, io: &mut Io) {
    let v = match cluster::package_version(node, "helm") {
        Some(v) if !v.is_empty() => v,
        _ => DEFAULT_HELM_VERSION.into(),
    };
    if a.has(&["short"]) {
        io.out(&format!("v{v}+g3547a4b\n"));
    } else {
        io.out(&format!("version.BuildInfo{{Version:\"v{v}\", GitCommit:\"3547a4b5bf5edb5478ce352e18858d8a552a4110\", GitTreeState:\"clean\", GoVersion:\"go1.20.8\"}}\n"));
    }
}

fn repo_file() -> String {
    cluster::env("HELM_REPOSITORY_CONFIG")
        .unwrap_or_else(|| format!("{}/.config/helm/repositories.yaml", cluster::home()))
}

/// (name, url) of the configured repositories.
fn repos(node: &Node) -> Vec<(String, String)> {
    let Ok(text) = fs::read_to_string(node.path(&repo_file())) else {
        return Vec::new();
    };
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap_or_default();
    v.get("repositories")
        .and_then(|r| r.as_sequence())
        .map(|rs| {
            rs.iter()
                .filter_map(|r| {
                    Some((
                        r.get("name")?.as_str()?.to_string(),
                        r.get("url")?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn save_repos(node: &Node, list: &[(String, String)]) -> Result<(), String> {
    let mut text =
        "apiVersion: \"\"\ngenerated: \"0001-01-01T00:00:00Z\"\nrepositories:\n".to_string();
    for (name, url) in list {
        text.push_str(&format!("- caFile: \"\"\n  certFile: \"\"\n  insecure_skip_tls_verify: false\n  keyFile: \"\"\n  name: {name}\n  pass_credentials_all: false\n  password: \"\"\n  url: {url}\n  username: \"\"\n"));
    }
    cluster::write_atomic(&node.path(&repo_file()), text.as_bytes())
}

fn repo(node: &Node, rest: &[&str], a: &Args, io: &mut Io) -> Result<(), String> {
    let mut list = repos(node);
    match rest {
        ["add", name, url] => {
            if let Some((_, old)) = list.iter().find(|(n, _)| n == name) {
                if old == url {
                    io.out(&format!(
                        "\"{name}\" already exists with the same configuration, skipping\n"
                    ));
                    return Ok(());
                }
                if !a.has(&["force-update"]) {
                    return Err(format!(
                        "repository name ({name}) already exists, please specify a different name"
                    ));
                }
                list.retain(|(n, _)| n != name);
            }
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(format!(
                    "could not find protocol handler for: {}",
                    url.split(':').next().unwrap_or_default()
                ));
            }
            list.push(((*name).to_string(), (*url).to_string()));
            save_repos(node, &list)?;
            io.out(&format!("\"{name}\" has been added to your repositories\n"));
            Ok(())
        }
        ["update" | "up", only @ ..] => {
            if list.is_empty() {
                return Err("no repositories found. You must add one before updating".into());
            }
            io.out("Hang tight while we grab the latest from your chart repositories...\n");
            for (name, _) in list
                .iter()
                .filter(|(n, _)| only.is_empty() || only.contains(&n.as_str()))
            {
                io.out(&format!(
                    "...Successfully got an update from the \"{name}\" chart repository\n"
                ));
            }
            io.out("Update Complete. ⎈Happy Helming!⎈\n");
            Ok(())
        }
        ["list" | "ls"] => {
            if list.is_empty() {
                return Err("no repositories to show".into());
            }
            let mut rows = vec![vec!["NAME".to_string(), "URL".to_string()]];
            rows.extend(list.into_iter().map(|(n, u)| vec![n, u]));
            io.out(&uitable(&rows));
            Ok(())
        }
        ["remove" | "rm", names @ ..] if !names.is_empty() => {
            for name in names {
                if !list.iter().any(|(n, _)| n == name) {
                    return Err(format!("no repo named \"{name}\" found"));
                }
                list.retain(|(n, _)| n != name);
                io.out(&format!(
                    "\"{name}\" has been removed from your repositories\n"
                ));
            }
            save_repos(node, &list)
        }
        _ => Err("unknown command for \"helm repo\"".into()),
    }
}

/// (chart name, chart version, app version) of a chart reference.
fn resolve_chart(
    node: &Node,
    chart: &str,
    version: Option<&str>,
) -> Result<(String, String, String), String> {
    let path = node.path(chart);
    let local = chart.starts_with('.') || chart.starts_with('/') || path.exists();
    if local {
        if !path.exists() {
            return Err(format!("path \"{chart}\" not found"));
        }
        if path.is_file() {
            // name-1.2.3.tgz
            let file = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let (name, v) = file.rsplit_once('-').unwrap_or((file, "0.1.0"));
            return Ok((name.into(), v.into(), v.into()));
        }
        let text = fs::read_to_string(path.join("Chart.yaml"))
            .map_err(|_| "Chart.yaml file is missing".to_string())?;
        let v: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| format!("cannot load Chart.yaml: {e}"))?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let name = s("name").ok_or("validation: chart.metadata.name is required")?;
        let cv = s("version").ok_or("validation: chart.metadata.version is required")?;
        let app = s("appVersion").unwrap_or_default();
        return Ok((name, cv, app));
    }
    if let Some(oci) = chart.strip_prefix("oci://") {
        let name = oci.rsplit('/').next().unwrap_or(oci).to_string();
        let v = version.unwrap_or("0.1.0").to_string();
        return Ok((name, v.clone(), v));
    }
    let Some((repo, name)) = chart.split_once('/') else {
        return Err(format!(
            "non-absolute URLs should be in form of repo_name/path_to_chart, got: {chart}"
        ));
    };
    if !repos(node).iter().any(|(n, _)| n == repo) {
        return Err(format!("repo {repo} not found"));
    }
    let v = version
        .unwrap_or("1.0.0")
        .trim_start_matches('v')
        .to_string();
    Ok((name.to_string(), v.clone(), v))
}

/// The values a release was given: `-f` files merged, then `--set`s.
fn values(node: &Node, a: &Args) -> Result<Value, String> {
    let mut merged = serde_json::Map::new();
    for f in a.values(&["f", "values"]) {
        let text = fs::read_to_string(node.path(f))
            .map_err(|_| format!("open {f}: no such file or directory"))?;
        let v: Value = serde_yaml::from_str(&text)
            .map_err(|e| format!("failed to parse {f}: error converting YAML to JSON: {e}"))?;
        if let Value::Object(o) = v {
            merged.extend(o);
        }
    }
    for set in a.values(&["set", "set-string"]) {
        for pair in set.split(',') {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("failed parsing --set data: key \"{pair}\" has no value"))?;
            merged.insert(k.to_string(), json!(v));
        }
    }
    Ok(Value::Object(merged))
}

fn unreachable(r: &Reach) -> String {
    let (url, why) = match r {
        Reach::NoConfig => (
            "http://localhost:8080/version".to_string(),
            "dial tcp 127.0.0.1:8080: connect: connection refused".to_string(),
        ),
        Reach::Refused(hp) => (
            format!("https://{hp}/version"),
            format!("dial tcp {hp}: connect: connection refused"),
        ),
        Reach::UnknownAuthority(hp) => (
            format!("https://{hp}/version"),
            "tls: failed to verify certificate: x509: certificate signed by unknown authority"
                .to_string(),
        ),
        Reach::Up(_) => (String::new(), String::new()),
    };
    format!("Kubernetes cluster unreachable: Get \"{url}\": {why}")
}

/// Connects like kubectl; Err is helm's message.
fn connect(node: &Node, a: &Args) -> Result<(), String> {
    match cluster::reach(node, a.value(&["kubeconfig"])) {
        Ok(Reach::Up(_)) => Ok(()),
        Ok(r) => Err(unreachable(&r)),
        Err(e) => Err(e.trim_start_matches("error: ").to_string()),
    }
}

fn namespace(a: &Args) -> &str {
    a.value(&["n", "namespace"]).unwrap_or("default")
}

fn chart_label(rev: &Revision) -> String {
    format!("{}-{}", rev.chart, rev.chart_version)
}

fn status_text(r: &Release, rev: &Revision) -> String {
    format!(
        "NAME: {}\nLAST DEPLOYED: {}\nNAMESPACE: {}\nSTATUS: {}\nREVISION: {}\nTEST SUITE: None\n",
        r.name,
        cluster::ansic(u64::try_from(rev.updated_ns / 1_000_000_000).unwrap_or(0)),
        r.namespace,
        rev.status,
        rev.revision
    )
}

#[allow(clippy::too_many_lines)] // install and upgrade share every step; split, they'd repeat
fn install(
    node: &Node,
    a: &Args,
    release: &str,
    chart: &str,
    upgrade: bool,
    io: &mut Io,
) -> Result<(), String> {
    let upsert = upgrade && a.has(&["i", "install"]);
    let ns = namespace(a).to_string();
    let store = Store::new(node);
    let lock = store.lock()?;
    let existing = store.cluster()?.and_then(|c| {
        c.releases
            .into_iter()
            .find(|r| r.name == release && r.namespace == ns)
    });
    let installing = !upgrade || existing.is_none();
    let prefix = match (upgrade, installing) {
        (false, _) => "INSTALLATION FAILED: ",
        (true, true) if upsert => "",
        (true, true) => "",
        (true, false) => "UPGRADE FAILED: ",
    };
    let fail = |e: String| format!("{prefix}{e}");
    connect(node, a).map_err(fail)?;
    if upgrade && existing.is_none() && !upsert {
        return Err(format!(
            "UPGRADE FAILED: \"{release}\" has no deployed releases"
        ));
    }
    if !upgrade && existing.is_some() {
        return Err(fail("cannot re-use a name that is still in use".into()));
    }
    let (name, chart_version, app_version) =
        resolve_chart(node, chart, a.value(&["version"])).map_err(fail)?;
    let values = values(node, a).map_err(fail)?;
    let mut c = store
        .cluster()?
        .ok_or_else(|| fail(unreachable(&Reach::NoConfig)))?;
    if !c.namespaces.contains_key(&ns) {
        if a.has(&["create-namespace"]) {
            c.namespaces.insert(ns.clone(), cluster::now());
        } else {
            return Err(fail(format!(
                "create: failed to create: namespaces \"{ns}\" not found"
            )));
        }
    }
    if installing && upgrade {
        io.out(&format!(
            "Release \"{release}\" does not exist. Installing it now.\n"
        ));
    }
    if !c
        .releases
        .iter()
        .any(|r| r.name == release && r.namespace == ns)
    {
        c.releases.push(Release {
            name: release.to_string(),
            namespace: ns.clone(),
            revisions: Vec::new(),
        });
    }
    let idx = c
        .releases
        .iter()
        .position(|r| r.name == release && r.namespace == ns)
        .unwrap_or_default();
    let r = &mut c.releases[idx];
    for old in &mut r.revisions {
        if old.status == "deployed" {
            old.status = "superseded".into();
        }
    }
    let revision = r.revisions.last().map_or(1, |l| l.revision + 1);
    r.revisions.push(Revision {
        revision,
        updated_ns: cluster::now_ns(),
        status: "deployed".into(),
        chart: name,
        chart_version,
        app_version,
        // As helm: `--description` replaces the default text and stays after `--wait`.
        description: a.value(&["description"]).map_or_else(
            || {
                if installing {
                    "Install complete"
                } else {
                    "Upgrade complete"
                }
                .to_string()
            },
            str::to_string,
        ),
        values,
    });
    store.save_cluster(&c)?;
    drop(lock);

    if a.has(&["wait", "atomic"]) {
        let timeout = match a.value(&["timeout"]) {
            Some(t) => humantime::parse_duration(t).map_err(|_| {
                format!("invalid argument \"{t}\" for \"--timeout\" flag: time: invalid duration \"{t}\"")
            })?,
            None => Duration::from_secs(300),
        };
        let deadline = Instant::now() + timeout;
        loop {
            let c = store.cluster()?.unwrap_or_default();
            let nodes = store.nodes()?;
            let pending = kube::pods(&c, &nodes).into_iter().any(|p| {
                p.namespace == ns
                    && p.labels
                        .get("app.kubernetes.io/instance")
                        .map(String::as_str)
                        == Some(release)
                    && !p.running
            });
            if !pending {
                break;
            }
            if Instant::now() >= deadline {
                let _lock = store.lock()?;
                let mut c = store.cluster()?.unwrap_or_default();
                if let Some(rev) = c
                    .releases
                    .iter_mut()
                    .find(|r| r.name == release && r.namespace == ns)
                    .and_then(|r| r.revisions.last_mut())
                {
                    rev.status = "failed".into();
                    rev.description =
                        format!("Release \"{release}\" failed: context deadline exceeded");
                }
                store.save_cluster(&c)?;
                return Err(fail("context deadline exceeded".into()));
            }
            std::thread::sleep(
                Duration::from_millis(500).min(deadline.saturating_duration_since(Instant::now())),
            );
        }
    }
    if upgrade && !installing {
        io.out(&format!(
            "Release \"{release}\" has been upgraded. Happy Helming!\n"
        ));
    }
    let c = store.cluster()?.unwrap_or_default();
    if let Some(r) = c
        .releases
        .iter()
        .find(|r| r.name == release && r.namespace == ns)
        && let Some(rev) = r.revisions.last()
    {
        io.out(&status_text(r, rev));
    }
    Ok(())
}

fn uninstall(node: &Node, a: &Args, names: &[&str], io: &mut Io) -> Result<(), String> {
    connect(node, a)?;
    let store = Store::new(node);
    let _lock = store.lock()?;
    let mut c = store.cluster()?.unwrap_or_default();
    let ns = namespace(a);
    for name in names {
        let before = c.releases.len();
        c.releases
            .retain(|r| !(r.name == *name && r.namespace == ns));
        if c.releases.len() == before {
            return Err(format!(
                "uninstall: Release not loaded: {name}: release: not found"
            ));
        }
        io.out(&format!("release \"{name}\" uninstalled\n"));
    }
    store.save_cluster(&c)
}

/// Go's `time.Time.String()` in UTC: `2023-10-05 07:20:38.123456789 +0000 UTC`, fraction
/// trimmed of trailing zeros.
fn go_time(ns: u128) -> String {
    let secs = u64::try_from(ns / 1_000_000_000).unwrap_or(0);
    let frac = ns % 1_000_000_000;
    let (y, mo, d, h, mi, s, _) = cluster::civil(secs);
    let mut out = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}");
    if frac != 0 {
        out.push_str(format!(".{frac:09}").trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

fn list(node: &Node, a: &Args, io: &mut Io) -> Result<(), String> {
    connect(node, a)?;
    let c = Store::new(node).cluster()?.unwrap_or_default();
    let all_ns = a.has(&["A", "all-namespaces"]);
    let ns = namespace(a);
    let show_all = a.has(&["a", "all"]);
    let rows: Vec<(&Release, &Revision)> = c
        .releases
        .iter()
        .filter(|r| all_ns || r.namespace == ns)
        .filter_map(|r| r.revisions.last().map(|rev| (r, rev)))
        .filter(|(_, rev)| show_all || rev.status == "deployed" || rev.status == "failed")
        .collect();
    match a.value(&["o", "output"]).unwrap_or("table") {
        "json" | "yaml" => {
            let items: Vec<Value> = rows
                .iter()
                .map(|(r, rev)| {
                    json!({
                        "name": r.name,
                        "namespace": r.namespace,
                        "revision": rev.revision.to_string(),
                        "updated": go_time(rev.updated_ns),
                        "status": rev.status,
                        "chart": chart_label(rev),
                        "app_version": rev.app_version,
                    })
                })
                .collect();
            if a.value(&["o", "output"]) == Some("json") {
                io.out(&format!("{}\n", Value::Array(items)));
            } else {
                io.out(&serde_yaml::to_string(&items).unwrap_or_default());
            }
        }
        "table" => {
            if a.has(&["short", "q"]) {
                for (r, _) in &rows {
                    io.out(&format!("{}\n", r.name));
                }
                return Ok(());
            }
            let mut table = vec![
                [
                    "NAME",
                    "NAMESPACE",
                    "REVISION",
                    "UPDATED",
                    "STATUS",
                    "CHART",
                    "APP VERSION",
                ]
                .map(String::from)
                .to_vec(),
            ];
            for (r, rev) in &rows {
                table.push(vec![
                    r.name.clone(),
                    r.namespace.clone(),
                    rev.revision.to_string(),
                    go_time(rev.updated_ns),
                    rev.status.clone(),
                    chart_label(rev),
                    rev.app_version.clone(),
                ]);
            }
            io.out(&uitable(&table));
        }
        other => return Err(format!("invalid format type \"{other}\"")),
    }
    Ok(())
}

fn find<'a>(c: &'a cluster::Cluster, a: &Args, release: &str) -> Result<&'a Release, String> {
    let ns = namespace(a);
    c.releases
        .iter()
        .find(|r| r.name == release && r.namespace == ns)
        .ok_or_else(|| "release: not found".to_string())
}

fn status(node: &Node, a: &Args, release: &str, io: &mut Io) -> Result<(), String> {
    connect(node, a)?;
    let c = Store::new(node).cluster()?.unwrap_or_default();
    let r = find(&c, a, release)?;
    let rev = r.revisions.last().ok_or("release: not found")?;
    if a.value(&["o", "output"]) == Some("json") {
        io.out(&format!(
            "{}\n",
            json!({"name": r.name, "info": {"first_deployed": cluster::rfc3339(u64::try_from(r.revisions[0].updated_ns / 1_000_000_000).unwrap_or(0)), "last_deployed": cluster::rfc3339(u64::try_from(rev.updated_ns / 1_000_000_000).unwrap_or(0)), "deleted": "", "description": rev.description, "status": rev.status}, "chart": {"metadata": {"name": rev.chart, "version": rev.chart_version, "appVersion": rev.app_version}}, "config": rev.values, "version": rev.revision, "namespace": r.namespace})
        ));
    } else {
        io.out(&status_text(r, rev));
    }
    Ok(())
}

fn history(node: &Node, a: &Args, release: &str, io: &mut Io) -> Result<(), String> {
    connect(node, a)?;
    let c = Store::new(node).cluster()?.unwrap_or_default();
    let r = find(&c, a, release)?;
    let mut rows = vec![
        [
            "REVISION",
            "UPDATED",
            "STATUS",
            "CHART",
            "APP VERSION",
            "DESCRIPTION",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for rev in &r.revisions {
        rows.push(vec![
            rev.revision.to_string(),
            cluster::ansic(u64::try_from(rev.updated_ns / 1_000_000_000).unwrap_or(0)),
            rev.status.clone(),
            chart_label(rev),
            rev.app_version.clone(),
            rev.description.clone(),
        ]);
    }
    io.out(&uitable(&rows));
    Ok(())
}

/// The workloads a deployed release runs.
#[must_use]
pub fn workloads(r: &Release, rev: &Revision, created: u64) -> Vec<Workload> {
    let instance = |w: &mut Workload, component: &str| {
        w.labels = BTreeMap::from([
            ("app".to_string(), component.to_string()),
            ("app.kubernetes.io/instance".to_string(), r.name.clone()),
            ("app.kubernetes.io/name".to_string(), component.to_string()),
        ]);
    };
    let chart = rev.chart.to_ascii_lowercase();
    if chart.contains("kamonohashi") {
        let image = |c: &str| format!("kamonohashi/{c}:{}", rev.app_version);
        let mut out = Vec::new();
        for (component, kind, local, img) in [
            ("web", "Deployment", true, image("web-pages")),
            ("api", "Deployment", true, image("web-api")),
            (
                "postgresql",
                "StatefulSet",
                false,
                "postgres:14".to_string(),
            ),
            (
                "minio",
                "Deployment",
                false,
                "minio/minio:latest".to_string(),
            ),
        ] {
            let mut w = Workload::new(
                kind,
                &r.namespace,
                &format!("{}-{component}", r.name),
                created,
            );
            instance(&mut w, component);
            w.local_storage = local;
            w.image = img;
            out.push(w);
        }
        return out;
    }
    let fullname = if r.name.contains(&rev.chart) {
        r.name.clone()
    } else {
        format!("{}-{}", r.name, rev.chart)
    };
    let daemon = chart.contains("device-plugin")
        || chart.contains("gpu-operator")
        || ["calico", "flannel", "cilium", "weave", "tigera"]
            .iter()
            .any(|c| chart.contains(c));
    let mut w = Workload::new(
        if daemon { "DaemonSet" } else { "Deployment" },
        &r.namespace,
        &fullname,
        created,
    );
    instance(&mut w, &rev.chart);
    w.image = format!("{}:{}", rev.chart, rev.app_version);
    vec![w]
}

#[cfg(test)]
mod tests {
    use super::super::cluster::shape;
    use super::super::kube::tests::Lab;
    use super::*;

    fn chart(lab: &Lab) {
        lab.write(
            "master",
            "/root/kamonohashi/Chart.yaml",
            "apiVersion: v2\nname: kamonohashi\nversion: 2.4.0\nappVersion: \"2.4.0\"\n",
        );
        lab.write("master", "/root/values.yaml", "web:\n  port: 30080\n");
    }

    #[test]
    fn install_list_status_uninstall() {
        let lab = Lab::new();
        lab.cluster();
        chart(&lab);
        let (code, _, err) = lab.run(
            "master",
            "helm",
            &[
                "install",
                "kamonohashi",
                "/root/kamonohashi",
                "-n",
                "kamonohashi",
            ],
        );
        assert_eq!(
            (code, err.as_str()),
            (
                1,
                "Error: INSTALLATION FAILED: create: failed to create: namespaces \"kamonohashi\" not found\n"
            )
        );
        let out = lab.ok(
            "master",
            "helm",
            &[
                "upgrade",
                "-i",
                "kamonohashi",
                "/root/kamonohashi",
                "-n",
                "kamonohashi",
                "--create-namespace",
                "-f",
                "/root/values.yaml",
                "--set",
                "api.replicas=1",
                "--wait",
                "--timeout",
                "5m",
            ],
        );
        assert!(out.starts_with("Release \"kamonohashi\" does not exist. Installing it now.\nNAME: kamonohashi\nLAST DEPLOYED: "), "{out}");
        assert!(out.ends_with(
            "NAMESPACE: kamonohashi\nSTATUS: deployed\nREVISION: 1\nTEST SUITE: None\n"
        ));

        let pods = lab.ok("master", "kubectl", &["get", "pods", "-n", "kamonohashi"]);
        for p in [
            "kamonohashi-web-",
            "kamonohashi-api-",
            "kamonohashi-postgresql-0 ",
            "kamonohashi-minio-",
        ] {
            assert!(
                pods.lines()
                    .any(|l| l.starts_with(p) && l.contains(" Running ")),
                "{p} in\n{pods}"
            );
        }
        let pg = lab.ok(
            "master",
            "kubectl",
            &[
                "get",
                "pods",
                "-n",
                "kamonohashi",
                "-l",
                "app=postgresql",
                "-o",
                "jsonpath={.items[0].metadata.name}",
            ],
        );
        assert_eq!(pg, "kamonohashi-postgresql-0");

        let list = lab.ok("master", "helm", &["list", "-A", "-o", "json"]);
        let ours: Value = serde_json::from_str(&list).unwrap();
        let theirs: Value = serde_json::from_str(&shape::fixture("helm_list.json")).unwrap();
        assert_eq!(shape::key_paths(&ours), shape::key_paths(&theirs));
        let keys = |v: &Value| {
            v[0].as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&ours), keys(&theirs));
        assert_eq!(ours[0]["chart"], "kamonohashi-2.4.0");
        assert_eq!(ours[0]["revision"], "1");
        assert!(!list.contains('\n') || list.ends_with("]\n") && list.matches('\n').count() == 1);

        let table = lab.ok("master", "helm", &["list", "-n", "kamonohashi"]);
        assert_eq!(
            shape::uitable_columns(&table),
            shape::uitable_columns(&shape::fixture("helm_list.txt"))
        );
        assert_eq!(
            lab.ok("master", "helm", &["list"]),
            "NAME\tNAMESPACE\tREVISION\tUPDATED\tSTATUS\tCHART\tAPP VERSION\n"
        );
    }

    fn installed() -> Lab {
        let lab = Lab::new();
        lab.cluster();
        chart(&lab);
        lab.ok(
            "master",
            "helm",
            &[
                "install",
                "kamonohashi",
                "/root/kamonohashi",
                "-n",
                "kamonohashi",
                "--create-namespace",
            ],
        );
        lab
    }

    /// `--description` becomes the release's description (playbooks keep a digest there to
    /// upgrade only when something changed), and `kubectl rollout restart` restarts the
    /// release's workloads by type, with kubectl's words.
    #[test]
    fn description_and_rollout_restart() {
        let lab = installed();
        lab.ok(
            "master",
            "helm",
            &[
                "upgrade",
                "--install",
                "kamonohashi",
                "/root/kamonohashi",
                "-n",
                "kamonohashi",
                "--description",
                "kamo 0123abcd",
            ],
        );
        let st: Value = serde_json::from_str(&lab.ok(
            "master",
            "helm",
            &["status", "kamonohashi", "-n", "kamonohashi", "-o", "json"],
        ))
        .unwrap();
        assert_eq!(st["info"]["description"], "kamo 0123abcd");
        let out = lab.ok(
            "master",
            "kubectl",
            &["-n", "kamonohashi", "rollout", "restart", "deployment"],
        );
        assert_eq!(
            out,
            "deployment.apps/kamonohashi-web restarted\ndeployment.apps/kamonohashi-api restarted\ndeployment.apps/kamonohashi-minio restarted\n"
        );
        let out = lab.ok(
            "master",
            "kubectl",
            &[
                "-n",
                "kamonohashi",
                "rollout",
                "restart",
                "statefulset/kamonohashi-postgresql",
            ],
        );
        assert_eq!(out, "statefulset.apps/kamonohashi-postgresql restarted\n");
        let (code, _, err) = lab.run(
            "master",
            "kubectl",
            &["-n", "kamonohashi", "rollout", "restart", "deployment/nope"],
        );
        assert_eq!(code, 1);
        assert!(err.contains("deployments.apps \"nope\" not found"), "{err}");
        let (code, _, err) = lab.run("master", "kubectl", &["rollout", "restart", "deployment"]);
        assert_eq!(code, 1);
        assert_eq!(err, "error: no objects passed to restart\n");
    }

    #[test]
    fn upgrade_history_uninstall() {
        let lab = installed();
        let out = lab.ok(
            "master",
            "helm",
            &[
                "upgrade",
                "--install",
                "kamonohashi",
                "/root/kamonohashi",
                "-n",
                "kamonohashi",
            ],
        );
        assert!(out.starts_with("Release \"kamonohashi\" has been upgraded. Happy Helming!\n"));
        let history = lab.ok(
            "master",
            "helm",
            &["history", "kamonohashi", "-n", "kamonohashi"],
        );
        assert_eq!(
            shape::uitable_columns(&history),
            shape::uitable_columns(&shape::fixture("helm_history.txt"))
        );
        let rows: Vec<Vec<&str>> = history
            .lines()
            .skip(1)
            .map(|l| l.split('\t').map(str::trim).collect())
            .collect();
        assert_eq!(
            (rows[0][0], rows[0][2], rows[0][5]),
            ("1", "superseded", "Install complete")
        );
        assert_eq!(
            (rows[1][0], rows[1][2], rows[1][5]),
            ("2", "deployed", "Upgrade complete")
        );
        assert!(
            lab.ok(
                "master",
                "helm",
                &["status", "kamonohashi", "-n", "kamonohashi"]
            )
            .contains("REVISION: 2\n")
        );

        let (code, _, err) = lab.run(
            "master",
            "helm",
            &[
                "install",
                "kamonohashi",
                "/root/kamonohashi",
                "-n",
                "kamonohashi",
            ],
        );
        assert_eq!(
            (code, err.as_str()),
            (
                1,
                "Error: INSTALLATION FAILED: cannot re-use a name that is still in use\n"
            )
        );
        assert_eq!(
            lab.ok(
                "master",
                "helm",
                &["uninstall", "kamonohashi", "-n", "kamonohashi"]
            ),
            "release \"kamonohashi\" uninstalled\n"
        );
        let (code, _, err) = lab.run(
            "master",
            "helm",
            &["uninstall", "kamonohashi", "-n", "kamonohashi"],
        );
        assert_eq!(
            (code, err.as_str()),
            (
                1,
                "Error: uninstall: Release not loaded: kamonohashi: release: not found\n"
            )
        );
        let (_, _, err) = lab.run("master", "kubectl", &["get", "pods", "-n", "kamonohashi"]);
        assert_eq!(err, "No resources found in kamonohashi namespace.\n");
        let (code, _, err) = lab.run("master", "helm", &["status", "nope"]);
        assert_eq!((code, err.as_str()), (1, "Error: release: not found\n"));
    }

    #[test]
    fn wait_fails_without_a_pod_network() {
        let lab = Lab::new();
        lab.init();
        chart(&lab);
        let (code, _, err) = lab.run(
            "master",
            "helm",
            &[
                "install",
                "kamonohashi",
                "/root/kamonohashi",
                "--wait",
                "--timeout",
                "1s",
            ],
        );
        assert_eq!(
            (code, err.as_str()),
            (1, "Error: INSTALLATION FAILED: context deadline exceeded\n")
        );
        let list: Value =
            serde_json::from_str(&lab.ok("master", "helm", &["list", "-o", "json"])).unwrap();
        assert_eq!(list[0]["status"], "failed");
    }

    #[test]
    fn repos_and_charts_from_them() {
        let lab = Lab::new();
        cluster::TEST_ENV.with(|e| e.borrow_mut().insert("HOME".into(), "/root".into()));
        lab.cluster();
        let (code, _, err) = lab.run("master", "helm", &["repo", "update"]);
        assert_eq!(
            (code, err.as_str()),
            (
                1,
                "Error: no repositories found. You must add one before updating\n"
            )
        );
        let (code, _, err) = lab.run(
            "master",
            "helm",
            &[
                "upgrade",
                "-i",
                "nvdp",
                "nvdp/nvidia-device-plugin",
                "-n",
                "kube-system",
            ],
        );
        assert_eq!((code, err.as_str()), (1, "Error: repo nvdp not found\n"));
        assert_eq!(
            lab.ok(
                "master",
                "helm",
                &[
                    "repo",
                    "add",
                    "nvdp",
                    "https://nvidia.github.io/k8s-device-plugin"
                ]
            ),
            "\"nvdp\" has been added to your repositories\n"
        );
        assert!(
            lab.node("master")
                .path("/root/.config/helm/repositories.yaml")
                .exists()
        );
        assert_eq!(
            lab.ok(
                "master",
                "helm",
                &[
                    "repo",
                    "add",
                    "nvdp",
                    "https://nvidia.github.io/k8s-device-plugin"
                ]
            ),
            "\"nvdp\" already exists with the same configuration, skipping\n"
        );
        assert!(
            lab.ok("master", "helm", &["repo", "update"])
                .contains("...Successfully got an update from the \"nvdp\" chart repository\n")
        );
        lab.ok(
            "master",
            "helm",
            &[
                "upgrade",
                "-i",
                "nvdp",
                "nvdp/nvidia-device-plugin",
                "--version",
                "0.14.1",
                "-n",
                "kube-system",
            ],
        );
        let nodes: Value =
            serde_json::from_str(&lab.ok("master", "kubectl", &["get", "nodes", "-o", "json"]))
                .unwrap();
        let gpus: Vec<&str> = nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["status"]["capacity"].get("nvidia.com/gpu").is_some())
            .map(|n| n["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(gpus, ["node01"]);
        let pods = lab.ok("master", "kubectl", &["get", "pods", "-n", "kube-system"]);
        assert_eq!(pods.matches("nvdp-nvidia-device-plugin-").count(), 3);
    }

    #[test]
    fn needs_a_cluster_and_reports_versions() {
        let lab = Lab::new();
        assert_eq!(
            lab.ok("master", "helm", &["version", "--short"]),
            "v3.13.1+g3547a4b\n"
        );
        cluster::TEST_ENV.with(|e| e.borrow_mut().clear());
        let (code, _, err) = lab.run("master", "helm", &["list", "-A"]);
        assert_eq!(
            (code, err.as_str()),
            (
                1,
                "Error: Kubernetes cluster unreachable: Get \"http://localhost:8080/version\": dial tcp 127.0.0.1:8080: connect: connection refused\n"
            )
        );
        let (code, _, err) = lab.run("master", "helm", &["install", "x", "stable/x"]);
        assert_eq!(code, 1);
        assert!(err.starts_with("Error: INSTALLATION FAILED: Kubernetes cluster unreachable: "));
    }

    #[test]
    fn go_time_trims_the_fraction() {
        assert_eq!(
            go_time(1_696_490_438_123_456_789),
            "2023-10-05 07:20:38.123456789 +0000 UTC"
        );
        assert_eq!(
            go_time(1_696_490_438_120_000_000),
            "2023-10-05 07:20:38.12 +0000 UTC"
        );
        assert_eq!(
            go_time(1_696_490_438_000_000_000),
            "2023-10-05 07:20:38 +0000 UTC"
        );
    }
}
