//! The compatibility matrix (`playbooks/versions.yml`): which app version goes with which
//! Kubernetes, Ubuntu, MinIO, GitLab and LDAP, its database migration, and what kamo installs
//! for it.
//!
//! The deploy tool kept this table only in documentation, so nothing checked it. Here it is
//! data: `kamo versions` prints it, `kamo check` holds every host's OS against it, `deploy`
//! and `rebuild` take the Kubernetes version and the playbook directory from it, and the DB
//! rollback takes the migration of a version from it. Unknown cells are `null` and stay
//! unknown.
//!
//! Versions: `2.1.0`, or the deploy tool's `<app version>.<revision>` (`2.1.0.3`), whose
//! revision is ignored for the lookup. An entry with `through:` covers a range.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Located, Result};

/// The file as written (see playbooks/README.md, "versions.yml").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    schema: u32,
    versions: indexmap::IndexMap<String, RawEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    #[serde(default)]
    range: Option<RawRange>,
    db_migration: Option<String>,
    #[serde(default)]
    db_migration_note: Option<String>,
    kubernetes: Option<Vec<String>>,
    ubuntu: Option<Vec<String>>,
    minio: Option<String>,
    gitlab: Option<String>,
    ldap: Option<String>,
    deploy: Option<RawDeploy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRange {
    from: String,
    to: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeploy {
    kube_version: String,
    ubuntu: Vec<String>,
    playbooks: Option<String>,
}

/// The whole matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    pub versions: Vec<Entry>,
    /// Where it was read from (the playbook root).
    #[serde(skip)]
    pub root: PathBuf,
}

/// One row.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The version, or the first of a range.
    pub app: String,
    /// The last version of a range row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub through: Option<String>,
    pub kubernetes: Option<Vec<String>>,
    pub ubuntu: Option<Vec<String>>,
    pub minio: Option<String>,
    pub gitlab: Option<String>,
    pub ldap: Option<String>,
    pub db_migration: Option<String>,
    pub changes: Option<String>,
    pub deploy: Option<Deploy>,
}

/// kamo's column: what its playbooks install for this version.
#[derive(Debug, Clone, Serialize)]
pub struct Deploy {
    pub kube_version: String,
    pub ubuntu: Vec<String>,
    /// A subdirectory of the playbook root; `None`: the root's own playbooks.
    pub playbooks: Option<String>,
}

/// A version a deploy can go to: the row and its install facts.
#[derive(Debug, Clone)]
pub struct Deployable {
    /// The app version (`2.1.0`; the deploy tool's revision stripped).
    pub version: String,
    pub kube_version: Option<String>,
    pub ubuntu: Vec<String>,
    /// The playbook directory for this version.
    pub playbooks: PathBuf,
    pub entry: Entry,
}

impl Matrix {
    /// Reads `versions.yml` in the playbook root.
    pub fn load(root: &Path) -> Result<Matrix> {
        let path = root.join("versions.yml");
        let text =
            std::fs::read_to_string(&path).map_err(|e| Error::io("cannot read", &path, e))?;
        Self::parse(&text, &path, root)
    }

    pub fn parse(text: &str, path: &Path, root: &Path) -> Result<Matrix> {
        let file: File = serde_yaml::from_str(text).map_err(|e| {
            let line = e.location().map_or(0, |l| l.line());
            Error::parse(
                Located::new(path, line, format!("invalid compatibility matrix: {e}")).source(text),
            )
        })?;
        if file.schema != 1 {
            return Err(Error::parse(Located::new(
                path,
                0,
                format!(
                    "compatibility matrix schema {} (this kamo reads schema 1)",
                    file.schema
                ),
            )));
        }
        let mut versions = Vec::new();
        for (key, raw) in file.versions {
            let (app, through) = match raw.range {
                Some(r) => (r.from, Some(r.to)),
                None => (key.clone(), None),
            };
            for v in std::iter::once(&app).chain(&through) {
                if parse_version(v).is_none() {
                    return Err(Error::parse(
                        Located::new(
                            path,
                            line_of(text, &key),
                            format!("version {v:?} (row {key:?}) is not MAJOR.MINOR.PATCH"),
                        )
                        .source(text),
                    ));
                }
            }
            versions.push(Entry {
                app,
                through,
                kubernetes: raw.kubernetes,
                ubuntu: raw.ubuntu,
                minio: raw.minio,
                gitlab: raw.gitlab,
                ldap: raw.ldap,
                db_migration: raw.db_migration,
                changes: raw.db_migration_note,
                deploy: raw.deploy.map(|d| Deploy {
                    kube_version: d.kube_version,
                    ubuntu: d.ubuntu,
                    playbooks: d.playbooks,
                }),
            });
        }
        Ok(Matrix {
            versions,
            root: root.to_path_buf(),
        })
    }

    /// The row covering `version` (`2.1.0` or `2.1.0.3`).
    #[must_use]
    pub fn lookup(&self, version: &str) -> Option<&Entry> {
        let v = app_part(version)?;
        self.versions.iter().find(|e| {
            let lo = parse_version(&e.app);
            let hi = e.through.as_deref().and_then(parse_version).or(lo);
            matches!((lo, hi), (Some(lo), Some(hi)) if lo <= v && v <= hi)
        })
    }

