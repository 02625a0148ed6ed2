//! The playbook loader: YAML files in, [`Playbook`] out, refusing everything outside the
//! supported subset (docs/SUBSET.md) with a located error (exit 4) before any host is touched.
//!
//! Key decision: the loader walks [`yaml::Node`] trees that keep the line and column of every
//! key and value, so each refusal points at the offending text with a caret and a "did you
//! mean" hint, and every play, task and action keeps its [`Span`] for errors found later.
//! Static parts are resolved here: `import_playbook` (flattened), `import_tasks`, roles with
//! their `meta` dependencies, defaults, vars and handlers. `include_tasks` stays a task, loaded
//! at run time with [`load_tasks`].
//!
//! YAML 1.1 booleans: keywords typed bool take `yes/no/true/false/on/off` in any case; variable
//! values (`vars:`, role defaults and vars, vars files, `set_fact:`) read plain `yes/no/on/off` as
//! booleans as Ansible does; other module arguments keep them as text (modules parse booleans
//! themselves). Not supported: `action:`/`local_action:`, `include_role`/`import_role`,
//! `async`, `module_defaults`, play-level `ignore_errors`, `with_*` lookups other than
//! `with_items`, `with_list` and `with_dict`, templated `import_*` file names.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::model::{
    Action, Loop, LoopControl, Meta, Module, Play, Playbook, RoleCtx, Serial, Span, Strategy, Task,
    TaskKind, Vars,
};
use super::yaml::{self, Kind, Node};
use crate::error::{Error, Located};

/// Where the supported subset is documented, for hints.
const SUBSET_DOC: &str = "docs/SUBSET.md";

/// Play keywords kamo supports.
pub const PLAY_KEYS: &[&str] = &[
    "name",
    "hosts",
    "vars",
    "vars_files",
    "gather_facts",
    "become",
    "become_user",
    "become_method",
    "serial",
    "strategy",
    "any_errors_fatal",
    "max_fail_percentage",
    "pre_tasks",
    "tasks",
    "post_tasks",
    "handlers",
    "roles",
    "environment",
    "connection",
    "tags",
    "ignore_unreachable",
    "remote_user",
    "check_mode",
];

/// Task keywords kamo supports (besides one module name).
pub const TASK_KEYS: &[&str] = &[
    "name",
    "when",
    "loop",
    "with_items",
    "with_list",
    "with_dict",
    "loop_control",
    "register",
    "changed_when",
    "failed_when",
    "ignore_errors",
    "ignore_unreachable",
    "tags",
    "notify",
    "listen",
    "delegate_to",
    "run_once",
    "no_log",
    "args",
    "environment",
    "become",
    "become_user",
    "until",
    "retries",
    "delay",
    "vars",
    "check_mode",
    "timeout",
    "block",
    "rescue",
    "always",
    "include_tasks",
    "import_tasks",
    "meta",
];

/// Keys that make a task do something, other than a module name.
const ACTION_KEYS: &[&str] = &["block", "include_tasks", "import_tasks", "meta"];

/// Keywords that make no sense on a block (Ansible refuses them too).
const NOT_ON_BLOCK: &[&str] = &[
    "loop",
    "with_items",
    "with_list",
    "with_dict",
    "loop_control",
    "register",
    "notify",
    "until",
    "retries",
    "delay",
    "changed_when",
    "failed_when",
    "args",
    "listen",
];

/// Keywords an `import_tasks` applies to the tasks it imports.
const IMPORT_KEYS: &[&str] = &[
    "name",
    "import_tasks",
    "when",
    "tags",
    "vars",
    "become",
    "become_user",
];

/// `k=v` words that free-form modules take out of their command line, as Ansible does.
const FREE_FORM_KEYS: &[&str] = &["chdir", "creates", "removes", "executable", "warn", "stdin"];

/// Loads a playbook file (and everything it imports) into the model, refusing anything outside
/// the supported subset with a located error (exit 4) before any host is touched.
pub fn load_playbook(path: &Path) -> Result<Playbook, Error> {
    let mut loader = Loader::default();
    let plays = loader.playbook(path, None)?;
    // Files read at run time, recorded so the journal can tell when they change: the play
    // directory's conventional `templates/`, `files/` and `vars/`, and task files that
    // `include_tasks` names literally.
    for play in &plays {
        for dir in ["templates", "files", "vars"] {
            loader.record_tree(&play.dir.join(dir));
        }
        for t in play.sections.iter().flatten().chain(&play.handlers) {
            loader.record_includes(t);
        }
    }
    Ok(Playbook {
        path: path.to_owned(),
        plays,
        files: loader.files,
    })
}

/// Loads a task list file (for include_tasks at run time): same task rules.
pub fn load_tasks(path: &Path, role: Option<Arc<RoleCtx>>) -> Result<Vec<Task>, Error> {
    let mut loader = Loader::default();
    loader.task_file(path, None, role)
}

/// Loads a vars file (vars_files / include_vars): a YAML mapping.
pub fn load_vars_file(path: &Path) -> Result<Vars, Error> {
    Loader::default().vars_file(path, None)
}

/// A file being read: its path, text and directory.
struct Src {
    path: Arc<PathBuf>,
    /// The text, decrypted when the file is a vault.
    text: String,
    dir: PathBuf,
    /// A vault file: its (decrypted) lines never appear in a message.
    vaulted: bool,
}

impl Src {
    fn span(&self, node: &Node) -> Span {
        Span {
            file: self.path.clone(),
            line: node.line,
            column: node.col,
        }
    }

    /// An error pointing at `node`.
    fn err(&self, node: &Node, msg: impl Into<String>) -> Located {
        Located::new(self.path.as_ref().clone(), node.line, msg)
            .column(node.col, node.len)
            .source(if self.vaulted { "" } else { &self.text })
    }

    fn map<'n>(&self, node: &'n Node, what: &str) -> Result<&'n [(Node, Node)], Located> {
        match &node.kind {
            Kind::Map(entries) => Ok(entries),
            _ => Err(self.err(
                node,
                format!("{what} must be a mapping, not {}", node.type_name()),
            )),
        }
    }

    fn seq<'n>(&self, node: &'n Node, what: &str) -> Result<&'n [Node], Located> {
        match &node.kind {
            Kind::Seq(items) => Ok(items),
            _ if node.is_null() => Ok(&[]),
            _ => Err(self.err(
                node,
                format!("`{what}` must be a list, not {}", node.type_name()),
            )),
        }
    }

    /// A scalar as text (numbers and booleans as written).
    fn string(&self, node: &Node, key: &str) -> Result<String, Located> {
        match &node.kind {
            Kind::Scalar { text, .. } if !node.is_null() => Ok(text.clone()),
            _ => Err(self.err(
                node,
                format!("`{key}` must be a string, not {}", node.type_name()),
            )),
        }
    }

    fn boolean(&self, node: &Node, key: &str) -> Result<bool, Located> {
        node.as_scalar().and_then(yaml::yaml11_bool).ok_or_else(|| {
            self.err(
                node,
                format!("`{key}` must be a boolean, not {}", node.type_name()),
            )
            .hint("write yes/no or true/false")
        })
    }

    fn uint(&self, node: &Node, key: &str) -> Result<u64, Located> {
        node.as_scalar()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                self.err(
                    node,
                    format!("`{key}` must be a whole number, not {}", node.type_name()),
                )
            })
    }

    /// `when:`-like conditions: a string, a boolean or a list of them.
    fn conditions(&self, node: &Node, key: &str) -> Result<Vec<String>, Located> {
        let one = |n: &Node| -> Result<String, Located> {
            match n.to_json(true) {
                Value::Bool(true) => Ok("True".to_owned()),
                Value::Bool(false) => Ok("False".to_owned()),
                _ => self.string(n, key),
            }
        };
        match &node.kind {
            Kind::Seq(items) => items.iter().map(one).collect(),
            _ => Ok(vec![one(node)?]),
        }
    }

    /// A string or a list of strings; `tags` also splits on commas.
    fn strings(&self, node: &Node, key: &str, commas: bool) -> Result<Vec<String>, Located> {
        let items: Vec<String> = match &node.kind {
            Kind::Seq(items) => items
                .iter()
                .map(|n| self.string(n, key))
                .collect::<Result<_, _>>()?,
            _ => vec![self.string(node, key)?],
        };
        Ok(if commas {
            items
                .iter()
                .flat_map(|s| s.split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        } else {
            items
        })
    }

    /// A mapping of variables; plain YAML 1.1 booleans become booleans as Ansible reads them.
    fn vars(&self, node: &Node, key: &str) -> Result<Vars, Located> {
        if node.is_null() {
            return Ok(Vars::new());
        }
        let entries = self.map(node, &format!("`{key}`"))?;
        Ok(entries
            .iter()
            .map(|(k, v)| (k.key_text(), v.to_json(true)))
            .collect())
    }
}

