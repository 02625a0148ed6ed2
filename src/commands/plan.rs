//! `kamo plan PLAYBOOK`: the per-node dry run, offline. Nothing connects, nothing changes.

use crate::cli::{OutputFormat, PlanArgs};
use crate::engine::plan::{Entry, Planner};
use crate::error::{ExitCode, Result};
use crate::inventory::Inventory;
use crate::journal::redact::Redactor;
use crate::playbook::template::Templater;
use crate::ui;

/// The JSON document of a plan, as [`write_json`] streams it.
#[cfg(test)]
#[derive(serde::Serialize)]
struct PlanDoc<'a> {
    plan: &'a [Entry],
    hosts: usize,
    errors: usize,
}

pub fn run(args: &PlanArgs) -> Result<ExitCode> {
    let templater = Templater::new();
    let playbooks = super::run::load_all(std::slice::from_ref(&args.playbook), &templater)?;
    let sources = super::inventory_sources(&args.inventory)?;
    let inventory = Inventory::load(&sources)?;
    let opts = super::run::options(&args.vars, &args.inventory.limit)?;
    let planner = Planner::new(
        args.scripts || args.output == OutputFormat::Json,
        &inventory,
        &templater,
        &opts,
    );
    let pb = &playbooks[0];
    let hosts_of = |play: &crate::playbook::model::Play| {
        super::run::play_hosts(
            &inventory,
            std::slice::from_ref(&crate::playbook::model::Playbook {
                path: pb.path.clone(),
                plays: vec![play.clone()],
                files: Vec::new(),
            }),
            &opts,
            &templater,
        )
    };
    let errors = match args.output {
        OutputFormat::Json => {
            let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            write_json(&mut out, &planner, pb, hosts_of, |host| {
                redactor_for(&inventory, &opts, std::iter::once(host))
            })?
        }
        OutputFormat::Text => {
            let entries = planner.plan(pb, hosts_of)?;
            let hosts: std::collections::BTreeSet<&str> =
                entries.iter().map(|e| e.host.as_str()).collect();
            let text = render(&entries, args.scripts, hosts.len());
            // Secret values (vault-decrypted ones, those of secret-named variables) never
            // show, even in the scripts they are part of.
            let redactor = redactor_for(&inventory, &opts, hosts.iter().copied());
            ui::print_text(&redactor.redact(&text).unwrap_or(text));
            entries.iter().filter(|e| e.status == "error").count()
        }
    };
    Ok(if errors > 0 {
        ExitCode::HostFailed
    } else {
        ExitCode::Ok
    })
}

/// What hides the secrets of `hosts`' plans: the values of their secret-named variables and
/// of the extra vars, and every vault-decrypted value.
fn redactor_for<'a>(
    inventory: &Inventory,
    opts: &crate::engine::RunOptions,
    hosts: impl Iterator<Item = &'a str>,
) -> Redactor {
    let mut r = Redactor::default();
    r.add_vars(&opts.extra_vars);
    for h in hosts {
        r.add_vars(&inventory.vars_for(h));
    }
    r
}

/// The JSON document of a plan (`{"plan":[...],"hosts":N,"errors":N}` on one line, the
/// serialization of [`PlanDoc`]), written as it is planned: each host's entries are serialized
/// on the thread that planned them and dropped, so 50,000 full scripts are never held at once.
/// Returns the number of entries in error.
fn write_json(
    out: &mut impl std::io::Write,
    planner: &Planner<'_>,
    pb: &crate::playbook::model::Playbook,
    hosts_of: impl Fn(&crate::playbook::model::Play) -> Result<Vec<String>>,
    redactor_of: impl Fn(&str) -> Redactor + Sync,
) -> Result<usize> {
    let mut hosts = std::collections::BTreeSet::new();
    let mut errors = 0;
    let mut first = true;
    let mut ok = out.write_all(b"{\"plan\":[").is_ok();
    planner.plan_each(
        pb,
        hosts_of,
        |entries| {
            let mut buf = Vec::new();
            let redactor = entries
                .first()
                .map_or_else(Redactor::default, |e| redactor_of(&e.host));
            let secret = !redactor.is_empty();
            for e in &entries {
                if !buf.is_empty() {
                    buf.push(b',');
                }
                // Serializing an entry cannot fail (string keys, no maps of other keys).
                if secret {
                    let v = serde_json::to_value(e).unwrap_or_default();
                    let v = redactor.redact_json(&v).unwrap_or(v);
                    let _ = serde_json::to_writer(&mut buf, &v);
                } else {
                    let _ = serde_json::to_writer(&mut buf, e);
                }
            }
            let errors = entries.iter().filter(|e| e.status == "error").count();
            let host = entries.first().map(|e| e.host.clone());
            (buf, errors, host)
        },
        |(buf, n, host)| {
            errors += n;
            if let Some(h) = host {
                hosts.insert(h);
            }
            if ok && !buf.is_empty() {
                if !first {
                    ok = out.write_all(b",").is_ok();
                }
                first = false;
                ok = ok && out.write_all(&buf).is_ok();
            }
        },
    )?;
    if ok {
        let _ = writeln!(out, "],\"hosts\":{},\"errors\":{errors}}}", hosts.len());
    }
    let _ = out.flush();
    Ok(errors)
}