    /// The row for a version a deploy can go to, or an error saying why not.
    pub fn deployable(&self, version: &str) -> Result<Deployable> {
        let Some(entry) = self.lookup(version) else {
            return Err(Error::Usage(format!(
                "version {version} is not in the compatibility matrix ({}); see `kamo versions`",
                self.root.join("versions.yml").display()
            )));
        };
        let Some(d) = &entry.deploy else {
            return Err(Error::Usage(format!(
                "version {version} is in the matrix but kamo's playbooks cannot deploy it \
                 (no `deploy:` in its row); deployable: {}",
                self.deployable_versions().join(", ")
            )));
        };
        let (a, b, c) = app_part(version).unwrap_or_default();
        Ok(Deployable {
            version: format!("{a}.{b}.{c}"),
            kube_version: Some(d.kube_version.clone()),
            ubuntu: d.ubuntu.clone(),
            playbooks: d
                .playbooks
                .as_ref()
                .map_or_else(|| self.root.clone(), |p| self.root.join(p)),
            entry: entry.clone(),
        })
    }

    /// The newest deployable version.
    #[must_use]
    pub fn newest_deployable(&self) -> Option<Deployable> {
        let mut rows: Vec<&Entry> = self
            .versions
            .iter()
            .filter(|e| e.deploy.is_some())
            .collect();
        rows.sort_by(|a, b| compare(&b.app, &a.app));
        rows.first().and_then(|e| self.deployable(&e.app).ok())
    }

    #[must_use]
    pub fn deployable_versions(&self) -> Vec<String> {
        self.versions
            .iter()
            .filter(|e| e.deploy.is_some())
            .map(|e| e.app.clone())
            .collect()
    }

    /// The row whose newest migration is `id`.
    #[must_use]
    pub fn by_migration(&self, id: &str) -> Option<&Entry> {
        self.versions
            .iter()
            .find(|e| e.db_migration.as_deref() == Some(id))
    }
}

/// The 1-based line of a row's key, for located errors.
fn line_of(text: &str, key: &str) -> usize {
    let quoted = format!("\"{key}\":");
    text.lines()
        .position(|l| {
            l.trim_start().starts_with(&quoted) || l.trim_start().starts_with(&format!("{key}:"))
        })
        .map_or(0, |i| i + 1)
}

/// `MAJOR.MINOR.PATCH`, an optional leading `v`.
#[must_use]
pub fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let v = v.trim().trim_start_matches('v');
    let mut it = v.split('.');
    let a = it.next()?.parse().ok()?;
    let b = it.next()?.parse().ok()?;
    let c = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    Some((a, b, c))
}

/// The app part of `2.1.0` or of the deploy tool's `2.1.0.3`.
#[must_use]
pub fn app_part(v: &str) -> Option<(u32, u32, u32)> {
    let v = v.trim().trim_start_matches('v');
    let parts: Vec<&str> = v.split('.').collect();
    match parts.len() {
        3 => parse_version(v),
        4 if parts[3].parse::<u32>().is_ok() => parse_version(&parts[..3].join(".")),
        _ => None,
    }
}

/// Orders two versions numerically (unparseable ones last).
#[must_use]
pub fn compare(a: &str, b: &str) -> Ordering {
    match (app_part(a), app_part(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Matrix {
        Matrix::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks")).unwrap()
    }

    #[test]
    fn the_published_table_is_there_as_published() {
        let m = shipped();
        let v2 = m.lookup("2.0.0").unwrap();
        assert_eq!(v2.kubernetes.as_deref(), Some(&["1.15.3".to_owned()][..]));
        assert_eq!(v2.ubuntu.as_deref(), Some(&["18.04".to_owned()][..]));
        assert_eq!(v2.minio.as_deref(), Some("RELEASE.2020-03-09T18-26-53Z"));
        assert_eq!(v2.db_migration.as_deref(), Some("20200319064613_v2.0.0"));
        let v21 = m.lookup("2.1.0").unwrap();
        assert_eq!(v21.db_migration.as_deref(), Some("20200615001935_v2.1.0"));
        assert!(
            v21.kubernetes.is_none() && v21.minio.is_none(),
            "unknown stays unknown"
        );
        let v1 = m.lookup("1.1.3").unwrap();
        assert_eq!(v1.app, "1.0.1");
        assert_eq!(v1.kubernetes.as_ref().unwrap().len(), 2);
        let v100 = m.lookup("1.0.0").unwrap();
        assert!(v100.gitlab.as_deref().unwrap().contains("11.7"));
        assert!(m.lookup("1.2.0").is_none());
        assert!(m.lookup("3.0.0").is_none());
    }

    #[test]
    fn deploy_tool_versions_drop_their_revision() {
        let m = shipped();
        assert_eq!(m.lookup("2.0.0.3").unwrap().app, "2.0.0");
        let d = m.deployable("2.1.0.1").unwrap();
        assert_eq!(d.version, "2.1.0");
        assert!(
            m.deployable("1.1.7")
                .unwrap_err()
                .to_string()
                .contains("cannot deploy")
        );
        assert!(
            m.deployable("9.9.9")
                .unwrap_err()
                .to_string()
                .contains("not in the")
        );
        assert!(m.lookup("2.1").is_none());
        assert_eq!(m.newest_deployable().unwrap().version, "2.1.0");
    }

    #[test]
    fn a_malformed_matrix_is_located() {
        let e = Matrix::parse(
            "schema: 1\nversions:\n  \"2.1.0\":\n    kubernets: []\n",
            Path::new("v.yml"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("invalid compatibility matrix"),
            "{e}"
        );
        let e = Matrix::parse(
            "schema: 1\nversions:\n  \"2.x\": {db_migration: null, kubernetes: null, ubuntu: null, minio: null, gitlab: null, ldap: null, deploy: null}\n",
            Path::new("v.yml"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.to_string().contains("not MAJOR.MINOR.PATCH"), "{e}");
        let e = Matrix::parse(
            "schema: 2\nversions: {}\n",
            Path::new("v.yml"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.to_string().contains("schema 2"), "{e}");
    }
}