/// Every string or number of a decrypted vault file is a secret (its keys are not, nor
/// `true`/`false`, which would blank out every boolean in the output).
fn remember_values(node: &Node) {
    crate::vault::keyring::remember_all(&node.to_json(true));
}

/// The nearest candidate by edit distance, if near enough to be a likely typo.
fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn did_you_mean(word: &str, candidates: &[&str], tail: &str) -> String {
    match nearest(word, candidates.iter().copied()) {
        Some(c) => format!("did you mean `{c}`? {tail}"),
        None => tail.to_owned(),
    }
}

/// Keywords an outer construct (role entry, `import_tasks`) applies to each task it brings.
#[derive(Default, Clone)]
struct Outer {
    when: Vec<String>,
    tags: Vec<String>,
    vars: Vars,
    r#become: Option<bool>,
    become_user: Option<String>,
}

impl Outer {
    fn apply(&self, task: &mut Task) {
        if !self.when.is_empty() {
            let mut when = self.when.clone();
            when.append(&mut task.when);
            task.when = when;
        }
        for t in &self.tags {
            if !task.tags.contains(t) {
                task.tags.push(t.clone());
            }
        }
        for (k, v) in &self.vars {
            if !task.vars.contains_key(k) {
                task.vars.insert(k.clone(), v.clone());
            }
        }
        if task.r#become.is_none() {
            task.r#become = self.r#become;
        }
        if task.become_user.is_none() {
            task.become_user.clone_from(&self.become_user);
        }
    }
}

/// The role and directory a task list is read in.
#[derive(Clone)]
struct Ctx {
    role: Option<Arc<RoleCtx>>,
    handlers: bool,
}

#[derive(Default)]
struct Loader {
    files: Vec<PathBuf>,
    /// Files being imported, to refuse import cycles.
    stack: Vec<PathBuf>,
    /// Defaults of every role the play being loaded names (see [`Play::role_defaults`]).
    role_defaults: Vars,
}

/// A task list with the handlers its roles bring.
type Loaded = (Vec<Task>, Vec<Task>);

impl Loader {
    /// Reads and parses a file. `from` is the node that named it, for a located "not found".
    fn read(
        &mut self,
        path: &Path,
        from: Option<(&Src, &Node)>,
    ) -> Result<(Src, Option<Node>), Error> {
        let text = match crate::input::read_text(path) {
            // YAML reads a lone CR as a line break and `str::lines` does not, so its line
            // numbers would point past the lines we show; YAML itself normalises breaks to LF.
            Ok(t) if t.contains('\r') => t.replace("\r\n", "\n").replace('\r', "\n"),
            Ok(t) => t,
            Err(e) if e.describe("").is_some() => {
                let msg = e.describe("YAML file").unwrap_or_default();
                return Err(Located::new(path, 0, msg).into());
            }
            Err(e) => {
                let e = e.into_io("YAML file");
                return Err(match from {
                    Some((src, node)) => src
                        .err(node, format!("cannot read {}: {e}", path.display()))
                        .hint("paths are relative to the file that names them")
                        .into(),
                    None => Error::io("reading", path, e),
                });
            }
        };
        if !self.files.iter().any(|f| f == path) {
            self.files.push(path.to_owned());
        }
        let vaulted = crate::vault::is_vault(&text);
        let text = if vaulted {
            crate::vault::keyring::open(&text).map_err(|e| {
                Located::new(path, 1, format!("vault-encrypted file: {e}"))
                    .hint(crate::vault::keyring::hint(&e))
            })?
        } else {
            text
        };
        let src = Src {
            path: Arc::new(path.to_owned()),
            dir: path.parent().map(Path::to_owned).unwrap_or_default(),
            text,
            vaulted,
        };
        let root = yaml::parse(&src.text).map_err(|e| {
            // A syntax error at the end of the file points past its last line: show that line.
            let lines = src.text.lines().count().max(1);
            let (line, col) = if e.line > lines {
                let last = src.text.lines().last().unwrap_or("");
                (lines, last.chars().count().max(1))
            } else {
                (e.line, e.col)
            };
            let node = Node {
                kind: Kind::Seq(Vec::new()),
                line,
                col,
                len: 1,
            };
            let err = src.err(&node, e.message);
            Error::from(match e.hint {
                Some(h) => err.hint(h),
                None => err,
            })
        })?;
        if vaulted && let Some(root) = &root {
            remember_values(root);
        }
        Ok((src, root))
    }

    fn enter(&mut self, path: &Path, from: Option<(&Src, &Node)>) -> Result<(), Error> {
        let canon = path.canonicalize().unwrap_or_else(|_| path.to_owned());
        if self.stack.contains(&canon) {
            let msg = format!("{} imports itself (an import cycle)", path.display());
            return Err(match from {
                Some((src, node)) => src.err(node, msg).into(),
                None => Error::Other(msg),
            });
        }
        self.stack.push(canon);
        Ok(())
    }

    fn playbook(&mut self, path: &Path, from: Option<(&Src, &Node)>) -> Result<Vec<Play>, Error> {
        self.enter(path, from)?;
        let (src, root) = self.read(path, from)?;
        let Some(root) = root else {
            return Err(Located::new(path, 0, "the playbook is empty").into());
        };
        let Kind::Seq(items) = &root.kind else {
            return Err(src
                .err(&root, "a playbook must be a list of plays")
                .hint("start each play with `- hosts: ...`")
                .into());
        };
        let mut plays = Vec::new();
        for item in items {
            let entries = src.map(item, "a play")?;
            if let Some((_, v)) = entries
                .iter()
                .find(|(k, _)| k.key_text() == "import_playbook")
            {
                if let Some((other, _)) = entries
                    .iter()
                    .find(|(k, _)| !matches!(k.key_text().as_str(), "import_playbook" | "name"))
                {
                    return Err(src
                        .err(
                            other,
                            format!("`{}` is not supported on import_playbook", other.key_text()),
                        )
                        .hint("only `name` may go with `import_playbook`")
                        .into());
                }
                let file = src.string(v, "import_playbook")?;
                let target = src.dir.join(&file);
                plays.extend(self.playbook(&target, Some((&src, v)))?);
            } else {
                plays.push(self.play(&src, item)?);
            }
        }
        self.stack.pop();
        Ok(plays)
    }