fn render(entries: &[Entry], scripts: bool, hosts: usize) -> String {
    let mut s = String::new();
    let mut last: Option<(&str, &str)> = None;
    let mut n = 0;
    for e in entries {
        if last != Some((e.play.as_str(), e.host.as_str())) {
            s.push_str(&format!("\nPLAY [{}] on {}:\n", e.play, e.host));
            last = Some((e.play.as_str(), e.host.as_str()));
            n = 0;
        }
        n += 1;
        let item = e.item.as_ref().map_or_else(String::new, |i| {
            format!(
                " (item={})",
                i.as_str().map_or_else(|| i.to_string(), str::to_owned)
            )
        });
        let section = e.section.map_or_else(String::new, |s| format!(" [{s}]"));
        s.push_str(&format!(
            "  {n:>3}. {}{item}{section}  ({})\n",
            e.task, e.location
        ));
        match e.status {
            "run" => {
                for line in &e.summary {
                    s.push_str(&format!("       would run on {}: {line}\n", e.host));
                }
                if scripts && let Some(sc) = &e.script {
                    for l in sc.lines() {
                        s.push_str(&format!("         | {l}\n"));
                    }
                }
            }
            "controller" => {
                for line in &e.summary {
                    s.push_str(&format!("       on the workstation: {line}\n"));
                }
            }
            "skipped" => s.push_str(&format!(
                "       skipped: {}\n",
                e.reason.as_deref().unwrap_or("")
            )),
            "runtime" => {
                s.push_str(&format!(
                    "       decided at run time: {}\n",
                    e.reason.as_deref().unwrap_or("")
                ));
                for line in &e.summary {
                    s.push_str(&format!("       would then run on {}: {line}\n", e.host));
                }
            }
            _ => s.push_str(&format!(
                "       ERROR: {}\n",
                e.reason.as_deref().unwrap_or("")
            )),
        }
    }
    s.push_str(&format!(
        "\ndry run: nothing was changed on {hosts} hosts\n"
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RunOptions;

    #[test]
    fn streamed_json_is_the_serialized_plan() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.yml");
        std::fs::write(
            &path,
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - copy: {dest: \"/d/{{ inventory_hostname }}\", content: \"x\"}\n    - copy: {dest: \"/d/{{ nope }}\", content: \"x\"}\n    - shell: echo {{ item }}\n      loop: [a, b]\n- hosts: none\n  tasks: []\n- hosts: b\n  tasks:\n    - ping:\n",
        )
        .unwrap();
        let pb = crate::playbook::load::load_playbook(&path).unwrap();
        let hosts = (0..150)
            .map(|i| format!("h{i}"))
            .collect::<Vec<_>>()
            .join("\n");
        let inventory =
            Inventory::from_ini(&format!("{hosts}\n[b]\nh1\n"), &dir.path().join("inv")).unwrap();
        let templater = Templater::new();
        let opts = RunOptions::default();
        let planner = Planner::new(true, &inventory, &templater, &opts);
        let hosts_of = |play: &crate::playbook::model::Play| inventory.select(&play.hosts);
        let entries = planner.plan(&pb, hosts_of).unwrap();
        let hosts: std::collections::BTreeSet<&str> =
            entries.iter().map(|e| e.host.as_str()).collect();
        let errors = entries.iter().filter(|e| e.status == "error").count();
        assert_eq!(errors, 150);
        let mut want = serde_json::to_vec(&PlanDoc {
            plan: &entries,
            hosts: hosts.len(),
            errors,
        })
        .unwrap();
        want.push(b'\n');
        let mut got = Vec::new();
        assert_eq!(
            write_json(&mut got, &planner, &pb, hosts_of, |_| Redactor::default()).unwrap(),
            errors
        );
        assert_eq!(
            String::from_utf8(got).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }
}
