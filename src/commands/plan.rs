//! `kamo plan PLAYBOOK`: the per-node dry run, offline. Nothing connects, nothing changes.

use crate::cli::{OutputFormat, PlanArgs};
use crate::engine::plan::{Entry, Planner};
use crate::error::{ExitCode, Result};
use crate::inventory::Inventory;
use crate::playbook::template::Templater;
use crate::ui;

/// The JSON document of a plan, serialized straight from the entries (no copy into a tree).
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
    let planner = Planner {
        keep_scripts: args.scripts || args.output == OutputFormat::Json,
        inventory: &inventory,
        templater: &templater,
        opts: &opts,
        groups: crate::engine::vars::groups_value(&inventory),
    };
    let pb = &playbooks[0];
    let entries = planner.plan(pb, |play| {
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
    })?;
    let hosts: std::collections::BTreeSet<&str> = entries.iter().map(|e| e.host.as_str()).collect();
    let errors = entries.iter().filter(|e| e.status == "error").count();
    match args.output {
        OutputFormat::Json => ui::write_json(&PlanDoc {
            plan: &entries,
            hosts: hosts.len(),
            errors,
        }),
        OutputFormat::Text => ui::print_text(&render(&entries, args.scripts, hosts.len())),
    }
    Ok(if errors > 0 {
        ExitCode::HostFailed
    } else {
        ExitCode::Ok
    })
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