    #[allow(clippy::too_many_lines)]
    fn play(&mut self, src: &Src, node: &Node) -> Result<Play, Error> {
        let entries = src.map(node, "a play")?;
        let first = entries.first().map_or(node, |(k, _)| k);
        let mut play = Play {
            name: None,
            span: src.span(first),
            hosts: String::new(),
            vars: Vars::new(),
            vars_files: Vec::new(),
            gather_facts: true,
            r#become: None,
            become_user: None,
            serial: Vec::new(),
            strategy: Strategy::Linear,
            any_errors_fatal: false,
            max_fail_percentage: None,
            connection: None,
            environment: Vars::new(),
            tags: Vec::new(),
            ignore_unreachable: false,
            sections: Vec::new(),
            handlers: Vec::new(),
            role_defaults: Vars::new(),
            dir: src.dir.clone(),
        };
        self.role_defaults = Vars::new();
        check_duplicates(src, entries)?;
        let mut hosts = None;
        let mut remote_user = None;
        let mut check_mode = None;
        let (mut pre, mut tasks, mut post, mut handlers) = (None, None, None, None);
        let mut roles = None;
        for (k, v) in entries {
            let key = k.key_text();
            match key.as_str() {
                "name" => play.name = Some(src.string(v, "name")?),
                "hosts" => {
                    hosts = Some(match &v.kind {
                        Kind::Seq(_) => src.strings(v, "hosts", false)?.join(","),
                        _ => src.string(v, "hosts")?,
                    });
                }
                "vars" => play.vars = src.vars(v, "vars")?,
                "vars_files" => {
                    for f in src.seq(v, "vars_files")? {
                        let name = src.string(f, "vars_files")?;
                        if !name.contains("{{") {
                            self.vars_file(&src.dir.join(&name), Some((src, f)))?;
                        }
                        play.vars_files.push(name);
                    }
                }
                "gather_facts" => play.gather_facts = src.boolean(v, &key)?,
                "become" => play.r#become = Some(src.boolean(v, &key)?),
                "become_user" => play.become_user = Some(src.string(v, &key)?),
                "become_method" => {
                    if src.string(v, &key)? != "sudo" {
                        return Err(src
                            .err(v, "only `become_method: sudo` is supported")
                            .hint(format!("see {SUBSET_DOC}"))
                            .into());
                    }
                }
                "serial" => play.serial = serial(src, v)?,
                "strategy" => {
                    play.strategy = match src.string(v, &key)?.as_str() {
                        "linear" => Strategy::Linear,
                        "free" => Strategy::Free,
                        _ => {
                            return Err(src.err(v, "strategy must be `linear` or `free`").into());
                        }
                    }
                }
                "any_errors_fatal" => play.any_errors_fatal = src.boolean(v, &key)?,
                "max_fail_percentage" => {
                    let pct = v
                        .as_scalar()
                        .map(|t| t.trim().trim_end_matches('%'))
                        .and_then(|t| t.parse::<f64>().ok())
                        .filter(|p| (0.0..=100.0).contains(p));
                    play.max_fail_percentage = Some(pct.ok_or_else(|| {
                        src.err(v, "`max_fail_percentage` must be a number from 0 to 100")
                    })?);
                }
                "pre_tasks" => pre = Some(v),
                "tasks" => tasks = Some(v),
                "post_tasks" => post = Some(v),
                "handlers" => handlers = Some(v),
                "roles" => roles = Some(v),
                "environment" => play.environment = src.vars(v, &key)?,
                "connection" => {
                    let c = src.string(v, &key)?;
                    if c != "local" && c != "ssh" {
                        return Err(src.err(v, "`connection` must be `local` or `ssh`").into());
                    }
                    play.connection = Some(c);
                }
                "tags" => play.tags = src.strings(v, &key, true)?,
                "ignore_unreachable" => play.ignore_unreachable = src.boolean(v, &key)?,
                "remote_user" => remote_user = Some(src.string(v, &key)?),
                "check_mode" => check_mode = Some(src.boolean(v, &key)?),
                "ignore_errors" => {
                    return Err(src
                        .err(
                            k,
                            "`ignore_errors` is supported on tasks and blocks, not on plays",
                        )
                        .hint("put the play's tasks in a `block:` with `ignore_errors: true`")
                        .into());
                }
                "module_defaults" => {
                    return Err(src
                        .err(k, "`module_defaults` is not supported")
                        .hint("write the arguments on each task, or use YAML anchors")
                        .into());
                }
                _ => {
                    return Err(src
                        .err(k, format!("unknown or unsupported play keyword `{key}`"))
                        .hint(did_you_mean(
                            &key,
                            PLAY_KEYS,
                            &format!("supported play keywords are listed in {SUBSET_DOC}"),
                        ))
                        .into());
                }
            }
        }
        play.hosts = hosts.ok_or_else(|| {
            src.err(first, "a play needs `hosts:`")
                .hint("add `hosts: all` or a group name")
        })?;
        if let Some(user) = remote_user {
            play.vars
                .insert("ansible_user".to_owned(), Value::String(user));
        }
        let ctx = Ctx {
            role: None,
            handlers: false,
        };
        let mut role_handlers = Vec::new();
        let mut sections = Vec::new();
        if let Some(v) = pre {
            sections.push(self.task_list(src, v, &ctx, "pre_tasks")?);
        }
        if let Some(v) = roles {
            let mut seen = HashSet::new();
            let mut section = Vec::new();
            for entry in src.seq(v, "roles")? {
                let (t, h) = self.role(src, entry, &mut seen, &mut Vec::new())?;
                section.extend(t);
                role_handlers.extend(h);
            }
            sections.push(section);
        }
        if let Some(v) = tasks {
            sections.push(self.task_list(src, v, &ctx, "tasks")?);
        }
        if let Some(v) = post {
            sections.push(self.task_list(src, v, &ctx, "post_tasks")?);
        }
        sections.retain(|s| !s.is_empty());
        if let Some(v) = handlers {
            let hctx = Ctx {
                role: None,
                handlers: true,
            };
            play.handlers = self.task_list(src, v, &hctx, "handlers")?;
        }
        play.handlers.extend(role_handlers);
        if let Some(cm) = check_mode {
            for t in sections
                .iter_mut()
                .flatten()
                .chain(play.handlers.iter_mut())
            {
                t.check_mode.get_or_insert(cm);
            }
        }
        play.sections = sections;
        play.role_defaults = std::mem::take(&mut self.role_defaults);
        Ok(play)
    }

