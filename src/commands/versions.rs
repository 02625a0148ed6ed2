//! `kamo versions`: the compatibility matrix, as people and scripts read it.

use crate::cli::{OutputFormat, VersionsArgs};
use crate::coordinator::matrix::Matrix;
use crate::coordinator::playbooks;
use crate::error::{ExitCode, Result};

pub fn run(args: &VersionsArgs) -> Result<ExitCode> {
    let root = playbooks::root(args.playbooks.as_deref())?;
    let m = Matrix::load(&root)?;
    match args.output {
        OutputFormat::Json => crate::ui::write_json(&m.versions),
        OutputFormat::Text => {
            let unknown = || "unknown".to_owned();
            let list = |v: &Option<Vec<String>>| v.as_ref().map_or_else(unknown, |v| v.join(", "));
            let rows = m
                .versions
                .iter()
                .map(|e| {
                    vec![
                        e.through.as_ref().map_or_else(
                            || format!("v{}", e.app),
                            |t| format!("v{} - v{t}", e.app),
                        ),
                        e.kubernetes.as_ref().map_or_else(unknown, |k| {
                            k.iter()
                                .map(|v| format!("v{}", v.trim_start_matches('v')))
                                .collect::<Vec<_>>()
                                .join(", ")
                        }),
                        list(&e.ubuntu),
                        e.minio.clone().unwrap_or_else(unknown),
                        e.gitlab.clone().unwrap_or_else(unknown),
                        e.ldap.clone().unwrap_or_else(unknown),
                        e.db_migration.clone().unwrap_or_else(unknown),
                        e.deploy.as_ref().map_or_else(
                            || "no".to_owned(),
                            |d| {
                                format!(
                                    "Kubernetes v{} on Ubuntu {}",
                                    d.kube_version,
                                    d.ubuntu.join("/")
                                )
                            },
                        ),
                    ]
                })
                .collect();
            crate::ui::print_table(
                &[
                    "KAMONOHASHI",
                    "Kubernetes",
                    "Ubuntu",
                    "MinIO",
                    "GitLab",
                    "LDAP",
                    "DB migration",
                    "kamo deploys",
                ],
                rows,
            );
            crate::ui::print_text(&format!(
                "Kubernetes/Ubuntu/MinIO/GitLab/LDAP: the versions each release was tested with \
                 (unknown: not published). kamo deploys: what kamo's playbooks install.\n\
                 from {}",
                root.join("versions.yml").display()
            ));
        }
    }
    Ok(ExitCode::Ok)
}