    /// Loads a role entry (a name, or a mapping with `role:` and keywords) with its
    /// dependencies first: `(tasks, handlers)`.
    fn role(
        &mut self,
        src: &Src,
        entry: &Node,
        seen: &mut HashSet<String>,
        chain: &mut Vec<String>,
    ) -> Result<Loaded, Error> {
        let mut outer = Outer::default();
        let (name_node, name) = match &entry.kind {
            Kind::Map(entries) => {
                check_duplicates(src, entries)?;
                let mut name = None;
                for (k, v) in entries {
                    match k.key_text().as_str() {
                        "role" | "name" => name = Some(v),
                        "when" => outer.when = src.conditions(v, "when")?,
                        "tags" => outer.tags = src.strings(v, "tags", true)?,
                        "vars" => outer.vars.extend(src.vars(v, "vars")?),
                        "become" => outer.r#become = Some(src.boolean(v, "become")?),
                        "become_user" => outer.become_user = Some(src.string(v, "become_user")?),
                        // Other keys are role parameters, as Ansible reads them.
                        other => {
                            outer.vars.insert(other.to_owned(), v.to_json(true));
                        }
                    }
                }
                let n = name.ok_or_else(|| src.err(entry, "a role entry needs `role:`"))?;
                (n, src.string(n, "role")?)
            }
            _ => (entry, src.string(entry, "role")?),
        };
        if chain.contains(&name) {
            return Err(src
                .err(
                    name_node,
                    format!(
                        "role `{name}` depends on itself: {} -> {name}",
                        chain.join(" -> ")
                    ),
                )
                .into());
        }
        let roles_dir = src_roles_dir(src);
        let path = roles_dir.join(&name);
        if !path.is_dir() {
            let known = list_dirs(&roles_dir);
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            return Err(src
                .err(
                    name_node,
                    format!("role `{name}` not found in {}", roles_dir.display()),
                )
                .hint(did_you_mean(
                    &name,
                    &known,
                    "roles are looked up in `roles/` beside the playbook",
                ))
                .into());
        }
        let key = format!(
            "{name}\u{0}{}",
            serde_json::to_string(&outer.vars).unwrap_or_default()
        );
        if !seen.insert(key) {
            // Ansible runs a role once per play for the same parameters.
            return Ok((Vec::new(), Vec::new()));
        }
        chain.push(name.clone());
        let defaults = self.optional_vars(&path.join("defaults"))?;
        let vars = self.optional_vars(&path.join("vars"))?;
        self.role_defaults
            .extend(defaults.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut tasks = Vec::new();
        let mut handlers = Vec::new();
        if let Some(meta) = main_file(&path.join("meta")) {
            let (msrc, root) = self.read(&meta, None)?;
            if let Some(root) = root
                && !root.is_null()
            {
                let entries = msrc.map(&root, "meta/main.yml")?;
                for (k, v) in entries {
                    if k.key_text() == "dependencies" {
                        for dep in msrc.seq(v, "dependencies")? {
                            let (t, h) = self.role(&msrc, dep, seen, chain)?;
                            tasks.extend(t);
                            handlers.extend(h);
                        }
                    }
                }
            }
        }
        let ctx = Arc::new(RoleCtx {
            name: name.clone(),
            path: path.clone(),
            defaults,
            vars,
        });
        if let Some(main) = main_file(&path.join("tasks")) {
            tasks.extend(self.task_file(&main, None, Some(ctx.clone()))?);
        }
        if let Some(main) = main_file(&path.join("handlers")) {
            let (hsrc, root) = self.read(&main, None)?;
            if let Some(root) = root {
                let hctx = Ctx {
                    role: Some(ctx.clone()),
                    handlers: true,
                };
                handlers.extend(self.task_list(&hsrc, &root, &hctx, "handlers")?);
            }
        }
        for dir in ["templates", "files"] {
            self.record_tree(&path.join(dir));
        }
        chain.pop();
        for t in &mut tasks {
            outer.apply(t);
        }
        let vars_only = Outer {
            vars: outer.vars.clone(),
            ..Outer::default()
        };
        for h in &mut handlers {
            vars_only.apply(h);
        }
        Ok((tasks, handlers))
    }

    fn record_includes(&mut self, t: &Task) {
        match &t.kind {
            TaskKind::IncludeTasks { file, dir } if !file.contains("{{") => {
                let p = dir.join(file);
                if p.is_file() && !self.files.contains(&p) {
                    self.files.push(p);
                }
            }
            TaskKind::Block {
                block,
                rescue,
                always,
            } => {
                for c in block.iter().chain(rescue).chain(always) {
                    self.record_includes(c);
                }
            }
            _ => {}
        }
    }

    fn record_tree(&mut self, dir: &Path) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                self.record_tree(&p);
            } else if !self.files.contains(&p) {
                self.files.push(p);
            }
        }
    }

    fn optional_vars(&mut self, dir: &Path) -> Result<Vars, Error> {
        match main_file(dir) {
            Some(f) => self.vars_file(&f, None),
            None => Ok(Vars::new()),
        }
    }

    fn vars_file(&mut self, path: &Path, from: Option<(&Src, &Node)>) -> Result<Vars, Error> {
        let (src, root) = self.read(path, from)?;
        match root {
            None => Ok(Vars::new()),
            Some(root) => Ok(src.vars(&root, "a vars file")?),
        }
    }

    /// Loads a file of tasks (`import_tasks`, role tasks, `include_tasks` at run time).
    fn task_file(
        &mut self,
        path: &Path,
        from: Option<(&Src, &Node)>,
        role: Option<Arc<RoleCtx>>,
    ) -> Result<Vec<Task>, Error> {
        self.enter(path, from)?;
        let (src, root) = self.read(path, from)?;
        let ctx = Ctx {
            role,
            handlers: false,
        };
        let tasks = match root {
            None => Vec::new(),
            Some(root) => self.task_list(&src, &root, &ctx, "a task file")?,
        };
        self.stack.pop();
        Ok(tasks)
    }

    fn task_list(
        &mut self,
        src: &Src,
        node: &Node,
        ctx: &Ctx,
        what: &str,
    ) -> Result<Vec<Task>, Error> {
        let mut out = Vec::new();
        for item in src.seq(node, what)? {
            out.extend(self.task(src, item, ctx)?);
        }
        Ok(out)
    }

    /// One task entry: usually one task, several for `import_tasks`.
    #[allow(clippy::too_many_lines)]
    fn task(&mut self, src: &Src, node: &Node, ctx: &Ctx) -> Result<Vec<Task>, Error> {
        let entries = src.map(node, "a task")?;
        check_duplicates(src, entries)?;
        let first = entries.first().map_or(node, |(k, _)| k);
        let mut task = empty_task(src.span(first), ctx.role.clone());
        let has_action = entries.iter().any(|(k, _)| {
            let key = k.key_text();
            ACTION_KEYS.contains(&key.as_str()) || Module::from_name(&key).is_some()
        });
        let mut action: Option<(&Node, &Node)> = None;
        let mut args_kw: Option<&Node> = None;
        let mut rescue = None;
        let mut always = None;
        for (k, v) in entries {
            let key = k.key_text();
            let is_action =
                ACTION_KEYS.contains(&key.as_str()) || Module::from_name(&key).is_some();
            if is_action {
                if let Some((prev, _)) = action {
                    return Err(src
                        .err(
                            k,
                            format!(
                                "a task does one thing: both `{}` and `{key}`",
                                prev.key_text()
                            ),
                        )
                        .hint("split it into two tasks")
                        .into());
                }
                action = Some((k, v));
                continue;
            }
            match key.as_str() {
                "name" => task.name = Some(src.string(v, "name")?),
                "when" => task.when = src.conditions(v, "when")?,
                "loop" | "with_items" | "with_list" | "with_dict" => {
                    if task.r#loop.is_some() {
                        return Err(src.err(k, "a task takes one loop").into());
                    }
                    task.r#loop = Some(loop_value(src, &key, v)?);
                }
                "loop_control" => task.loop_control = loop_control(src, v)?,
                "register" => task.register = Some(src.string(v, &key)?),
                "changed_when" => task.changed_when = Some(src.conditions(v, &key)?),
                "failed_when" => task.failed_when = Some(src.conditions(v, &key)?),
                "until" => task.until = Some(src.conditions(v, &key)?),
                "ignore_errors" => {
                    task.ignore_errors = match v.to_json(true) {
                        b @ Value::Bool(_) => b,
                        Value::String(s) if s.contains("{{") => Value::String(s),
                        _ => return Err(src.boolean(v, &key).unwrap_err().into()),
                    };
                }
                "ignore_unreachable" => task.ignore_unreachable = src.boolean(v, &key)?,
                "tags" => task.tags = src.strings(v, &key, true)?,
                "notify" => task.notify = src.strings(v, &key, false)?,
                "listen" => {
                    if !ctx.handlers {
                        return Err(src
                            .err(k, "`listen` is for handlers")
                            .hint("move this task under `handlers:`")
                            .into());
                    }
                    task.listen = src.strings(v, &key, false)?;
                }
                "delegate_to" => task.delegate_to = Some(src.string(v, &key)?),
                "run_once" => task.run_once = src.boolean(v, &key)?,
                "no_log" => task.no_log = src.boolean(v, &key)?,
                "args" => args_kw = Some(v),
                "environment" => task.environment = src.vars(v, &key)?,
                "become" => task.r#become = Some(src.boolean(v, &key)?),
                "become_user" => task.become_user = Some(src.string(v, &key)?),
                "retries" => {
                    task.retries = Some(
                        u32::try_from(src.uint(v, &key)?)
                            .map_err(|_| src.err(v, "`retries` is too large"))?,
                    );
                }
                "delay" => task.delay = Some(src.uint(v, &key)?),
                "timeout" => task.timeout = Some(src.uint(v, &key)?),
                "vars" => task.vars = src.vars(v, &key)?,
                "check_mode" => task.check_mode = Some(src.boolean(v, &key)?),
                "rescue" => rescue = Some((k, v)),
                "always" => always = Some((k, v)),
                _ => return Err(unknown_task_key(src, k, &key, has_action).into()),
            }
        }
        let Some((akey, aval)) = action else {
            if let Some((k, _)) = rescue.or(always) {
                return Err(src
                    .err(k, format!("`{}` needs a `block:`", k.key_text()))
                    .into());
            }
            return Err(src
                .err(first, "this task has no module")
                .hint(format!("add one module such as `command:`; supported modules are listed in {SUBSET_DOC}"))
                .into());
        };
        let name = akey.key_text();
        if name != "block"
            && let Some((k, _)) = rescue.or(always)
        {
            return Err(src
                .err(k, format!("`{}` needs a `block:`", k.key_text()))
                .into());
        }
        if let Some(a) = args_kw
            && Module::from_name(&name).is_none()
        {
            return Err(src
                .err(a, format!("`args` does not apply to `{name}`"))
                .into());
        }
        match name.as_str() {
            "block" => {
                if let Some((k, _)) = entries
                    .iter()
                    .find(|(k, _)| NOT_ON_BLOCK.contains(&k.key_text().as_str()))
                {
                    return Err(src
                        .err(k, format!("`{}` is not valid on a block", k.key_text()))
                        .hint("put it on the tasks inside the block")
                        .into());
                }
                let block = self.task_list(src, aval, ctx, "block")?;
                let rescue = match rescue {
                    Some((_, v)) => self.task_list(src, v, ctx, "rescue")?,
                    None => Vec::new(),
                };
                let always = match always {
                    Some((_, v)) => self.task_list(src, v, ctx, "always")?,
                    None => Vec::new(),
                };
                task.kind = TaskKind::Block {
                    block,
                    rescue,
                    always,
                };
            }
            "meta" => {
                let m = src.string(aval, "meta")?;
                task.kind = TaskKind::Meta(match m.as_str() {
                    "flush_handlers" => Meta::FlushHandlers,
                    "end_play" => Meta::EndPlay,
                    "end_host" => Meta::EndHost,
                    "clear_host_errors" => Meta::ClearHostErrors,
                    "noop" => Meta::Noop,
                    _ => {
                        return Err(src
                            .err(aval, format!("`meta: {m}` is not supported"))
                            .hint(did_you_mean(
                                &m,
                                &["flush_handlers", "end_play", "end_host", "clear_host_errors", "noop"],
                                "supported: flush_handlers, end_play, end_host, clear_host_errors, noop",
                            ))
                            .into());
                    }
                });
            }
            "include_tasks" => {
                let file = task_file_arg(src, aval, "include_tasks")?;
                task.kind = TaskKind::IncludeTasks {
                    file,
                    dir: src.dir.clone(),
                };
            }
            "import_tasks" => {
                if let Some((k, _)) = entries
                    .iter()
                    .find(|(k, _)| !IMPORT_KEYS.contains(&k.key_text().as_str()))
                {
                    return Err(src
                        .err(
                            k,
                            format!("`{}` does not apply to import_tasks", k.key_text()),
                        )
                        .hint("use `include_tasks:` for loops and results, which are run-time")
                        .into());
                }
                let file = task_file_arg(src, aval, "import_tasks")?;
                if file.contains("{{") {
                    return Err(src
                        .err(
                            aval,
                            "import_tasks is static: its file name cannot be a template",
                        )
                        .hint("use `include_tasks:` for a file chosen at run time")
                        .into());
                }
                let outer = Outer {
                    when: task.when,
                    tags: task.tags,
                    vars: task.vars,
                    r#become: task.r#become,
                    become_user: task.become_user,
                };
                let mut tasks =
                    self.task_file(&src.dir.join(&file), Some((src, aval)), ctx.role.clone())?;
                for t in &mut tasks {
                    outer.apply(t);
                }
                return Ok(tasks);
            }
            _ => {
                let module = Module::from_name(&name).expect("checked above");
                let mut args = module_args(src, module, aval)?;
                if let Some(a) = args_kw {
                    let extra = src.map(a, "`args`")?;
                    for (k, v) in extra {
                        let key = k.key_text();
                        if !args.contains_key(&key) {
                            args.insert(key, v.to_json(false));
                        }
                    }
                }
                task.kind = TaskKind::Action(Action {
                    module,
                    args,
                    span: src.span(akey),
                });
            }
        }
        Ok(vec![task])
    }
}

fn unknown_task_key(src: &Src, k: &Node, key: &str, has_action: bool) -> Located {
    match key {
        "action" | "local_action" => src
            .err(k, format!("`{key}:` is not supported"))
            .hint("write the module as the task's key (`- command: ...`); for local_action add `delegate_to: localhost`"),
        "include_role" | "import_role" => src
            .err(k, format!("`{key}` is not supported"))
            .hint("list the role under the play's `roles:`"),
        "async" | "poll" => src
            .err(k, format!("`{key}` is not supported"))
            .hint("kamo runs hosts in parallel; use `timeout:` to bound a task"),
        _ if key.starts_with("with_") => src
            .err(k, format!("`{key}` is not supported"))
            .hint("use `loop:` with a list (or `with_items`, `with_list`, `with_dict`)"),
        _ if has_action => src
            .err(k, format!("unknown or unsupported task keyword `{key}`"))
            .hint(did_you_mean(
                key,
                TASK_KEYS,
                &format!("supported task keywords are listed in {SUBSET_DOC}"),
            )),
        _ => {
            let mut names: Vec<&str> = Module::ALL.iter().map(|(n, _)| *n).collect();
            names.extend_from_slice(TASK_KEYS);
            src.err(k, format!("module `{key}` is not supported"))
                .hint(did_you_mean(
                    key,
                    &names,
                    &format!("supported modules are listed in {SUBSET_DOC}"),
                ))
        }
    }
}

fn empty_task(span: Span, role: Option<Arc<RoleCtx>>) -> Task {
    Task {
        name: None,
        span,
        kind: TaskKind::Meta(Meta::Noop),
        when: Vec::new(),
        r#loop: None,
        loop_control: LoopControl::default(),
        register: None,
        changed_when: None,
        failed_when: None,
        ignore_errors: Value::Bool(false),
        ignore_unreachable: false,
        tags: Vec::new(),
        notify: Vec::new(),
        listen: Vec::new(),
        delegate_to: None,
        run_once: false,
        no_log: false,
        environment: Vars::new(),
        r#become: None,
        become_user: None,
        until: None,
        retries: None,
        delay: None,
        vars: Vars::new(),
        role,
        check_mode: None,
        timeout: None,
    }
}

/// Refuses a key written twice in one mapping (YAML says it is an error; Ansible keeps the
/// last one, silently dropping the first).
fn check_duplicates(src: &Src, entries: &[(Node, Node)]) -> Result<(), Located> {
    let mut seen = HashSet::new();
    for (k, _) in entries {
        if !seen.insert(k.key_text()) {
            return Err(src.err(k, format!("`{}` is written twice", k.key_text())));
        }
    }
    Ok(())
}

fn src_roles_dir(src: &Src) -> PathBuf {
    // A role's meta file lives in roles/NAME/meta/: its dependencies are its siblings.
    let dir = &src.dir;
    if dir.file_name().is_some_and(|n| n == "meta")
        && let Some(roles) = dir.parent().and_then(Path::parent)
    {
        return roles.to_owned();
    }
    dir.join("roles")
}

fn list_dirs(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `main.yml` (or `main.yaml`) in a role's sub-directory.
fn main_file(dir: &Path) -> Option<PathBuf> {
    ["main.yml", "main.yaml"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

fn task_file_arg(src: &Src, v: &Node, key: &str) -> Result<String, Located> {
    match &v.kind {
        Kind::Map(entries) => {
            let mut file = None;
            for (k, fv) in entries {
                match k.key_text().as_str() {
                    "file" => file = Some(src.string(fv, "file")?),
                    other => {
                        return Err(src
                            .err(k, format!("`{key}` takes only `file:`, not `{other}`"))
                            .hint("put keywords on the task itself"));
                    }
                }
            }
            file.ok_or_else(|| src.err(v, format!("`{key}` needs `file:`")))
        }
        _ => src.string(v, key),
    }
}

fn serial(src: &Src, v: &Node) -> Result<Vec<Serial>, Located> {
    let one = |n: &Node| -> Result<Serial, Located> {
        let bad = || src.err(n, "`serial` must be a count (3) or a percentage (\"30%\")");
        let t = n.as_scalar().ok_or_else(bad)?.trim();
        if let Some(p) = t.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(0.0..=100.0).contains(&p) || p == 0.0 {
                return Err(bad());
            }
            Ok(Serial::Percent(p))
        } else {
            let c: usize = t.parse().map_err(|_| bad())?;
            Ok(Serial::Count(c))
        }
    };
    match &v.kind {
        Kind::Seq(items) => items.iter().map(one).collect(),
        _ => Ok(vec![one(v)?]),
    }
}

fn loop_value(src: &Src, key: &str, v: &Node) -> Result<Loop, Located> {
    let value = v.to_json(false);
    match (&value, key) {
        (Value::String(s), _) if s.contains("{{") => {}
        (Value::Array(_), "loop" | "with_items" | "with_list")
        | (Value::Object(_), "with_dict") => {}
        _ => {
            let want = if key == "with_dict" {
                "a mapping or a template"
            } else {
                "a list or a template"
            };
            return Err(src.err(v, format!("`{key}` must be {want}, not {}", v.type_name())));
        }
    }
    Ok(match key {
        "with_dict" => Loop::Dict(value),
        // with_items flattens one level of nested lists.
        "with_items" => match value {
            Value::Array(items) => Loop::Items(Value::Array(
                items
                    .into_iter()
                    .flat_map(|i| match i {
                        Value::Array(inner) => inner,
                        other => vec![other],
                    })
                    .collect(),
            )),
            other => Loop::Items(other),
        },
        _ => Loop::Items(value),
    })
}

fn loop_control(src: &Src, v: &Node) -> Result<LoopControl, Located> {
    let mut lc = LoopControl::default();
    for (k, val) in src.map(v, "`loop_control`")? {
        let key = k.key_text();
        match key.as_str() {
            "loop_var" => lc.loop_var = Some(src.string(val, &key)?),
            "label" => lc.label = Some(src.string(val, &key)?),
            "index_var" => lc.index_var = Some(src.string(val, &key)?),
            _ => {
                return Err(src
                    .err(k, format!("`loop_control: {key}` is not supported"))
                    .hint(did_you_mean(
                        &key,
                        &["loop_var", "label", "index_var"],
                        "supported: loop_var, label, index_var",
                    )));
            }
        }
    }
    Ok(lc)
}

/// A module's arguments as a mapping: a mapping as written, or a string split as Ansible does.
fn module_args(src: &Src, module: Module, v: &Node) -> Result<Map<String, Value>, Located> {
    // set_fact values are variables: read them as Ansible's YAML 1.1 does.
    let yaml11 = module == Module::SetFact;
    match &v.kind {
        Kind::Map(entries) => {
            check_duplicates(src, entries)?;
            Ok(entries
                .iter()
                .map(|(k, val)| (k.key_text(), val.to_json(yaml11)))
                .collect())
        }
        Kind::Scalar { text, .. } if !v.is_null() => {
            if module.free_form() {
                let known: &[&str] = match module {
                    Module::Raw => &["executable"],
                    Module::IncludeVars => &["file", "name", "dir"],
                    _ => FREE_FORM_KEYS,
                };
                Ok(free_form(text, known).map_err(|m| src.err(v, m))?)
            } else {
                kv_args(text).map_err(|m| {
                    src.err(v, format!("`{}`: {m}", module.name()))
                        .hint("write the arguments as a mapping, or as key=value words")
                })
            }
        }
        Kind::Scalar { .. } => Ok(Map::new()),
        Kind::Seq(_) => Err(src.err(
            v,
            format!(
                "`{}` takes a mapping of arguments, not a list",
                module.name()
            ),
        )),
    }
}

/// A word of a module's argument string: its byte range and its text without quotes.
struct Word {
    start: usize,
    end: usize,
    text: String,
}

/// Splits on whitespace outside quotes and outside Jinja `{{ }}`/`{% %}`/`{# #}`, as Ansible's
/// `split_args` does; quotes are removed outside Jinja.
fn split_words(s: &str) -> Result<Vec<Word>, String> {
    let mut words = Vec::new();
    let mut cur: Option<Word> = None;
    let mut quote: Option<char> = None;
    let mut jinja = 0usize;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        if quote.is_none() && jinja == 0 && c.is_whitespace() {
            if let Some(w) = cur.take() {
                words.push(w);
            }
            continue;
        }
        let w = cur.get_or_insert(Word {
            start: i,
            end: i,
            text: String::new(),
        });
        w.end = i + c.len_utf8();
        if c == '{' && matches!(next, Some('{' | '%' | '#')) {
            jinja += 1;
            w.text.push(c);
            let (j, n) = chars.next().expect("peeked");
            w.text.push(n);
            w.end = j + n.len_utf8();
            continue;
        }
        if jinja > 0 && matches!(c, '}' | '%' | '#') && next == Some('}') {
            jinja -= 1;
            w.text.push(c);
            let (j, n) = chars.next().expect("peeked");
            w.text.push(n);
            w.end = j + n.len_utf8();
            continue;
        }
        if jinja > 0 {
            w.text.push(c);
            continue;
        }
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (Some('"'), '\\') if matches!(next, Some('"' | '\\')) => {
                let (j, n) = chars.next().expect("peeked");
                w.text.push(n);
                w.end = j + n.len_utf8();
            }
            _ => w.text.push(c),
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".to_owned());
    }
    if jinja > 0 {
        return Err("unterminated `{{`".to_owned());
    }
    if let Some(w) = cur {
        words.push(w);
    }
    Ok(words)
}

/// `key=value` with a valid identifier as key.
fn split_kv(word: &str) -> Option<(&str, &str)> {
    let (k, v) = word.split_once('=')?;
    let ok = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    ok.then_some((k, v))
}

/// `file: path=/x state=absent`: every word must be `key=value`.
fn kv_args(s: &str) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for w in split_words(s)? {
        let (k, v) =
            split_kv(&w.text).ok_or_else(|| format!("`{}` is not a key=value argument", w.text))?;
        out.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    Ok(out)
}

/// `command: ls -l chdir=/tmp`: words `known=value` become arguments, the rest of the text,
/// as written, is `_raw_params`. A multi-line string (`shell: |`) is taken whole.
fn free_form(s: &str, known: &[&str]) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    if s.trim_end().contains('\n') {
        out.insert("_raw_params".to_owned(), Value::String(s.to_owned()));
        return Ok(out);
    }
    let words = split_words(s)?;
    let mut segments = Vec::new();
    let mut last = 0;
    for w in &words {
        if let Some((k, v)) = split_kv(&w.text)
            && known.contains(&k)
        {
            out.insert(k.to_owned(), Value::String(v.to_owned()));
            segments.push(s[last..w.start].trim());
            last = w.end;
        }
    }
    segments.push(s[last..].trim());
    let raw = segments
        .into_iter()
        .filter(|x| !x.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if !raw.is_empty() {
        out.insert("_raw_params".to_owned(), Value::String(raw));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ExitCode;

    /// Writes `files` (name, text) into a temporary directory and loads the first one.
    fn load(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Playbook, Error>) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let r = load_playbook(&dir.path().join(files[0].0));
        (dir, r)
    }

    fn ok(text: &str) -> Playbook {
        let (_d, r) = load(&[("play.yml", text)]);
        r.unwrap_or_else(|e| panic!("{}", e.render()))
    }

    /// The one task of the first play's first section.
    fn task(text: &str) -> Task {
        let pb = ok(&format!("- hosts: all\n  tasks:\n{text}"));
        pb.plays[0].sections[0][0].clone()
    }

    fn action(t: &Task) -> &Action {
        match &t.kind {
            TaskKind::Action(a) => a,
            other => panic!("not an action: {other:?}"),
        }
    }

    /// Loads, expects a parse error, and checks its location and hint.
    fn fails(text: &str, at: &str, hint: &str) -> String {
        let (_d, r) = load(&[("play.yml", text)]);
        let e = r.expect_err("should fail");
        assert_eq!(e.exit_code(), ExitCode::Parse, "{}", e.render());
        let out = e.render();
        assert!(out.contains(&format!("play.yml:{at}")), "want {at}:\n{out}");
        assert!(out.contains('^'), "{out}");
        assert!(out.contains(hint), "want hint {hint:?}:\n{out}");
        out
    }

    #[test]
    fn play_keywords() {
        let pb = ok("
- name: p
  hosts: [web, db]
  vars: {a: 1, b: yes, mode: 0755}
  gather_facts: no
  become: YES
  become_user: root
  become_method: sudo
  serial: [1, \"30%\", 5]
  strategy: free
  any_errors_fatal: on
  max_fail_percentage: 20
  environment: {PATH: /bin}
  connection: local
  tags: a, b
  ignore_unreachable: true
  remote_user: ops
  check_mode: yes
  pre_tasks: [{ping: }]
  tasks: [{ping: }]
  post_tasks: [{ping: }]
  handlers: [{name: h, ping: , listen: topic}]
");
        let p = &pb.plays[0];
        assert_eq!(p.name.as_deref(), Some("p"));
        assert_eq!(p.hosts, "web,db");
        assert_eq!(p.span.line, 2);
        assert_eq!(p.span.column, 3);
        assert_eq!(p.vars["a"], 1);
        assert_eq!(p.vars["b"], true);
        assert_eq!(p.vars["mode"], "0755");
        assert_eq!(p.vars["ansible_user"], "ops");
        assert!(!p.gather_facts);
        assert_eq!(p.r#become, Some(true));
        assert_eq!(p.become_user.as_deref(), Some("root"));
        assert_eq!(
            p.serial,
            vec![Serial::Count(1), Serial::Percent(30.0), Serial::Count(5)]
        );
        assert_eq!(p.strategy, Strategy::Free);
        assert!(p.any_errors_fatal);
        assert_eq!(p.max_fail_percentage, Some(20.0));
        assert_eq!(p.environment["PATH"], "/bin");
        assert_eq!(p.connection.as_deref(), Some("local"));
        assert_eq!(p.tags, ["a", "b"]);
        assert!(p.ignore_unreachable);
        assert_eq!(p.sections.len(), 3);
        assert_eq!(p.handlers[0].listen, ["topic"]);
        assert!(
            p.sections
                .iter()
                .flatten()
                .all(|t| t.check_mode == Some(true))
        );
        assert!(ok("- hosts: all\n").plays[0].gather_facts);
    }

    #[test]
    fn task_keywords() {
        let t = task(
            "
    - name: t
      command: /bin/true
      when: [a, true]
      loop: \"{{ items }}\"
      loop_control: {loop_var: x, label: \"{{ x.name }}\", index_var: i}
      register: r
      changed_when: false
      failed_when: r.rc > 1
      ignore_errors: yes
      ignore_unreachable: yes
      tags: [t1, t2]
      notify: h
      delegate_to: localhost
      run_once: true
      no_log: on
      args: {chdir: /tmp}
      environment: {A: b}
      become: no
      become_user: app
      until: r is success
      retries: 3
      delay: \"5\"
      vars: {v: off}
      check_mode: false
      timeout: 60
",
        );
        assert_eq!(t.name.as_deref(), Some("t"));
        assert_eq!((t.span.line, t.span.column), (4, 7));
        let a = action(&t);
        assert_eq!(a.module, Module::Command);
        assert_eq!((a.span.line, a.span.column), (5, 7));
        assert_eq!(a.args["_raw_params"], "/bin/true");
        assert_eq!(a.args["chdir"], "/tmp");
        assert_eq!(t.when, ["a", "True"]);
        assert!(matches!(&t.r#loop, Some(Loop::Items(Value::String(s))) if s == "{{ items }}"));
        assert_eq!(t.loop_control.loop_var.as_deref(), Some("x"));
        assert_eq!(t.loop_control.label.as_deref(), Some("{{ x.name }}"));
        assert_eq!(t.loop_control.index_var.as_deref(), Some("i"));
        assert_eq!(t.register.as_deref(), Some("r"));
        assert_eq!(t.changed_when, Some(vec!["False".to_owned()]));
        assert_eq!(t.failed_when, Some(vec!["r.rc > 1".to_owned()]));
        assert_eq!(t.ignore_errors, Value::Bool(true));
        assert!(t.ignore_unreachable);
        assert_eq!(t.tags, ["t1", "t2"]);
        assert_eq!(t.notify, ["h"]);
        assert_eq!(t.delegate_to.as_deref(), Some("localhost"));
        assert!(t.run_once && t.no_log);
        assert_eq!(t.environment["A"], "b");
        assert_eq!(t.r#become, Some(false));
        assert_eq!(t.become_user.as_deref(), Some("app"));
        assert_eq!(t.until, Some(vec!["r is success".to_owned()]));
        assert_eq!(
            (t.retries, t.delay, t.timeout),
            (Some(3), Some(5), Some(60))
        );
        assert_eq!(t.vars["v"], false);
        assert_eq!(t.check_mode, Some(false));
    }

    #[test]
    fn loops_and_lists() {
        let t = task("    - debug: var=item\n      with_items: [[1, 2], 3]\n");
        assert!(matches!(&t.r#loop, Some(Loop::Items(v)) if *v == serde_json::json!([1, 2, 3])));
        let t = task("    - debug: var=item\n      with_list: [[1, 2], 3]\n");
        assert!(matches!(&t.r#loop, Some(Loop::Items(v)) if *v == serde_json::json!([[1, 2], 3])));
        let t = task("    - debug: var=item\n      with_dict: {a: 1}\n");
        assert!(matches!(&t.r#loop, Some(Loop::Dict(v)) if *v == serde_json::json!({"a": 1})));
        let t = task("    - ping:\n      tags: \"a, b,c\"\n      notify: [x, y]\n      when: no\n");
        assert_eq!(t.tags, ["a", "b", "c"]);
        assert_eq!(t.notify, ["x", "y"]);
        assert_eq!(t.when, ["False"]);
        let t = task("    - ping:\n      ignore_errors: \"{{ lax }}\"\n");
        assert_eq!(t.ignore_errors, "{{ lax }}");
    }

    #[test]
    fn free_form_and_key_value() {
        let a = action(&task("    - command: ls -l chdir=/tmp creates=/x\n")).clone();
        assert_eq!(a.args["_raw_params"], "ls -l");
        assert_eq!(a.args["chdir"], "/tmp");
        assert_eq!(a.args["creates"], "/x");
        let a = action(&task(
            "    - shell: echo \"a  b\" removes='/my dir' | tr a b\n",
        ))
        .clone();
        assert_eq!(a.args["_raw_params"], "echo \"a  b\" | tr a b");
        assert_eq!(a.args["removes"], "/my dir");
        let a = action(&task("    - shell: |\n        echo chdir=/x\n        ls\n")).clone();
        assert_eq!(a.args["_raw_params"], "echo chdir=/x\nls\n");
        assert!(!a.args.contains_key("chdir"));
        let a = action(&task("    - raw: echo creates=1 executable=/bin/bash\n")).clone();
        assert_eq!(a.args["_raw_params"], "echo creates=1");
        assert_eq!(a.args["executable"], "/bin/bash");
        let a = action(&task("    - ansible.builtin.file: path=/x state=absent\n")).clone();
        assert_eq!(a.module, Module::File);
        assert_eq!(a.args["path"], "/x");
        assert_eq!(a.args["state"], "absent");
        assert!(!a.args.contains_key("_raw_params"));
        let a = action(&task(
            "    - apt: name=foo state=present update_cache=yes\n",
        ))
        .clone();
        assert_eq!(a.args["update_cache"], "yes");
        let a = action(&task(
            "    - debug: msg=\"hello {{ who | default('x y') }}\"\n",
        ))
        .clone();
        assert_eq!(a.args["msg"], "hello {{ who | default('x y') }}");
        let a = action(&task("    - apt:\n        name: foo\n        update_cache: yes\n        mode: 0644\n        n: 3\n")).clone();
        assert_eq!(a.args["update_cache"], "yes");
        assert_eq!(a.args["mode"], "0644");
        assert_eq!(a.args["n"], 3);
        let a = action(&task("    - set_fact: {flag: no, n: 1}\n")).clone();
        assert_eq!(a.args["flag"], false);
        let a = action(&task("    - include_vars: more.yml\n")).clone();
        assert_eq!(a.args["_raw_params"], "more.yml");
        let a = action(&task("    - include_vars: {file: more.yml, name: m}\n")).clone();
        assert_eq!(a.args["name"], "m");
        let a = action(&task("    - debug:\n        var: x\n")).clone();
        assert_eq!(a.args["var"], "x");
        let a = action(&task(
            "    - shell: echo hi\n      args:\n        chdir: /a\n        executable: /bin/bash\n",
        ))
        .clone();
        assert_eq!(a.args["chdir"], "/a");
        assert_eq!(a.args["executable"], "/bin/bash");
    }

    #[test]
    fn blocks_meta_includes() {
        let pb = ok("
- hosts: all
  tasks:
    - name: b
      block:
        - command: a
      rescue:
        - command: b
      always:
        - meta: flush_handlers
      when: x
    - include_tasks: more.yml
    - include_tasks:
        file: \"{{ f }}.yml\"
      loop: [a, b]
    - meta: end_play
");
        let s = &pb.plays[0].sections[0];
        match &s[0].kind {
            TaskKind::Block {
                block,
                rescue,
                always,
            } => {
                assert_eq!(block.len(), 1);
                assert_eq!(rescue.len(), 1);
                assert!(matches!(
                    always[0].kind,
                    TaskKind::Meta(Meta::FlushHandlers)
                ));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s[0].when, ["x"]);
        assert!(matches!(&s[1].kind, TaskKind::IncludeTasks { file, .. } if file == "more.yml"));
        assert!(matches!(&s[2].kind, TaskKind::IncludeTasks { file, .. } if file == "{{ f }}.yml"));
        assert!(s[2].r#loop.is_some());
        assert!(matches!(s[3].kind, TaskKind::Meta(Meta::EndPlay)));
    }

    #[test]
    fn anchors_and_merge_keys() {
        let pb = ok("
- hosts: all
  vars:
    defaults: &defaults
      owner: root
      mode: \"0644\"
  tasks:
    - file:
        <<: *defaults
        path: /a
        mode: \"0600\"
    - file:
        <<: [*defaults, {group: adm}]
        path: /b
");
        let s = &pb.plays[0].sections[0];
        let a = action(&s[0]);
        assert_eq!(a.args["owner"], "root");
        assert_eq!(a.args["mode"], "0600");
        assert_eq!(a.args["path"], "/a");
        let b = action(&s[1]);
        assert_eq!(b.args["group"], "adm");
        assert_eq!(b.args["mode"], "0644");
    }

    #[test]
    fn roles_imports_and_files() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/playbooks/roles_play");
        let pb = load_playbook(&dir.join("site.yml")).unwrap_or_else(|e| panic!("{}", e.render()));
        assert_eq!(pb.plays.len(), 2);
        assert!(!pb.plays[0].gather_facts);
        let p = &pb.plays[1];
        let names: Vec<Vec<String>> = p
            .sections
            .iter()
            .map(|s| s.iter().map(Task::display_name).collect())
            .collect();
        assert_eq!(
            names,
            [
                vec!["base task", "common task", "web task", "web task 2"],
                vec!["extra one", "extra two"]
            ]
        );
        let roles = &p.sections[0];
        let common = roles[1].role.as_ref().unwrap();
        assert_eq!(common.name, "common");
        assert_eq!(common.defaults["common_port"], 22);
        assert_eq!(common.vars["common_flag"], true);
        assert_eq!(roles[0].role.as_ref().unwrap().name, "base");
        let web = &roles[2];
        assert_eq!(web.when, ["inventory_hostname != 'skip'"]);
        assert_eq!(web.tags, ["web"]);
        assert_eq!(web.vars["port"], 8080);
        assert_eq!(
            roles[3].when,
            ["inventory_hostname != 'skip'", "port is defined"]
        );
        assert!(roles[1].when.is_empty());
        let extra = &p.sections[1];
        assert_eq!(extra[0].when, ["do_extra"]);
        assert_eq!(extra[1].tags, ["two", "extra"]);
        assert_eq!(extra[1].span.file.file_name().unwrap(), "extra.yml");
        let handlers: Vec<String> = p.handlers.iter().map(Task::display_name).collect();
        assert_eq!(handlers, ["restart app", "restart common"]);
        assert_eq!(p.handlers[1].listen, ["common changed"]);
        for f in [
            "site.yml",
            "plays/first.yml",
            "extra.yml",
            "roles/common/meta/main.yml",
            "roles/common/defaults/main.yml",
            "roles/common/templates/motd.j2",
            "roles/common/files/data.txt",
            "roles/base/tasks/main.yml",
        ] {
            assert!(pb.files.contains(&dir.join(f)), "{f} not in {:?}", pb.files);
        }
    }

    #[test]
    fn load_tasks_and_vars_files() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t.yml");
        std::fs::write(&t, "- command: echo\n  when: x\n").unwrap();
        let tasks = load_tasks(&t, None).unwrap();
        assert_eq!(tasks[0].when, ["x"]);
        let v = dir.path().join("v.yml");
        std::fs::write(&v, "a: yes\nb: [1, two]\n").unwrap();
        let vars = load_vars_file(&v).unwrap();
        assert_eq!(vars["a"], true);
        assert_eq!(vars["b"], serde_json::json!([1, "two"]));
        std::fs::write(&v, "- a\n").unwrap();
        assert_eq!(load_vars_file(&v).unwrap_err().exit_code(), ExitCode::Parse);
    }

    #[test]
    fn vault_values_and_files_in_playbooks() {
        crate::vault::keyring::install_test_keyring();
        let fixture = |n: &str| {
            std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/vault")
                    .join(n),
            )
            .unwrap()
        };
        let inline = fixture("inline.yml").replace('\n', "\n    ");
        let (d, r) = load(&[
            (
                "play.yml",
                &format!("- hosts: all\n  vars:\n    {inline}\n  vars_files: [v.yml]\n"),
            ),
            ("v.yml", &fixture("vars-1.1.yml")),
        ]);
        let pb = r.unwrap();
        assert_eq!(pb.plays[0].vars["inline_value"], "inline-v4ult-value");
        let v = load_vars_file(&d.path().join("v.yml")).unwrap();
        assert_eq!(v["api_word"], "tok-8d1f0c2e");
        assert!(
            crate::vault::keyring::revealed()
                .iter()
                .any(|s| s == "tok-8d1f0c2e")
        );
        // A broken `!vault` value is a located parse error.
        fails(
            "- hosts: all\n  vars:\n    x: !vault |\n      $ANSIBLE_VAULT;1.1;AES256\n      zz\n",
            "3:",
            "ansible-vault",
        );
    }

    #[test]
    fn vars_files_are_checked_and_recorded() {
        let (d, r) = load(&[
            (
                "play.yml",
                "- hosts: all\n  vars_files: [v.yml, \"{{ env }}.yml\"]\n",
            ),
            ("v.yml", "x: 1\n"),
        ]);
        let pb = r.unwrap();
        assert_eq!(pb.plays[0].vars_files, ["v.yml", "{{ env }}.yml"]);
        assert!(pb.files.contains(&d.path().join("v.yml")));
        fails(
            "- hosts: all\n  vars_files:\n    - missing.yml\n",
            "3:7",
            "relative to the file",
        );
    }

    #[test]
    fn errors_are_located_with_hints() {
        fails(
            "- hosts: all\n  tasks:\n    - command: ls\n      whn: x\n",
            "4:7",
            "did you mean `when`?",
        );
        let out = fails(
            "- hosts: all\n  tasks:\n    - frobnicate: {level: 11}\n",
            "3:7",
            "docs/SUBSET.md",
        );
        assert!(
            out.contains("module `frobnicate` is not supported"),
            "{out}"
        );
        fails(
            "- hosts: all\n  tasks:\n    - shel: ls\n",
            "3:7",
            "did you mean `shell`?",
        );
        fails(
            "- hosts: all\n  tasks:\n    - command: ls\n      shell: ls\n",
            "4:7",
            "split it",
        );
        fails("- hosts: all\n  tasks:\n    - command: [ls\n", "3:", "");
        fails(
            "- hosts: all\n  tasks:\n    - command: ls\n      loop: 5\n",
            "4:13",
            "",
        );
        fails(
            "- hosts: all\n  tasks:\n    - command: ls\n      retries: \"x\"\n",
            "4:16",
            "",
        );
        fails(
            "- hosts: all\n  tasks:\n    - import_tasks: nope.yml\n",
            "3:21",
            "relative to the file",
        );
        fails(
            "- import_playbook: nope.yml\n",
            "1:20",
            "relative to the file",
        );
        fails(
            "- hosts: all\n  roles:\n    - nosuchrole\n",
            "3:7",
            "roles/",
        );
        fails(
            "- hosts: all\n  tasks:\n    - action: command ls\n",
            "3:7",
            "write the module as the task's key",
        );
        fails(
            "- hosts: all\n  tasks:\n    - local_action: command ls\n",
            "3:7",
            "delegate_to: localhost",
        );
        fails(
            "- hosts: all\n  tasks:\n    - meta: reset_connection\n",
            "3:13",
            "flush_handlers",
        );
        fails(
            "- hosts: all\n  gather_fact: no\n",
            "2:3",
            "did you mean `gather_facts`?",
        );
        fails("- hosts: all\n  become: maybe\n", "2:11", "yes/no");
        fails("- hosts: all\n  become_method: su\n", "2:18", "SUBSET");
        fails("- hosts: all\n  module_defaults: {}\n", "2:3", "anchors");
        fails("- hosts: all\n  ignore_errors: true\n", "2:3", "block");
        fails(
            "- hosts: all\n  tasks:\n    - ping:\n      when: a\n      when: b\n",
            "5:7",
            "",
        );
        fails(
            "- hosts: all\n  tasks:\n    - file: path=/x oops\n",
            "3:13",
            "key=value",
        );
        fails(
            "- hosts: all\n  tasks:\n    - ping:\n      loop_control: {pause: 1}\n",
            "4:22",
            "",
        );
        fails(
            "- hosts: all\n  tasks:\n    - name: only a name\n",
            "3:7",
            "add one module",
        );
        fails(
            "- hosts: all\n  tasks:\n    - ping:\n      rescue: []\n",
            "4:7",
            "",
        );
        fails("- hosts: all\n  tasks:\n    - !vault x: 1\n", "3:7", "");
        fails("- name: no hosts\n", "1:3", "hosts: all");
        fails(
            "- hosts: all\n  tasks:\n    - with_fileglob: x\n      debug: msg=x\n",
            "3:7",
            "loop",
        );
    }

    /// As in Ansible (kubespray's `kubespray-defaults`): a role's defaults are visible to the
    /// whole play, even from a role of defaults alone; a later role's defaults win.
    #[test]
    fn role_defaults_serve_the_whole_play() {
        let (_d, r) = load(&[
            (
                "play.yml",
                "- hosts: all\n  roles: [defs, app]\n  tasks:\n    - ping:\n",
            ),
            ("roles/defs/defaults/main.yml", "port: 80\nname: defs\n"),
            ("roles/app/defaults/main.yml", "name: app\n"),
            ("roles/app/tasks/main.yml", "- ping:\n"),
        ]);
        let pb = r.unwrap();
        let d = &pb.plays[0].role_defaults;
        assert_eq!(d["port"], 80);
        assert_eq!(d["name"], "app");
        let (_d, r) = load(&[("play.yml", "- hosts: all\n  tasks:\n    - ping:\n")]);
        assert!(r.unwrap().plays[0].role_defaults.is_empty());
    }

    #[test]
    fn role_errors() {
        let (_d, r) = load(&[
            ("play.yml", "- hosts: all\n  roles: [a]\n"),
            ("roles/a/meta/main.yml", "dependencies: [b]\n"),
            ("roles/b/meta/main.yml", "dependencies:\n  - role: a\n"),
        ]);
        let e = r.unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::Parse);
        assert!(e.render().contains("depends on itself"), "{}", e.render());
        let (_d, r) = load(&[
            ("play.yml", "- hosts: all\n  roles: [comon]\n"),
            ("roles/common/tasks/main.yml", "- ping:\n"),
        ]);
        let out = r.unwrap_err().render();
        assert!(out.contains("did you mean `common`?"), "{out}");
        assert!(out.contains("play.yml:2:11"), "{out}");
        let (_d, r) = load(&[
            (
                "play.yml",
                "- hosts: all\n  tasks:\n    - import_tasks: a.yml\n",
            ),
            ("a.yml", "- import_tasks: a.yml\n"),
        ]);
        assert!(r.unwrap_err().render().contains("import cycle"));
        let (_d, r) = load(&[
            ("play.yml", "- hosts: all\n  roles: [r]\n"),
            ("roles/r/tasks/main.yml", "- ping:\n  whenn: x\n"),
        ]);
        let out = r.unwrap_err().render();
        assert!(out.contains("main.yml:2:3"), "{out}");
    }

    #[test]
    fn alias_bomb_is_refused_quickly() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..30 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let start = std::time::Instant::now();
        let (_d, r) = load(&[("play.yml", &text)]);
        let out = r.unwrap_err().render();
        assert!(out.contains("alias bomb"), "{out}");
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let (_d, r) = load(&[("play.yml", &deep)]);
        let out = r.unwrap_err().render();
        assert!(out.contains("nesting deeper"), "{out}");
    }

    #[test]
    fn garbled_input_never_panics() {
        const PIECES: &[&str] = &[
            "- ",
            "hosts: ",
            "all",
            "\n",
            "  ",
            "tasks:",
            "[",
            "]",
            "{",
            "}",
            ":",
            "&a ",
            "*a",
            "<<: ",
            "\"",
            "'",
            "|",
            ">",
            "#",
            "!!str ",
            "!x ",
            "---\n",
            "...",
            "? ",
            ",",
            "{{",
            "}}",
            "command: ls",
            "when: ",
            "block:",
            "\t",
            "é",
            "%",
            "@",
            "- import_tasks: x\n",
        ];
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.yml");
        for _ in 0..3000 {
            let mut text = String::new();
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let n = (seed >> 33) % 40;
            for _ in 0..n {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let i = usize::try_from((seed >> 33) % PIECES.len() as u64).unwrap();
                text.push_str(PIECES[i]);
            }
            std::fs::write(&path, &text).unwrap();
            if let Err(e) = load_playbook(&path) {
                let _ = e.render();
            }
            let _ = yaml::parse(&text);
        }
    }
}
