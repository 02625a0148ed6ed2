//! Ansible-dialect Jinja2 templating: the strings of a playbook, `when:` conditions and the
//! files of the `template` module.
//!
//! The engine is MiniJinja (a Jinja2 implementation by Jinja2's author) with its builtins,
//! plus the Ansible filters and tests playbooks use, written here with Ansible's semantics.
//!
//! Key decisions:
//!
//! - **Strict undefined**, as Ansible: printing, iterating, testing for truth or passing to a
//!   filter an undefined value is an error naming the variable ("'foo' is undefined"); a
//!   missing attribute of a defined value names the attribute. `is defined`, `is undefined`,
//!   `default`/`d` and `mandatory` see undefined values without error. Like Ansible's
//!   `AnsibleUndefined`, attribute access on an undefined value stays undefined, so
//!   `foo.bar is defined` is false and `foo.bar | default(1)` is 1 when `foo` is undefined:
//!   before compiling, such chains (a name, then `.attr` or `['key']` lookups, followed by
//!   `is [not] defined`/`undefined` or `| default`/`| d`) are rewritten to go through a
//!   safe-lookup function; any other use of `foo.bar` still fails on `foo`.
//! - **Native types**: a string that is a single `{{ expr }}` renders to the expression's value
//!   (list, mapping, number, bool, null), as ansible-core 2.19 does; any other string renders
//!   to a string. Strings without `{{`, `{%` or `{#` are returned untouched and never parsed.
//! - **Python output**: printing follows Python's `str()`: `True`, `False`, `None`, and
//!   containers as Python reprs (`['a', 1]`, `{'k': True}`), so `"x={{ flag }}"` is `x=True`.
//! - **Whitespace**: `trim_blocks` on and the trailing newline kept, as Ansible's templar and
//!   `template` module default to. No auto-escaping.
//! - **Conditions** are evaluated as the expression of `{% if EXPR %}` with Jinja truthiness:
//!   a variable holding the string `"false"` is true (non-empty), like ansible-core 2.19 and
//!   unlike the string-guessing of older versions; use `| bool` for string flags.
//! - **`omit`** renders to [`OMIT`]; [`Templater::render_value`] drops mapping entries whose
//!   value is exactly that placeholder.
//! - **Sandbox**: no loader (`include`, `import`, `extends` cannot read files), no `lookup`,
//!   `query`/`q`, no environment or filesystem access; no filter reads the controller.
//!
//! - **Cost**: the variables are converted to engine values once per call (once for a whole
//!   [`Templater::render_value`]); strings without markup cost nothing.
//!
//! Not supported (an error, never a silent difference): `lookup`/`query`/`q`, the `exists`
//! family of tests, `ipaddr` and other collection filters, FQCN filter names
//! (`ansible.builtin.to_json`), `{% break %}`/`{% continue %}`, `{% do %}`, template
//! inheritance and includes. Known differences: `to_yaml`/`to_nice_yaml` emit serde_yaml's
//! block style (semantically equal YAML, not PyYAML's layout), `from_yaml` follows YAML 1.2
//! (`yes` is a string), `~` concatenation prints `true`/`none` in MiniJinja's spelling, and
//! regular expressions use the `regex` crate (no look-around or backreferences in patterns),
//! and `mandatory` cannot name the missing variable in its message.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock};

use minijinja::value::{Kwargs, Rest, Serde, Value, ValueKind};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value as Json;

/// The placeholder string that `omit` renders to.
pub const OMIT: &str = "__omit_place_holder__kamo__";

/// Name of the safe-lookup function chains on possibly undefined values are rewritten to.
const CHAIN_FN: &str = "__kamo_chain";

/// Name prefix under which inline template strings are compiled once and kept by the
/// environment (its loader hands back the text after the prefix, rewritten).
const INLINE: &str = "\u{1}kamo-inline\u{1}";

/// Compiled once per run; cheap to share (`Arc`).
///
/// A task's view of it ([`Templater::with_shared`]) adds variables that every host of the
/// task reads alike (`hostvars`): converted once per task and layered under each host's own
/// variables, instead of a copy in every host's variables, which grew with the square of
/// the host count (200 hosts: 511 MB) and was converted again at every render.
pub struct Templater {
    env: Arc<Environment<'static>>,
    shared: Option<Value>,
}

/// A template that failed to parse or render.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
    /// The undefined variable's name when that was the cause.
    pub undefined: Option<String>,
    /// True for syntax errors (parse-time), false for render-time errors.
    pub syntax: bool,
    /// 1-based line inside the template text, when known.
    pub line: Option<usize>,
}

impl TemplateError {
    fn plain(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            undefined: None,
            syntax: false,
            line: None,
        }
    }
}

impl Default for Templater {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Templater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templater")
    }
}

/// True when `text` holds any Jinja markup.
fn has_markup(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

impl Templater {
    #[must_use]
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_debug(true);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .keep_trailing_newline(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        env.set_formatter(|out, _state, value| {
            if value.is_undefined() {
                // Produces the engine's own undefined error, which names the expression.
                value.get_attr("")?;
            }
            if let Some(s) = value.as_str() {
                out.write_str(s)?;
            } else {
                out.write_str(&py_str(value))?;
            }
            Ok(())
        });
        // Inline templates (task arguments, variables) repeat for every host: the loader
        // compiles each text once and the environment keeps it. Nothing else can name a
        // template (no include or import), so the loader sees only these names.
        env.set_loader(|name| Ok(name.strip_prefix(INLINE).map(rewrite_chains)));
        env.add_global("omit", Value::from(OMIT));
        env.add_function(CHAIN_FN, chain_lookup);
        for name in ["lookup", "query", "q"] {
            env.add_function(name, |_: Rest<Value>| -> Result<Value, minijinja::Error> {
                Err(invalid(
                    "lookup is not supported: kamo templates cannot read the controller",
                ))
            });
        }
        filters::register(&mut env);
        checks::register(&mut env);
        Self {
            env: Arc::new(env),
            shared: None,
        }
    }

    /// The same templater with `shared` (a JSON object) visible to every render, below the
    /// variables each render is given: a task's `hostvars`, built and converted once for all
    /// its hosts. Cheap: the compiled environment is shared, not copied.
    #[must_use]
    pub fn with_shared(&self, shared: Option<&Json>) -> Self {
        Self {
            env: Arc::clone(&self.env),
            shared: shared.map(|s| Value::from(Serde(s))),
        }
    }

    /// The template context for a JSON object of variables, over the shared ones if any.
    fn context(&self, vars: &Json) -> Value {
        let own = Value::from(Serde(vars));
        match &self.shared {
            Some(shared) => minijinja::value::merge_maps([shared.clone(), own]),
            None => own,
        }
    }

    /// Renders a string. If the whole string is a single `{{ expr }}` (surrounding whitespace
    /// allowed), returns the expression's native value (list, dict, number, bool) as Ansible
    /// does, else a string. Strings without `{{`, `{%` or `{#` are returned as-is without
    /// parsing (fast path).
    pub fn render_str(&self, text: &str, vars: &Json) -> Result<Json, TemplateError> {
        if !has_markup(text) {
            return Ok(Json::String(text.to_owned()));
        }
        let ctx = self.context(vars);
        self.render_str_ctx(text, &ctx)
    }

    fn render_str_ctx(&self, text: &str, ctx: &Value) -> Result<Json, TemplateError> {
        if !has_markup(text) {
            return Ok(Json::String(text.to_owned()));
        }
        guard(|| {
            if let Some(inner) = single_expression(text) {
                let src = rewrite_expr(inner);
                if let Ok(expr) = self.env.compile_expression_owned(src.clone()) {
                    let value = expr.eval(ctx.clone()).map_err(|e| convert(&e, &src))?;
                    if value.is_undefined() {
                        // Same message as printing it would give.
                        return Err(self.render_text(text, ctx).err().unwrap_or_else(|| {
                            TemplateError::plain(format!("'{}' is undefined", inner.trim()))
                        }));
                    }
                    return to_json(&value).map_err(|e| convert(&e, &src));
                }
            }
            self.render_text(text, ctx).map(Json::String)
        })
    }

    fn render_text(&self, text: &str, ctx: &Value) -> Result<String, TemplateError> {
        let env: &Environment<'_> = &self.env;
        let tmpl = env
            .get_template(&format!("{INLINE}{text}"))
            .map_err(|e| convert(&e, &rewrite_chains(text)))?;
        tmpl.render(ctx.clone())
            .map_err(|e| convert(&e, &rewrite_chains(text)))
    }

    fn render_named(&self, text: &str, name: &str, ctx: &Value) -> Result<String, TemplateError> {
        let src = rewrite_chains(text);
        let env: &Environment<'_> = &self.env;
        let tmpl = env
            .template_from_named_str(name, &src)
            .map_err(|e| convert(&e, &src))?;
        tmpl.render(ctx.clone()).map_err(|e| convert(&e, &src))
    }

    /// Renders every string inside a JSON value recursively (mapping keys too). A value that
    /// renders to the `omit` placeholder is removed from its parent mapping (Ansible's
    /// `omit`).
    pub fn render_value(&self, v: &Json, vars: &Json) -> Result<Json, TemplateError> {
        if !needs_render(v) {
            return Ok(v.clone());
        }
        let ctx = self.context(vars);
        self.render_value_ctx(v, &ctx)
    }

    fn render_value_ctx(&self, v: &Json, ctx: &Value) -> Result<Json, TemplateError> {
        Ok(match v {
            Json::String(s) => self.render_str_ctx(s, ctx)?,
            Json::Array(items) => Json::Array(
                items
                    .iter()
                    .map(|i| self.render_value_ctx(i, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Json::Object(map) => {
                let mut out = serde_json::Map::with_capacity(map.len());
                for (k, val) in map {
                    let key = match self.render_str_ctx(k, ctx)? {
                        Json::String(s) => s,
                        other => py_str_json(&other),
                    };
                    let val = self.render_value_ctx(val, ctx)?;
                    if val.as_str() == Some(OMIT) {
                        continue;
                    }
                    out.insert(key, val);
                }
                Json::Object(out)
            }
            other => other.clone(),
        })
    }

    /// Evaluates a bare conditional expression (`when:`, `changed_when:`, `failed_when:`,
    /// `until:`, `assert: that:`) as `{% if EXPR %}` does, with Jinja truthiness: strings such
    /// as `"false"` held by a variable are true (non-empty) — use `| bool` for those. An
    /// expression holding `{{ }}` is rendered first (Ansible warns about that but allows it);
    /// an empty expression is true.
    pub fn eval_condition(&self, expr: &str, vars: &Json) -> Result<bool, TemplateError> {
        let ctx = self.context(vars);
        let mut expr = expr.trim().to_owned();
        if has_markup(&expr) {
            match self.render_str_ctx(&expr, &ctx)? {
                Json::Bool(b) => return Ok(b),
                Json::String(s) => s.trim().clone_into(&mut expr),
                other => return Ok(json_truthy(&other)),
            }
        }
        if expr.is_empty() {
            return Ok(true);
        }
        guard(|| {
            let src = rewrite_expr(&expr);
            let compiled = self
                .env
                .compile_expression_owned(src.clone())
                .map_err(|e| convert(&e, &src))?;
            let value = compiled.eval(ctx.clone()).map_err(|e| convert(&e, &src))?;
            if value.is_undefined() {
                // Let the engine name it, through `{% if %}` in strict mode.
                let tmpl = format!("{{% if {src} %}}{{% endif %}}");
                let env: &Environment<'_> = &self.env;
                if let Err(e) = env.render_str(&tmpl, ctx.clone()) {
                    return Err(convert(&e, &tmpl));
                }
                return Err(TemplateError::plain(format!("'{expr}' is undefined")));
            }
            Ok(value.is_true())
        })
    }

    /// Syntax check only (no variables): for loading playbooks before any host is touched.
    pub fn check_syntax(&self, text: &str) -> Result<(), TemplateError> {
        if !has_markup(text) {
            return Ok(());
        }
        guard(|| {
            let src = rewrite_chains(text);
            let env: &Environment<'_> = &self.env;
            env.template_from_named_str("<string>", &src)
                .map(|_| ())
                .map_err(|e| convert(&e, &src))
        })
    }

    /// Syntax check of a bare conditional expression (`when:` and friends).
    pub fn check_condition_syntax(&self, expr: &str) -> Result<(), TemplateError> {
        let expr = expr.trim();
        if has_markup(expr) {
            return self.check_syntax(expr);
        }
        if expr.is_empty() {
            return Ok(());
        }
        guard(|| {
            let src = rewrite_expr(expr);
            self.env
                .compile_expression_owned(src.clone())
                .map(|_| ())
                .map_err(|e| convert(&e, &src))
        })
    }

    /// Renders a whole template file's content (the `template` module): always a string;
    /// `trim_blocks` on and the trailing newline kept, as Ansible's template module does.
    pub fn render_file(
        &self,
        name: &str,
        text: &str,
        vars: &Json,
    ) -> Result<String, TemplateError> {
        let ctx = self.context(vars);
        guard(|| self.render_named(text, name, &ctx))
    }

    /// The variables a template or expression reads (top-level names), e.g. to tell in a dry
    /// run which values exist only at run time. Globals (`omit`, `range`, ...) are not listed;
    /// text that does not parse yields what could be found (possibly nothing).
    #[must_use]
    pub fn referenced_vars(&self, text: &str) -> BTreeSet<String> {
        let names = guard(|| {
            let env: &Environment<'_> = &self.env;
            if has_markup(text) {
                let src = rewrite_chains(text);
                Ok(env
                    .template_from_named_str("<string>", &src)
                    .map(|t| t.undeclared_variables(false))
                    .unwrap_or_default())
            } else {
                let src = rewrite_expr(text.trim());
                Ok(env
                    .compile_expression_owned(src)
                    .map(|e| e.undeclared_variables(false))
                    .unwrap_or_default())
            }
        })
        .unwrap_or_default();
        let globals: BTreeSet<&str> = self.env.globals().map(|(k, _)| k).collect();
        names
            .into_iter()
            .filter(|n| !globals.contains(n.as_str()) && n != CHAIN_FN)
            .collect()
    }
}

/// Runs `f`, turning a panic inside the engine or a filter into an error.
fn guard<T>(f: impl FnOnce() -> Result<T, TemplateError>) -> Result<T, TemplateError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(TemplateError::plain("internal error while templating")))
}

/// Whether any string in `v` (keys included) holds Jinja markup.
fn needs_render(v: &Json) -> bool {
    match v {
        Json::String(s) => has_markup(s),
        Json::Array(a) => a.iter().any(needs_render),
        Json::Object(m) => m.iter().any(|(k, v)| has_markup(k) || needs_render(v)),
        _ => false,
    }
}

/// The inner expression of a string that is exactly one `{{ expr }}`.
fn single_expression(text: &str) -> Option<&str> {
    // Exactly one expression, nothing around it: `"{{ x }}\n"` (a block scalar) is text
    // ending in a newline, as Ansible renders it, not the bare value.
    let t = text;
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    // `{{ a }} and {{ b }}` also starts and ends with braces; it fails to compile as one
    // expression, and the caller then renders it as text.
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    if inner.contains("{{") || inner.contains("{%") || inner.contains("{#") {
        return None;
    }
    Some(inner)
}

fn to_json(v: &Value) -> Result<Json, minijinja::Error> {
    serde_json::to_value(v).map_err(|e| invalid(format!("cannot convert value: {e}")))
}

fn from_json(v: &Json) -> Value {
    Value::from(Serde(v))
}

fn invalid(msg: impl Into<String>) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// An error when `v` is undefined: the engine's own, which names the expression.
fn ensure_defined(v: &Value) -> Result<(), minijinja::Error> {
    if v.is_undefined() {
        v.get_attr("")?;
    }
    Ok(())
}

static UNDEFINED_EXPR: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"`([^`]*)` is undefined").expect("static regex"));

static SIMPLE_NAME: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*$").expect("static regex"));

static LAST_SEGMENT: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r#"^(.*?)(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*['"]([^'"]*)['"]\s*\]|\[\s*(-?\d+)\s*\])$"#,
    )
    .expect("static regex")
});

/// Converts an engine error to ours, in Ansible's words where the cause is an undefined value.
fn convert(e: &minijinja::Error, src: &str) -> TemplateError {
    let syntax = e.kind() == ErrorKind::SyntaxError;
    let line = e.line().filter(|l| *l > 0);
    let detail = e.detail().unwrap_or_default();
    if e.kind() == ErrorKind::UndefinedError || (!syntax && UNDEFINED_EXPR.is_match(detail)) {
        if let Some(expr) = UNDEFINED_EXPR.captures(detail).and_then(|c| c.get(1)) {
            let expr = unrewrite(expr.as_str().trim());
            if SIMPLE_NAME.is_match(&expr) {
                return TemplateError {
                    message: format!("'{expr}' is undefined"),
                    undefined: Some(expr),
                    syntax: false,
                    line,
                };
            }
            if let Some(c) = LAST_SEGMENT.captures(&expr) {
                let base = c.get(1).map_or("", |m| m.as_str());
                let attr = c
                    .get(2)
                    .or_else(|| c.get(3))
                    .or_else(|| c.get(4))
                    .map_or("", |m| m.as_str());
                return TemplateError {
                    message: format!("'{base}' has no attribute '{attr}'"),
                    undefined: Some(attr.to_owned()),
                    syntax: false,
                    line,
                };
            }
            return TemplateError {
                message: format!("'{expr}' is undefined"),
                undefined: None,
                syntax: false,
                line,
            };
        }
        return TemplateError {
            message: "undefined value".to_owned(),
            undefined: None,
            syntax: false,
            line,
        };
    }
    let mut message = match e.detail() {
        Some(d) if syntax => format!("template syntax error: {d}"),
        Some(d) => d.to_owned(),
        None => e.kind().to_string(),
    };
    if let (true, Some(text)) = (syntax, line.and_then(|l| src.lines().nth(l - 1))) {
        let _ = write!(message, " (line {}: {})", line.unwrap_or(0), text.trim());
    }
    TemplateError {
        message: message.replace(CHAIN_FN, "lookup"),
        undefined: None,
        syntax,
        line,
    }
}

/// Undoes [`rewrite_chains`] in an expression quoted by an error message.
fn unrewrite(expr: &str) -> String {
    if let Some(rest) = expr.strip_prefix(CHAIN_FN) {
        return rest.trim_start_matches('(').to_owned();
    }
    expr.to_owned()
}

// ---------------------------------------------------------------------------------------------
// Undefined chains: `foo.bar is defined`, `foo.bar | default(x)`.

const CHAIN_PATTERN: &str = concat!(
    r#"(?P<lead>^|[^A-Za-z0-9_.\])'"])"#,
    r"(?P<root>[A-Za-z_][A-Za-z0-9_]*)",
    r#"(?P<rest>(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\s*(?:'[^'\]]*'|"[^"\]]*"|-?\d+)\s*\])+)"#,
    r"(?P<tail>\s*(?:is\s+(?:not\s+)?(?:defined|undefined)\b|\|\s*(?:default|d)\b))",
);

static SEGMENT: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r#"\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*('[^'\]]*'|"[^"\]]*"|-?\d+)\s*\]"#)
        .expect("static regex")
});

static MARKUP: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"(?s)\{\{.*?\}\}|\{%.*?%\}").expect("static regex"));

static CODE_OR_LITERAL: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(&format!(
        r#"'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|{CHAIN_PATTERN}"#
    ))
    .expect("static regex")
});

/// Rewrites `foo.bar['x'] is defined` (and `| default`) inside the markup of a template to
/// `__kamo_chain(foo, 'bar', 'x') is defined`, so that a lookup on an undefined `foo` stays
/// undefined as in Ansible instead of failing. String literals are left alone.
fn rewrite_chains(src: &str) -> String {
    if !src.contains("defined") && !src.contains('|') {
        return src.to_owned();
    }
    MARKUP
        .replace_all(src, |m: &regex::Captures<'_>| rewrite_expr(&m[0]))
        .into_owned()
}

/// [`rewrite_chains`] for a bare expression.
fn rewrite_expr(src: &str) -> String {
    if !src.contains("defined") && !src.contains('|') {
        return src.to_owned();
    }
    CODE_OR_LITERAL
        .replace_all(src, |c: &regex::Captures<'_>| {
            let Some(root) = c.name("root") else {
                return c[0].to_owned();
            };
            let mut args = String::new();
            for seg in SEGMENT.captures_iter(&c["rest"]) {
                args.push_str(", ");
                if let Some(name) = seg.get(1) {
                    let _ = write!(args, "'{}'", name.as_str());
                } else if let Some(key) = seg.get(2) {
                    args.push_str(key.as_str());
                }
            }
            format!(
                "{}{CHAIN_FN}({}{args}){}",
                &c["lead"],
                root.as_str(),
                &c["tail"]
            )
        })
        .into_owned()
}

/// `__kamo_chain(base, k1, k2, ...)`: successive lookups that stay undefined once a step is
/// undefined (Ansible's chainable undefined), for the rewritten chains only.
#[allow(clippy::needless_pass_by_value)]
fn chain_lookup(base: &Value, keys: Rest<Value>) -> Result<Value, minijinja::Error> {
    let mut cur = base.clone();
    for key in keys.iter() {
        if cur.is_undefined() || cur.is_none() {
            return Ok(Value::UNDEFINED);
        }
        cur = match key.as_str() {
            Some(name) => {
                let v = cur.get_attr(name)?;
                if v.is_undefined() {
                    cur.get_item(key)?
                } else {
                    v
                }
            }
            None => cur.get_item(key)?,
        };
    }
    Ok(cur)
}

// ---------------------------------------------------------------------------------------------
// Python-style printing.

/// Python's `str()` of a value.
fn py_str(v: &Value) -> String {
    match v.as_str() {
        Some(s) => s.to_owned(),
        None => to_json(v).map_or_else(|_| v.to_string(), |j| py_str_json(&j)),
    }
}

fn py_str_json(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `repr()` of a JSON value.
fn py_repr(v: &Json) -> String {
    match v {
        Json::Null => "None".to_owned(),
        Json::Bool(true) => "True".to_owned(),
        Json::Bool(false) => "False".to_owned(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => {
            let quote = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            let mut out = String::with_capacity(s.len() + 2);
            out.push(quote);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c == quote => {
                        out.push('\\');
                        out.push(c);
                    }
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                        let _ = write!(out, "\\x{:02x}", c as u32);
                    }
                    c => out.push(c),
                }
            }
            out.push(quote);
            out
        }
        Json::Array(a) => {
            let items: Vec<String> = a.iter().map(py_repr).collect();
            format!("[{}]", items.join(", "))
        }
        Json::Object(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", py_repr(&Json::String(k.clone())), py_repr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// Python truthiness of a JSON value.
fn json_truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(m) => !m.is_empty(),
    }
}

/// Python-compatible regex pattern for the `regex` crate, with Ansible's flags.
fn compile_regex(
    pattern: &str,
    ignorecase: bool,
    multiline: bool,
) -> Result<regex::Regex, minijinja::Error> {
    regex::RegexBuilder::new(pattern)
        .case_insensitive(ignorecase)
        .multi_line(multiline)
        .size_limit(1 << 22)
        .build()
        .map_err(|e| invalid(format!("invalid regular expression {pattern:?}: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Filters.

// MiniJinja passes filter and test arguments by value (`Kwargs` must be owned).
#[allow(clippy::needless_pass_by_value)]
mod filters {
    use super::{
        Json, Kwargs, Rest, Value, ValueKind, compile_regex, ensure_defined, from_json, invalid,
        py_str, to_json,
    };
    use base64::Engine as _;
    use minijinja::Environment;
    use std::fmt::Write as _;

    type R = Result<Value, minijinja::Error>;

    pub(super) fn register(env: &mut Environment<'static>) {
        env.add_filter("bool", to_bool);
        env.add_filter("string", string);
        env.add_filter("int", int);
        env.add_filter("regex_replace", regex_replace);
        env.add_filter("regex_search", regex_search);
        env.add_filter("regex_findall", regex_findall);
        env.add_filter("regex_escape", |s: String| regex::escape(&s));
        env.add_filter("union", union);
        env.add_filter("intersect", intersect);
        env.add_filter("difference", difference);
        env.add_filter("symmetric_difference", symmetric_difference);
        env.add_filter("unique", unique);
        env.add_filter("dict2items", dict2items);
        env.add_filter("items2dict", items2dict);
        env.add_filter("combine", combine);
        env.add_filter("to_json", to_json_filter);
        env.add_filter("to_nice_json", to_nice_json);
        env.add_filter("from_json", from_json_filter);
        env.add_filter("to_yaml", to_yaml);
        env.add_filter("to_nice_yaml", to_yaml);
        env.add_filter("from_yaml", from_yaml);
        env.add_filter("b64encode", |s: String| {
            base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
        });
        env.add_filter("b64decode", b64decode);
        env.add_filter("basename", basename);
        env.add_filter("dirname", dirname);
        env.add_filter("quote", quote);
        env.add_filter("hash", hash);
        env.add_filter("checksum", |s: String| hex_digest("sha1", &s));
        env.add_filter("sha1", |s: String| hex_digest("sha1", &s));
        env.add_filter("md5", |s: String| hex_digest("md5", &s));
        env.add_filter("ternary", ternary);
        env.add_filter("mandatory", mandatory);
        env.add_filter("flatten", flatten);
        env.add_filter("product", product);
        env.add_filter("extract", extract);
        env.add_filter("type_debug", type_debug);
        env.add_filter("splitext", splitext);
    }

    fn json_of(v: &Value) -> Result<Json, minijinja::Error> {
        ensure_defined(v)?;
        to_json(v)
    }

    fn list_of(v: &Value) -> Result<Vec<Json>, minijinja::Error> {
        ensure_defined(v)?;
        match v.kind() {
            ValueKind::Seq | ValueKind::Iterable => v.try_iter()?.map(|i| json_of(&i)).collect(),
            ValueKind::Map => Ok(v
                .try_iter()?
                .map(|k| to_json(&k))
                .collect::<Result<_, _>>()?),
            ValueKind::String => Ok(v
                .as_str()
                .unwrap_or_default()
                .chars()
                .map(|c| Json::String(c.to_string()))
                .collect()),
            k => Err(invalid(format!("expected a list, got {k}"))),
        }
    }

    /// Ansible's `bool`: booleans as is, `yes`/`on`/`1`/`true` (any case) and the number 1 are
    /// true, everything else false; `none` stays none.
    fn to_bool(v: &Value) -> R {
        ensure_defined(v)?;
        if v.is_none() {
            return Ok(Value::from(()));
        }
        if v.kind() == ValueKind::Bool {
            return Ok(v.clone());
        }
        let s = py_str(v).trim().to_lowercase();
        Ok(Value::from(matches!(
            s.as_str(),
            "yes" | "on" | "1" | "true" | "1.0"
        )))
    }

    /// Jinja's `int`: strings parse in `base` (with its `0x`/`0o`/`0b` prefix), else as a
    /// float truncated; whatever fails gives `default` (0).
    fn int(v: &Value, default: Option<Value>, base: Option<u32>, kwargs: Kwargs) -> R {
        ensure_defined(v)?;
        let default = match default {
            Some(d) => d,
            None => kwargs
                .get::<Option<Value>>("default")?
                .unwrap_or(Value::from(0)),
        };
        let base = match base {
            Some(b) => b,
            None => kwargs.get::<Option<u32>>("base")?.unwrap_or(10),
        };
        kwargs.assert_all_used()?;
        if !(2..=36).contains(&base) {
            return Err(invalid(format!("int: invalid base {base}")));
        }
        let parsed = match v.kind() {
            ValueKind::Bool => Some(i128::from(v.is_true())),
            ValueKind::Number => match to_json(v)? {
                Json::Number(n) => n
                    .as_i64()
                    .map(i128::from)
                    .or_else(|| n.as_u64().map(i128::from))
                    .or_else(|| n.as_f64().and_then(float_to_int)),
                _ => None,
            },
            ValueKind::String => {
                let s = v.as_str().unwrap_or_default().trim().replace('_', "");
                let (neg, digits) = match s.strip_prefix('-') {
                    Some(rest) => (true, rest),
                    None => (false, s.strip_prefix('+').unwrap_or(&s)),
                };
                let prefix = match base {
                    16 => ["0x", "0X"],
                    8 => ["0o", "0O"],
                    2 => ["0b", "0B"],
                    _ => ["", ""],
                };
                let digits = prefix
                    .iter()
                    .filter(|p| !p.is_empty())
                    .find_map(|p| digits.strip_prefix(p))
                    .unwrap_or(digits);
                i128::from_str_radix(digits, base)
                    .ok()
                    .map(|n| if neg { -n } else { n })
                    .or_else(|| {
                        (base == 10)
                            .then(|| s.parse::<f64>().ok().and_then(float_to_int))
                            .flatten()
                    })
            }
            _ => None,
        };
        Ok(parsed.map_or(default, Value::from))
    }

    #[allow(clippy::cast_possible_truncation)]
    fn float_to_int(f: f64) -> Option<i128> {
        // Truncation toward zero is the intent; out-of-range floats have no int.
        (f.is_finite() && f.abs() < 1e30).then(|| f.trunc() as i128)
    }

    fn string(v: &Value) -> R {
        ensure_defined(v)?;
        Ok(Value::from(py_str(v)))
    }

    fn flags(kwargs: &Kwargs) -> Result<(bool, bool), minijinja::Error> {
        let ic = kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
        let ml = kwargs.get::<Option<bool>>("multiline")?.unwrap_or(false);
        Ok((ic, ml))
    }

    /// Python `re.sub` replacement syntax (`\1`, `\g<name>`) to the regex crate's (`${1}`).
    pub(super) fn py_replacement(repl: &str) -> String {
        let mut out = String::with_capacity(repl.len());
        let mut chars = repl.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '$' => out.push_str("$$"),
                '\\' => match chars.peek().copied() {
                    Some(d) if d.is_ascii_digit() => {
                        let mut num = String::new();
                        while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                            if num.len() == 2 {
                                break;
                            }
                            num.push(d);
                            chars.next();
                        }
                        out.push_str("${");
                        out.push_str(&num);
                        out.push('}');
                    }
                    Some('g') => {
                        chars.next();
                        if chars.peek() == Some(&'<') {
                            chars.next();
                            let name: String = chars.by_ref().take_while(|c| *c != '>').collect();
                            out.push_str("${");
                            out.push_str(&name);
                            out.push('}');
                        } else {
                            out.push_str("\\g");
                        }
                    }
                    Some('n') => {
                        chars.next();
                        out.push('\n');
                    }
                    Some('t') => {
                        chars.next();
                        out.push('\t');
                    }
                    Some('r') => {
                        chars.next();
                        out.push('\r');
                    }
                    Some('\\') => {
                        chars.next();
                        out.push('\\');
                    }
                    _ => out.push('\\'),
                },
                c => out.push(c),
            }
        }
        out
    }

    fn regex_replace(
        value: String,
        pattern: Option<String>,
        replacement: Option<String>,
        kwargs: Kwargs,
    ) -> R {
        let pattern = match pattern {
            Some(p) => p,
            None => kwargs.get::<Option<String>>("pattern")?.unwrap_or_default(),
        };
        let replacement = match replacement {
            Some(r) => r,
            None => kwargs
                .get::<Option<String>>("replacement")?
                .unwrap_or_default(),
        };
        let (ic, ml) = flags(&kwargs)?;
        let count = kwargs.get::<Option<usize>>("count")?.unwrap_or(0);
        kwargs.assert_all_used()?;
        let re = compile_regex(&pattern, ic, ml)?;
        let repl = py_replacement(&replacement);
        Ok(Value::from(
            re.replacen(&value, count, repl.as_str()).into_owned(),
        ))
    }

    /// A group reference of `regex_search`: `'\\1'` or `'\\g<name>'`.
    fn group_ref(arg: &str) -> Option<&str> {
        if let Some(n) = arg.strip_prefix('\\') {
            if let Some(name) = n.strip_prefix("g<").and_then(|n| n.strip_suffix('>')) {
                return Some(name);
            }
            if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() {
                return Some(n);
            }
        }
        None
    }

    fn regex_search(value: String, pattern: String, groups: Rest<String>, kwargs: Kwargs) -> R {
        let (ic, ml) = flags(&kwargs)?;
        kwargs.assert_all_used()?;
        let re = compile_regex(&pattern, ic, ml)?;
        let Some(caps) = re.captures(&value) else {
            return Ok(Value::from(()));
        };
        if groups.is_empty() {
            return Ok(Value::from(caps.get(0).map_or("", |m| m.as_str())));
        }
        let mut out = Vec::new();
        for g in groups.iter() {
            let name = group_ref(g)
                .ok_or_else(|| invalid(format!("unknown argument to regex_search: {g:?}")))?;
            let m = match name.parse::<usize>() {
                Ok(i) => caps.get(i),
                Err(_) => caps.name(name),
            };
            out.push(m.map_or(Value::from(()), |m| Value::from(m.as_str())));
        }
        Ok(Value::from(out))
    }

    fn regex_findall(value: String, pattern: String, kwargs: Kwargs) -> R {
        let (ic, ml) = flags(&kwargs)?;
        kwargs.assert_all_used()?;
        let re = compile_regex(&pattern, ic, ml)?;
        let groups = re.captures_len() - 1;
        let mut out = Vec::new();
        for caps in re.captures_iter(&value) {
            let text = |i: usize| caps.get(i).map_or("", |m| m.as_str()).to_owned();
            out.push(match groups {
                0 => Value::from(text(0)),
                1 => Value::from(text(1)),
                n => Value::from((1..=n).map(text).collect::<Vec<_>>()),
            });
        }
        Ok(Value::from(out))
    }

    fn dedup(items: impl IntoIterator<Item = Json>) -> Vec<Json> {
        let mut out: Vec<Json> = Vec::new();
        for i in items {
            if !out.contains(&i) {
                out.push(i);
            }
        }
        out
    }

    fn union(a: &Value, b: &Value) -> R {
        let mut items = list_of(a)?;
        items.extend(list_of(b)?);
        Ok(from_json(&Json::Array(dedup(items))))
    }

    fn intersect(a: &Value, b: &Value) -> R {
        let b = list_of(b)?;
        let items = list_of(a)?.into_iter().filter(|i| b.contains(i));
        Ok(from_json(&Json::Array(dedup(items))))
    }

    fn difference(a: &Value, b: &Value) -> R {
        let b = list_of(b)?;
        let items = list_of(a)?.into_iter().filter(|i| !b.contains(i));
        Ok(from_json(&Json::Array(dedup(items))))
    }

    fn symmetric_difference(a: &Value, b: &Value) -> R {
        let (a, b) = (list_of(a)?, list_of(b)?);
        let mut items: Vec<Json> = a.iter().filter(|i| !b.contains(i)).cloned().collect();
        items.extend(b.iter().filter(|i| !a.contains(i)).cloned());
        Ok(from_json(&Json::Array(dedup(items))))
    }

    fn unique(a: &Value, kwargs: Kwargs) -> R {
        let attribute = kwargs.get::<Option<String>>("attribute")?;
        let case_sensitive = kwargs
            .get::<Option<bool>>("case_sensitive")?
            .unwrap_or(false);
        kwargs.assert_all_used()?;
        let mut seen: Vec<Json> = Vec::new();
        let mut out = Vec::new();
        for item in list_of(a)? {
            let mut key = match &attribute {
                Some(attr) => item.get(attr).cloned().unwrap_or(Json::Null),
                None => item.clone(),
            };
            if let (false, Json::String(s)) = (case_sensitive, &key) {
                key = Json::String(s.to_lowercase());
            }
            if !seen.contains(&key) {
                seen.push(key);
                out.push(item);
            }
        }
        Ok(from_json(&Json::Array(out)))
    }

    fn names(kwargs: &Kwargs) -> Result<(String, String), minijinja::Error> {
        let k = kwargs
            .get::<Option<String>>("key_name")?
            .unwrap_or_else(|| "key".into());
        let v = kwargs
            .get::<Option<String>>("value_name")?
            .unwrap_or_else(|| "value".into());
        kwargs.assert_all_used()?;
        Ok((k, v))
    }

    fn dict2items(v: &Value, kwargs: Kwargs) -> R {
        let (kn, vn) = names(&kwargs)?;
        let Json::Object(map) = json_of(v)? else {
            return Err(invalid(format!(
                "dict2items requires a dictionary, got {}",
                v.kind()
            )));
        };
        let items = map
            .into_iter()
            .map(|(k, v)| {
                let mut m = serde_json::Map::new();
                m.insert(kn.clone(), Json::String(k));
                m.insert(vn.clone(), v);
                Json::Object(m)
            })
            .collect();
        Ok(from_json(&Json::Array(items)))
    }

    fn items2dict(v: &Value, kwargs: Kwargs) -> R {
        let (kn, vn) = names(&kwargs)?;
        let mut out = serde_json::Map::new();
        for item in list_of(v)? {
            let (Some(k), Some(val)) = (item.get(&kn), item.get(&vn)) else {
                return Err(invalid(format!(
                    "items2dict requires each element to have '{kn}' and '{vn}' keys"
                )));
            };
            let key = match k {
                Json::String(s) => s.clone(),
                other => super::py_str_json(other),
            };
            out.insert(key, val.clone());
        }
        Ok(from_json(&Json::Object(out)))
    }

    fn merge(a: &mut Json, b: Json, recursive: bool, list_merge: &str) {
        match (a, b) {
            (Json::Object(a), Json::Object(b)) => {
                for (k, v) in b {
                    match a.get_mut(&k) {
                        Some(existing)
                            if recursive && (existing.is_object() || existing.is_array()) =>
                        {
                            if existing.is_object() && v.is_object() {
                                merge(existing, v, recursive, list_merge);
                            } else if existing.is_array() && v.is_array() {
                                merge_lists(existing, v, list_merge);
                            } else {
                                *existing = v;
                            }
                        }
                        Some(existing) if existing.is_array() && v.is_array() => {
                            merge_lists(existing, v, list_merge);
                        }
                        _ => {
                            a.insert(k, v);
                        }
                    }
                }
            }
            (a, b) => *a = b,
        }
    }

    fn merge_lists(a: &mut Json, b: Json, list_merge: &str) {
        let (Json::Array(x), Json::Array(y)) = (a, b) else {
            return;
        };
        match list_merge {
            "keep" => {}
            "append" => x.extend(y),
            "prepend" => {
                let old = std::mem::replace(x, y);
                x.extend(old);
            }
            "append_rp" => {
                x.retain(|i| !y.contains(i));
                x.extend(y);
            }
            "prepend_rp" => {
                let old: Vec<Json> = x.drain(..).filter(|i| !y.contains(i)).collect();
                *x = y;
                x.extend(old);
            }
            _ => *x = y,
        }
    }

    fn combine(first: &Value, others: Rest<Value>, kwargs: Kwargs) -> R {
        let recursive = kwargs.get::<Option<bool>>("recursive")?.unwrap_or(false);
        let list_merge = kwargs
            .get::<Option<String>>("list_merge")?
            .unwrap_or_else(|| "replace".into());
        kwargs.assert_all_used()?;
        if ![
            "replace",
            "keep",
            "append",
            "prepend",
            "append_rp",
            "prepend_rp",
        ]
        .contains(&list_merge.as_str())
        {
            return Err(invalid(format!(
                "combine: unknown list_merge {list_merge:?}"
            )));
        }
        let mut dicts = Vec::new();
        for v in std::iter::once(first).chain(others.iter()) {
            match json_of(v)? {
                Json::Array(items) => dicts.extend(items),
                other => dicts.push(other),
            }
        }
        let mut out = Json::Object(serde_json::Map::new());
        for d in dicts {
            if !d.is_object() {
                return Err(invalid("combine: every argument must be a dictionary"));
            }
            merge(&mut out, d, recursive, &list_merge);
        }
        Ok(from_json(&out))
    }

    /// JSON as Python's `json.dumps` writes it: `", "` and `": "` separators, or indented.
    pub(super) fn py_json(v: &Json, indent: Option<usize>, sort: bool, ascii: bool) -> String {
        let mut out = String::new();
        write_json(&mut out, v, indent, sort, ascii, 0);
        out
    }

    fn write_json_str(out: &mut String, s: &str, ascii: bool) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{08}' => out.push_str("\\b"),
                '\u{0c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || (ascii && !c.is_ascii()) => {
                    let mut buf = [0u16; 2];
                    for unit in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }

    fn write_json(
        out: &mut String,
        v: &Json,
        indent: Option<usize>,
        sort: bool,
        ascii: bool,
        level: usize,
    ) {
        let newline = |out: &mut String, level: usize| {
            if let Some(n) = indent {
                out.push('\n');
                out.push_str(&" ".repeat(n * level));
            }
        };
        let sep = if indent.is_some() { "," } else { ", " };
        match v {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(&n.to_string()),
            Json::String(s) => write_json_str(out, s, ascii),
            Json::Array(a) if a.is_empty() => out.push_str("[]"),
            Json::Array(a) => {
                out.push('[');
                for (i, item) in a.iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    newline(out, level + 1);
                    write_json(out, item, indent, sort, ascii, level + 1);
                }
                newline(out, level);
                out.push(']');
            }
            Json::Object(m) if m.is_empty() => out.push_str("{}"),
            Json::Object(m) => {
                out.push('{');
                let mut entries: Vec<(&String, &Json)> = m.iter().collect();
                if sort {
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                for (i, (k, item)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    newline(out, level + 1);
                    write_json_str(out, k, ascii);
                    out.push_str(": ");
                    write_json(out, item, indent, sort, ascii, level + 1);
                }
                newline(out, level);
                out.push('}');
            }
        }
    }

    fn to_json_filter(v: &Value, kwargs: Kwargs) -> R {
        let indent = kwargs.get::<Option<usize>>("indent")?;
        let sort = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
        let ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(true);
        kwargs.assert_all_used()?;
        Ok(Value::from(py_json(&json_of(v)?, indent, sort, ascii)))
    }

    fn to_nice_json(v: &Value, kwargs: Kwargs) -> R {
        let indent = kwargs.get::<Option<usize>>("indent")?.unwrap_or(4);
        let sort = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(true);
        kwargs.assert_all_used()?;
        Ok(Value::from(py_json(
            &json_of(v)?,
            Some(indent),
            sort,
            false,
        )))
    }

    fn from_json_filter(s: String) -> R {
        let v: Json = serde_json::from_str(&s).map_err(|e| invalid(format!("from_json: {e}")))?;
        Ok(from_json(&v))
    }

    fn sort_keys(v: &mut Json) {
        match v {
            Json::Object(m) => {
                m.sort_keys();
                m.values_mut().for_each(sort_keys);
            }
            Json::Array(a) => a.iter_mut().for_each(sort_keys),
            _ => {}
        }
    }

    fn to_yaml(v: &Value, kwargs: Kwargs) -> R {
        // PyYAML's options (indent, width, default_flow_style) are accepted and ignored.
        for k in [
            "indent",
            "width",
            "default_flow_style",
            "allow_unicode",
            "sort_keys",
        ] {
            let _ = kwargs.get::<Option<Value>>(k)?;
        }
        kwargs.assert_all_used()?;
        let mut j = json_of(v)?;
        sort_keys(&mut j);
        serde_yaml::to_string(&j)
            .map(Value::from)
            .map_err(|e| invalid(format!("to_yaml: {e}")))
    }

    fn from_yaml(s: String) -> R {
        let v: Json = serde_yaml::from_str(&s).map_err(|e| invalid(format!("from_yaml: {e}")))?;
        Ok(from_json(&v))
    }

    fn b64decode(s: String) -> R {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s.trim().as_bytes())
            .map_err(|e| invalid(format!("b64decode: {e}")))?;
        String::from_utf8(bytes)
            .map(Value::from)
            .map_err(|_| invalid("b64decode: the decoded data is not UTF-8 text"))
    }

    /// Python's `os.path.basename`.
    fn basename(p: String) -> String {
        p.rsplit('/').next().unwrap_or_default().to_owned()
    }

    /// Python's `os.path.dirname`.
    fn dirname(p: String) -> String {
        match p.rfind('/') {
            None => String::new(),
            Some(i) => {
                let head = &p[..=i];
                let trimmed = head.trim_end_matches('/');
                if trimmed.is_empty() {
                    head.to_owned()
                } else {
                    trimmed.to_owned()
                }
            }
        }
    }

    fn splitext(p: String) -> Value {
        let base_start = p.rfind('/').map_or(0, |i| i + 1);
        let base = &p[base_start..];
        let dots = base.len() - base.trim_start_matches('.').len();
        match base[dots..].rfind('.') {
            Some(i) => {
                let at = base_start + dots + i;
                Value::from(vec![p[..at].to_owned(), p[at..].to_owned()])
            }
            None => Value::from(vec![p.clone(), String::new()]),
        }
    }

    /// Python's `shlex.quote`.
    pub(super) fn quote(v: &Value) -> R {
        ensure_defined(v)?;
        let s = if v.is_none() {
            String::new()
        } else {
            py_str(v)
        };
        if s.is_empty() {
            return Ok(Value::from("''"));
        }
        let safe = s
            .chars()
            .all(|c| c.is_alphanumeric() || "_@%+=:,./-".contains(c));
        if safe {
            return Ok(Value::from(s));
        }
        Ok(Value::from(format!("'{}'", s.replace('\'', "'\"'\"'"))))
    }

    fn hex_digest(kind: &str, s: &str) -> Result<String, minijinja::Error> {
        use sha1::Digest as _;
        fn hex(bytes: &[u8]) -> String {
            bytes.iter().fold(String::new(), |mut out, b| {
                let _ = write!(out, "{b:02x}");
                out
            })
        }
        Ok(match kind {
            "sha1" => hex(&sha1::Sha1::digest(s.as_bytes())),
            "sha224" => hex(&<sha2::Sha224 as sha2::Digest>::digest(s.as_bytes())),
            "sha256" => hex(&<sha2::Sha256 as sha2::Digest>::digest(s.as_bytes())),
            "sha384" => hex(&<sha2::Sha384 as sha2::Digest>::digest(s.as_bytes())),
            "sha512" => hex(&<sha2::Sha512 as sha2::Digest>::digest(s.as_bytes())),
            "md5" => format!("{:x}", md5::compute(s.as_bytes())),
            other => return Err(invalid(format!("hash: unsupported hash type {other:?}"))),
        })
    }

    fn hash(s: String, kind: Option<String>) -> R {
        hex_digest(kind.as_deref().unwrap_or("sha1"), &s).map(Value::from)
    }

    fn ternary(v: &Value, yes: Value, no: Value, none: Option<Value>) -> R {
        ensure_defined(v)?;
        if let (true, Some(n)) = (v.is_none(), none) {
            return Ok(n);
        }
        Ok(if v.is_true() { yes } else { no })
    }

    fn mandatory(v: &Value, msg: Option<String>) -> R {
        if v.is_undefined() {
            return Err(invalid(msg.unwrap_or_else(|| {
                "Mandatory variable has not been overridden".into()
            })));
        }
        Ok(v.clone())
    }

    fn flatten_into(
        out: &mut Vec<Json>,
        items: Vec<Json>,
        levels: Option<usize>,
        skip_nulls: bool,
    ) {
        for i in items {
            match i {
                Json::Null if skip_nulls => {}
                Json::String(s) if skip_nulls && (s == "None" || s == "null") => {}
                Json::Array(inner) if levels != Some(0) => {
                    flatten_into(out, inner, levels.map(|l| l - 1), skip_nulls);
                }
                other => out.push(other),
            }
        }
    }

    fn flatten(v: &Value, levels: Option<usize>, kwargs: Kwargs) -> R {
        let levels = match levels {
            Some(l) => Some(l),
            None => kwargs.get::<Option<usize>>("levels")?,
        };
        let skip = kwargs.get::<Option<bool>>("skip_nulls")?.unwrap_or(true);
        kwargs.assert_all_used()?;
        let mut out = Vec::new();
        flatten_into(&mut out, list_of(v)?, levels, skip);
        Ok(from_json(&Json::Array(out)))
    }

    fn product(first: &Value, others: Rest<Value>) -> R {
        let mut acc: Vec<Vec<Json>> = vec![Vec::new()];
        for list in std::iter::once(first).chain(others.iter()) {
            let items = list_of(list)?;
            if acc.len().saturating_mul(items.len()) > 100_000 {
                return Err(invalid("product: result too large"));
            }
            acc = acc
                .into_iter()
                .flat_map(|prefix| {
                    items.iter().map(move |i| {
                        let mut p = prefix.clone();
                        p.push(i.clone());
                        p
                    })
                })
                .collect();
        }
        Ok(from_json(&Json::Array(
            acc.into_iter().map(Json::Array).collect(),
        )))
    }

    fn extract(key: &Value, container: &Value, morekeys: Option<Value>) -> R {
        ensure_defined(key)?;
        ensure_defined(container)?;
        let mut v = container.get_item(key)?;
        if let Some(more) = morekeys {
            let keys: Vec<Value> = if more.kind() == ValueKind::Seq {
                more.try_iter()?.collect()
            } else {
                vec![more]
            };
            for k in keys {
                ensure_defined(&v)?;
                v = v.get_item(&k)?;
            }
        }
        Ok(v)
    }

    /// Python's type names, as `type_debug` prints them.
    fn type_debug(v: &Value) -> &'static str {
        match v.kind() {
            ValueKind::Undefined => "AnsibleUndefined",
            ValueKind::None => "NoneType",
            ValueKind::Bool => "bool",
            ValueKind::Number => {
                if v.as_i64().is_some() || to_json(v).is_ok_and(|j| j.is_i64() || j.is_u64()) {
                    "int"
                } else {
                    "float"
                }
            }
            ValueKind::String => "str",
            ValueKind::Bytes => "bytes",
            ValueKind::Map => "dict",
            _ => "list",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests (`is ...`).

#[allow(clippy::needless_pass_by_value)]
mod checks {
    use super::{Json, Kwargs, Value, ValueKind, compile_regex, ensure_defined, invalid, to_json};
    use minijinja::Environment;

    type R = Result<bool, minijinja::Error>;

    pub(super) fn register(env: &mut Environment<'static>) {
        env.add_test("version", version);
        env.add_test("version_compare", version);
        env.add_test("failed", |v: &Value| flag(v, "failed"));
        env.add_test("failure", |v: &Value| flag(v, "failed"));
        env.add_test("succeeded", |v: &Value| flag(v, "failed").map(|f| !f));
        env.add_test("success", |v: &Value| flag(v, "failed").map(|f| !f));
        env.add_test("successful", |v: &Value| flag(v, "failed").map(|f| !f));
        env.add_test("changed", changed);
        env.add_test("change", changed);
        env.add_test("skipped", |v: &Value| flag(v, "skipped"));
        env.add_test("skip", |v: &Value| flag(v, "skipped"));
        env.add_test("match", |v: &Value, p: String, k: Kwargs| {
            regex_test(v, &p, &k, "match")
        });
        env.add_test("search", |v: &Value, p: String, k: Kwargs| {
            regex_test(v, &p, &k, "search")
        });
        env.add_test("regex", regex_generic);
        env.add_test("truthy", |v: &Value, k: Kwargs| truthy(v, &k));
        env.add_test("falsy", |v: &Value, k: Kwargs| truthy(v, &k).map(|t| !t));
        env.add_test("subset", |a: &Value, b: &Value| subset(a, b));
        env.add_test("superset", |a: &Value, b: &Value| subset(b, a));
        env.add_test("contains", contains);
        env.add_test("any", |v: &Value| {
            Ok::<_, minijinja::Error>(items(v)?.iter().any(Value::is_true))
        });
        env.add_test("all", |v: &Value| {
            Ok::<_, minijinja::Error>(items(v)?.iter().all(Value::is_true))
        });
    }

    fn items(v: &Value) -> Result<Vec<Value>, minijinja::Error> {
        ensure_defined(v)?;
        Ok(v.try_iter()?.collect())
    }

    /// `failed`/`skipped` of a registered result: the key's truth, false when absent.
    fn flag(v: &Value, key: &str) -> R {
        ensure_defined(v)?;
        if v.kind() != ValueKind::Map {
            return Err(invalid(format!("The '{key}' test expects a dictionary")));
        }
        let f = v.get_attr(key)?;
        Ok(!f.is_undefined() && super::filters_bool(&f))
    }

    /// `changed`, which also looks into a loop's `results` when the key is absent.
    fn changed(v: &Value) -> R {
        ensure_defined(v)?;
        if v.kind() != ValueKind::Map {
            return Err(invalid("The 'changed' test expects a dictionary"));
        }
        let c = v.get_attr("changed")?;
        if !c.is_undefined() {
            return Ok(super::filters_bool(&c));
        }
        let results = v.get_attr("results")?;
        if results.kind() == ValueKind::Seq {
            for r in results.try_iter()? {
                if r.kind() == ValueKind::Map {
                    let c = r.get_attr("changed")?;
                    if !c.is_undefined() && super::filters_bool(&c) {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    fn regex_test(v: &Value, pattern: &str, kwargs: &Kwargs, kind: &str) -> R {
        ensure_defined(v)?;
        let ic = kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
        let ml = kwargs.get::<Option<bool>>("multiline")?.unwrap_or(false);
        let kind = kwargs
            .get::<Option<String>>("match_type")?
            .unwrap_or_else(|| kind.into());
        kwargs.assert_all_used()?;
        let s = super::py_str(v);
        let re = compile_regex(pattern, ic, ml)?;
        Ok(match kind.as_str() {
            "match" => {
                re.find(&s).is_some_and(|m| m.start() == 0)
                    || compile_regex(&format!("^(?:{pattern})"), ic, false)?.is_match(&s)
            }
            "fullmatch" => compile_regex(&format!("^(?:{pattern})$"), ic, false)?.is_match(&s),
            "search" => re.is_match(&s),
            other => return Err(invalid(format!("invalid match_type {other:?}"))),
        })
    }

    fn regex_generic(v: &Value, pattern: String, kwargs: Kwargs) -> R {
        regex_test(v, &pattern, &kwargs, "search")
    }

    fn truthy(v: &Value, kwargs: &Kwargs) -> R {
        ensure_defined(v)?;
        let convert = kwargs.get::<Option<bool>>("convert_bool")?.unwrap_or(false);
        kwargs.assert_all_used()?;
        if let (true, Some(s)) = (convert, v.as_str()) {
            let l = s.to_lowercase();
            if ["yes", "on", "1", "true"].contains(&l.as_str()) {
                return Ok(true);
            }
            if ["no", "off", "0", "false"].contains(&l.as_str()) {
                return Ok(false);
            }
        }
        Ok(v.is_true())
    }

    fn json_items(v: &Value) -> Result<Vec<Json>, minijinja::Error> {
        ensure_defined(v)?;
        match to_json(v)? {
            Json::Array(a) => Ok(a),
            Json::Object(m) => Ok(m.keys().map(|k| Json::String(k.clone())).collect()),
            other => Err(invalid(format!(
                "expected a list, got {}",
                super::py_str_json(&other)
            ))),
        }
    }

    fn subset(a: &Value, b: &Value) -> R {
        let (a, b) = (json_items(a)?, json_items(b)?);
        Ok(a.iter().all(|i| b.contains(i)))
    }

    fn contains(seq: &Value, item: &Value) -> R {
        ensure_defined(item)?;
        let item = to_json(item)?;
        Ok(json_items(seq)?.contains(&item))
    }

    /// One part of a loose version: numbers compare as numbers, words as text.
    #[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
    enum Part {
        Num(u128),
        Word(String),
    }

    fn loose_parts(v: &str) -> Vec<Part> {
        let mut parts = Vec::new();
        let mut cur = String::new();
        let flush = |cur: &mut String, parts: &mut Vec<Part>| {
            if cur.is_empty() {
                return;
            }
            let p = match cur.parse::<u128>() {
                Ok(n) => Part::Num(n),
                Err(_) => Part::Word(cur.clone()),
            };
            parts.push(p);
            cur.clear();
        };
        for c in v.chars() {
            if c == '.' {
                flush(&mut cur, &mut parts);
            } else if cur
                .chars()
                .last()
                .is_some_and(|l| l.is_ascii_digit() != c.is_ascii_digit())
            {
                flush(&mut cur, &mut parts);
                cur.push(c);
            } else {
                cur.push(c);
            }
        }
        flush(&mut cur, &mut parts);
        parts
    }

    /// Python's `LooseVersion` comparison; comparing a number with a word is an error there
    /// too.
    pub(super) fn loose_cmp(a: &str, b: &str) -> Result<std::cmp::Ordering, minijinja::Error> {
        let (pa, pb) = (loose_parts(a), loose_parts(b));
        for (x, y) in pa.iter().zip(pb.iter()) {
            let ord = match (x, y) {
                (Part::Num(x), Part::Num(y)) => x.cmp(y),
                (Part::Word(x), Part::Word(y)) => x.cmp(y),
                _ => {
                    return Err(invalid(format!(
                        "Version comparison failed: cannot compare {a:?} with {b:?}"
                    )));
                }
            };
            if ord != std::cmp::Ordering::Equal {
                return Ok(ord);
            }
        }
        Ok(pa.len().cmp(&pb.len()))
    }

    fn version(v: &Value, other: &Value, op: Option<String>, kwargs: Kwargs) -> R {
        use std::cmp::Ordering::{Equal, Greater, Less};
        ensure_defined(v)?;
        ensure_defined(other)?;
        let op = match op {
            Some(op) => op,
            None => kwargs
                .get::<Option<String>>("operator")?
                .unwrap_or_else(|| "eq".into()),
        };
        let _ = kwargs.get::<Option<bool>>("strict")?;
        let vt = kwargs.get::<Option<String>>("version_type")?;
        kwargs.assert_all_used()?;
        if let Some(t) = vt.filter(|t| t != "loose") {
            return Err(invalid(format!(
                "version: version_type {t:?} is not supported"
            )));
        }
        let (a, b) = (super::py_str(v), super::py_str(other));
        if a.is_empty() {
            return Err(invalid("Input version value cannot be empty"));
        }
        if b.is_empty() {
            return Err(invalid(
                "Version parameter to compare against cannot be empty",
            ));
        }
        let ord = loose_cmp(&a, &b)?;
        Ok(match op.as_str() {
            "<" | "lt" => ord == Less,
            "<=" | "le" => ord != Greater,
            ">" | "gt" => ord == Greater,
            ">=" | "ge" => ord != Less,
            "==" | "=" | "eq" => ord == Equal,
            "!=" | "<>" | "ne" => ord != Equal,
            other => return Err(invalid(format!("Invalid operator type ({other})"))),
        })
    }
}

/// Ansible's `bool` of a value, for the registered-result tests.
fn filters_bool(v: &Value) -> bool {
    if v.kind() == ValueKind::Bool {
        return v.is_true();
    }
    if let Some(s) = v.as_str() {
        return matches!(
            s.trim().to_lowercase().as_str(),
            "yes" | "on" | "1" | "true"
        );
    }
    v.as_i64() == Some(1)
}

#[cfg(test)]
mod unit_tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Json {
        json!({
            "name": "web",
            "port": 8080,
            "flag": true,
            "empty": "",
            "items": [3, 1, 2, 1],
            "words": ["b", "a", "c"],
            "users": [
                {"name": "al", "admin": true, "uid": 10},
                {"name": "bo", "admin": false, "uid": 20}
            ],
            "cfg": {"a": 1, "nested": {"x": "y"}},
            "ok": {"rc": 0, "changed": true, "failed": false, "stdout": "hello x world"},
            "bad": {"rc": 2, "failed": true, "changed": false},
            "skip": {"skipped": true, "changed": false},
            "looped": {"results": [{"changed": false}, {"changed": true}]},
            "str_false": "False",
            "path": "/etc/nginx/nginx.conf"
        })
    }

    fn t() -> Templater {
        Templater::new()
    }

    /// Renders to JSON.
    fn r(text: &str) -> Json {
        t().render_str(text, &vars())
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// Renders to a string (the expression printed inside text).
    fn s(text: &str) -> String {
        match r(&format!("<{text}>")) {
            Json::String(s) => s[1..s.len() - 1].to_owned(),
            other => panic!("not a string: {other}"),
        }
    }

    fn err(text: &str) -> TemplateError {
        t().render_str(text, &vars())
            .expect_err(&format!("{text} should fail"))
    }

    fn cond(expr: &str) -> bool {
        t().eval_condition(expr, &vars())
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    #[test]
    fn plain_strings_are_untouched() {
        assert_eq!(r("no markup } here"), json!("no markup } here"));
        assert_eq!(r(""), json!(""));
    }

    #[test]
    fn native_types_for_a_single_expression() {
        assert_eq!(r("{{ port }}"), json!(8080));
        assert_eq!(r("{{ items }}"), json!([3, 1, 2, 1]));
        // Text around the expression makes the result text, newline included.
        assert_eq!(r("{{ port }}\n"), json!("8080\n"));
        assert_eq!(r(" {{ port }}"), json!(" 8080"));
        assert_eq!(r("{{ cfg }}"), json!({"a": 1, "nested": {"x": "y"}}));
        assert_eq!(r("{{ flag }}"), json!(true));
        assert_eq!(r("{{ none }}"), json!(null));
        assert_eq!(r("{{ port + 1 }}"), json!(8081));
        assert_eq!(r("{{ name }}:{{ port }}"), json!("web:8080"));
        assert_eq!(r("{{ 'a' }} and {{ 'b' }}"), json!("a and b"));
    }

    #[test]
    fn printing_is_pythonic() {
        assert_eq!(s("{{ flag }}"), "True");
        assert_eq!(s("{{ none }}"), "None");
        assert_eq!(s("{{ words }}"), "['b', 'a', 'c']");
        assert_eq!(s("{{ cfg }}"), "{'a': 1, 'nested': {'x': 'y'}}");
        assert_eq!(s("{{ True }}-{{ False }}-{{ None }}"), "True-False-None");
        assert_eq!(s("{{ false }}"), "False");
    }

    #[test]
    fn omit_is_removed_from_mappings() {
        let v = json!({"a": "{{ name }}", "b": "{{ nope | default(omit) }}", "{{ name }}_k": 1});
        let out = t().render_value(&v, &vars()).unwrap();
        assert_eq!(out, json!({"a": "web", "web_k": 1}));
        assert_eq!(r("{{ omit }}"), json!(OMIT));
        let nested = json!([{"x": "{{ omit }}"}, "{{ port }}"]);
        assert_eq!(
            t().render_value(&nested, &vars()).unwrap(),
            json!([{}, 8080])
        );
    }

    #[test]
    fn strict_undefined_names_the_variable() {
        let e = err("{{ foo }}");
        assert_eq!(e.message, "'foo' is undefined");
        assert_eq!(e.undefined.as_deref(), Some("foo"));
        assert!(!e.syntax);
        let e = err("x {{ foo }} y");
        assert_eq!(e.undefined.as_deref(), Some("foo"));
        let e = err("{{ foo.bar }}");
        assert_eq!(e.undefined.as_deref(), Some("foo"), "{e:?}");
        let e = err("{{ cfg.missing }}");
        assert_eq!(e.undefined.as_deref(), Some("missing"), "{e:?}");
        assert!(e.message.contains("'missing'"), "{e:?}");
        let e = err("{{ foo | upper }}");
        assert_eq!(e.undefined.as_deref(), Some("foo"), "{e:?}");
        let e = err("{% for x in foo %}{% endfor %}");
        assert_eq!(e.undefined.as_deref(), Some("foo"), "{e:?}");
        let e = err("{{ foo | to_json }}");
        assert_eq!(e.undefined.as_deref(), Some("foo"), "{e:?}");
        let e = err("line1\n{{ foo }}");
        assert_eq!(e.line, Some(2), "{e:?}");
    }

    #[test]
    fn default_and_defined_on_undefined() {
        assert_eq!(r("{{ foo | default('x') }}"), json!("x"));
        assert_eq!(r("{{ foo | d(3) }}"), json!(3));
        assert_eq!(r("{{ empty | default('x') }}"), json!(""));
        assert_eq!(r("{{ empty | default('x', true) }}"), json!("x"));
        assert_eq!(r("{{ foo.bar | default('x') }}"), json!("x"));
        assert_eq!(r("{{ foo['bar'].baz | default('x') }}"), json!("x"));
        assert_eq!(r("{{ cfg.nested.x | default('z') }}"), json!("y"));
        assert!(!cond("foo is defined"));
        assert!(cond("foo is undefined"));
        assert!(cond("foo is not defined"));
        assert!(!cond("foo.bar is defined"));
        assert!(cond("foo.bar.baz is undefined"));
        assert!(cond("cfg.nested is defined"));
        assert!(!cond("cfg.missing is defined"));
        assert!(cond("cfg['nested']['x'] is defined"));
        assert!(cond("name is defined and name == 'web'"));
        // A literal that looks like a chain is not rewritten.
        assert_eq!(r("{{ 'foo.bar is defined' }}"), json!("foo.bar is defined"));
    }

    #[test]
    fn conditions() {
        assert!(cond("ok is succeeded"));
        assert!(cond("ok is success"));
        assert!(cond("ok is changed"));
        assert!(cond("bad is failed"));
        assert!(cond("bad is failure"));
        assert!(cond("bad is not changed"));
        assert!(cond("skip is skipped"));
        assert!(cond("skip is skip"));
        assert!(cond("looped is changed"));
        assert!(cond("ok.rc == 0"));
        assert!(cond("'x' in ok.stdout"));
        assert!(cond("bad.rc != 0 and not flag == false"));
        assert!(cond("True"));
        assert!(!cond("false"));
        assert!(cond(""));
        // Jinja truthiness: a non-empty string is true.
        assert!(cond("str_false"));
        assert!(!cond("str_false | bool"));
        assert!(cond("{{ flag }}"));
        let e = t().eval_condition("foo", &vars()).unwrap_err();
        assert_eq!(e.undefined.as_deref(), Some("foo"), "{e:?}");
        let e = t().eval_condition("foo == 1", &vars()).unwrap_err();
        assert_eq!(e.undefined.as_deref(), Some("foo"), "{e:?}");
        assert!(t().eval_condition("name is failed", &vars()).is_err());
    }

    #[test]
    fn syntax_errors_have_lines() {
        let e = t().check_syntax("ok\n{{ a + }}").unwrap_err();
        assert!(e.syntax);
        assert_eq!(e.line, Some(2), "{e:?}");
        let e = t().check_syntax("{% if x %}\nno end").unwrap_err();
        assert!(e.syntax, "{e:?}");
        assert!(
            t().check_syntax("{{ a | default(1) }} {% if b %}{% endif %}")
                .is_ok()
        );
        assert!(t().check_syntax("no markup {{").is_err());
        assert!(t().check_condition_syntax("a ==").is_err());
        assert!(
            t().check_condition_syntax("a == 1 and b is defined")
                .is_ok()
        );
        let e = err("{{ ) }}");
        assert!(e.syntax);
    }

    #[test]
    fn shared_variables_sit_under_each_renders_own() {
        let shared = json!({"hostvars": {"n1": {"ip": "10.0.0.1"}, "n2": {"ip": "10.0.0.2"}},
                            "port": 1});
        let base = t();
        let task = base.with_shared(Some(&shared));
        let own = json!({"port": 8080, "h": "n2"});
        // Read through every entry point, the host's own value winning over the shared one.
        assert_eq!(
            task.render_str("{{ hostvars[h].ip }}:{{ port }}", &own)
                .unwrap(),
            json!("10.0.0.2:8080")
        );
        assert_eq!(
            task.render_file("f", "{% for n in hostvars %}{{ n }} {% endfor %}", &own)
                .unwrap(),
            "n1 n2 "
        );
        assert!(
            task.eval_condition("hostvars['n1'].ip == '10.0.0.1'", &own)
                .unwrap()
        );
        assert_eq!(
            task.render_value(&json!(["{{ hostvars | length }}"]), &own)
                .unwrap(),
            json!([2])
        );
        // The templater it came from is untouched: no hostvars there.
        let e = base.render_str("{{ hostvars }}", &own).unwrap_err();
        assert_eq!(e.undefined.as_deref(), Some("hostvars"));
    }

    #[test]
    fn render_file_trims_blocks_and_keeps_newline() {
        let text = "{% for u in users %}\n{{ u.name }}\n{% endfor %}\nport={{ port }}\n";
        let out = t().render_file("x.conf.j2", text, &vars()).unwrap();
        assert_eq!(out, "al\nbo\nport=8080\n");
        let out = t().render_file("a.html", "<{{ '<b>' }}>", &vars()).unwrap();
        assert_eq!(out, "<<b>>");
        let e = t()
            .render_file("f", "a\nb\n{{ nope }}\n", &vars())
            .unwrap_err();
        assert_eq!((e.line, e.undefined.as_deref()), (Some(3), Some("nope")));
    }

    #[test]
    fn referenced_vars() {
        let names =
            t().referenced_vars("{{ a.b }} {% for x in items %}{{ x }}{{ omit }}{% endfor %}");
        assert_eq!(
            names,
            ["a", "items"].iter().map(|s| (*s).to_owned()).collect()
        );
        let names = t().referenced_vars("result is failed and foo.bar is defined");
        assert_eq!(
            names,
            ["foo", "result"].iter().map(|s| (*s).to_owned()).collect()
        );
        assert!(t().referenced_vars("plain").contains("plain"));
        assert!(t().referenced_vars("{{ broken").is_empty());
    }

    #[test]
    fn lookup_is_refused() {
        let e = err("{{ lookup('env', 'HOME') }}");
        assert!(e.message.contains("lookup is not supported"), "{e:?}");
    }

    #[test]
    fn conversion_filters() {
        assert_eq!(r("{{ 'yes' | bool }}"), json!(true));
        assert_eq!(r("{{ 'On' | bool }}"), json!(true));
        assert_eq!(r("{{ '1' | bool }}"), json!(true));
        assert_eq!(r("{{ 'TRUE' | bool }}"), json!(true));
        assert_eq!(r("{{ 'no' | bool }}"), json!(false));
        assert_eq!(r("{{ 'False' | bool }}"), json!(false));
        assert_eq!(r("{{ 1 | bool }}"), json!(true));
        assert_eq!(r("{{ '42' | int }}"), json!(42));
        assert_eq!(r("{{ 'x' | int }}"), json!(0));
        assert_eq!(r("{{ 'x' | int(7) }}"), json!(7));
        assert_eq!(r("{{ 'ff' | int(base=16) }}"), json!(255));
        assert_eq!(r("{{ '3.7' | int }}"), json!(3));
        assert_eq!(r("{{ '1.5' | float }}"), json!(1.5));
        assert_eq!(r("{{ port | string }}"), json!("8080"));
        assert_eq!(r("{{ flag | string }}"), json!("True"));
        assert_eq!(r("{{ -3 | abs }}"), json!(3));
        assert_eq!(r("{{ 2.567 | round(1) }}"), json!(2.6));
        assert_eq!(r("{{ 'a,b' | split(',') }}"), json!(["a", "b"]));
        assert_eq!(r("{{ 'a b  c' | split }}"), json!(["a", "b", "c"]));
    }

    #[test]
    fn string_filters() {
        assert_eq!(s("{{ 'AbC' | lower }}{{ 'x' | upper }}"), "abcX");
        assert_eq!(s("{{ '  x ' | trim }}"), "x");
        assert_eq!(s("{{ 'aXa' | replace('a', 'b') }}"), "bXb");
        assert_eq!(
            s("{{ 'ab12' | regex_replace('(\\\\d)', '<\\\\1>') }}"),
            "ab<1><2>"
        );
        assert_eq!(
            s("{{ 'key=val' | regex_replace('^(?P<k>\\\\w+)=(.*)$', '\\\\2=\\\\g<k>') }}"),
            "val=key"
        );
        assert_eq!(s("{{ 'a$b' | regex_replace('b', '$') }}"), "a$$");
        assert_eq!(
            s("{{ 'ABC' | regex_replace('b', 'x', ignorecase=true) }}"),
            "AxC"
        );
        assert_eq!(r("{{ 'foo123' | regex_search('\\\\d+') }}"), json!("123"));
        assert_eq!(r("{{ 'foo' | regex_search('\\\\d+') }}"), json!(null));
        assert_eq!(
            r("{{ 'v=12' | regex_search('(\\\\w)=(?P<n>\\\\d+)', '\\\\1', '\\\\g<n>') }}"),
            json!(["v", "12"])
        );
        assert_eq!(
            r("{{ 'a1b2' | regex_findall('\\\\d') }}"),
            json!(["1", "2"])
        );
        assert_eq!(
            r("{{ 'a1b2' | regex_findall('(\\\\w)(\\\\d)') }}"),
            json!([["a", "1"], ["b", "2"]])
        );
        assert_eq!(
            s("{{ path | basename }}|{{ path | dirname }}"),
            "nginx.conf|/etc/nginx"
        );
        assert_eq!(
            s("{{ 'a' | basename }}|{{ 'a' | dirname }}|{{ '/x' | dirname }}"),
            "a||/"
        );
        assert_eq!(s("{{ \"it's a\" | quote }}"), "'it'\"'\"'s a'");
        assert_eq!(s("{{ 'safe/path-1.txt' | quote }}"), "safe/path-1.txt");
        assert_eq!(s("{{ '' | quote }}"), "''");
        assert_eq!(s("{{ 'hi' | b64encode }}"), "aGk=");
        assert_eq!(s("{{ 'aGk=' | b64decode }}"), "hi");
        assert_eq!(
            s("{{ 'abc' | hash }}"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            s("{{ 'abc' | checksum }}"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            s("{{ 'abc' | hash('sha256') }}"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            s("{{ 'abc' | hash('md5') }}"),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert!(t().render_str("{{ 'a' | hash('nope') }}", &vars()).is_err());
        assert_eq!(r("{{ 'a.tar.gz' | splitext }}"), json!(["a.tar", ".gz"]));
        assert_eq!(
            s("{{ name | type_debug }}{{ port | type_debug }}"),
            "strint"
        );
    }

    #[test]
    fn list_filters() {
        assert_eq!(r("{{ items | first }}"), json!(3));
        assert_eq!(r("{{ items | last }}"), json!(1));
        assert_eq!(r("{{ items | length }}"), json!(4));
        assert_eq!(r("{{ items | count }}"), json!(4));
        assert_eq!(r("{{ items | sort }}"), json!([1, 1, 2, 3]));
        assert_eq!(r("{{ items | unique }}"), json!([3, 1, 2]));
        assert_eq!(r("{{ [1, 2] | union([2, 3]) }}"), json!([1, 2, 3]));
        assert_eq!(r("{{ [1, 2, 2] | intersect([2, 3]) }}"), json!([2]));
        assert_eq!(r("{{ [1, 2] | difference([2, 3]) }}"), json!([1]));
        assert_eq!(
            r("{{ [1, 2] | symmetric_difference([2, 3]) }}"),
            json!([1, 3])
        );
        assert_eq!(
            r("{{ users | map(attribute='name') | list }}"),
            json!(["al", "bo"])
        );
        assert_eq!(
            r("{{ words | map('upper') | list }}"),
            json!(["B", "A", "C"])
        );
        assert_eq!(r("{{ items | select('odd') | list }}"), json!([3, 1, 1]));
        assert_eq!(r("{{ items | reject('odd') | list }}"), json!([2]));
        assert_eq!(
            r("{{ users | selectattr('admin') | map(attribute='name') | list }}"),
            json!(["al"])
        );
        assert_eq!(
            r("{{ users | rejectattr('uid', 'lt', 15) | map(attribute='name') | list }}"),
            json!(["bo"])
        );
        assert_eq!(r("{{ words | join(',') }}"), json!("b,a,c"));
        assert_eq!(r("{{ [[1, [2]], [3], none] | flatten }}"), json!([1, 2, 3]));
        assert_eq!(r("{{ [[1, [2]], [3]] | flatten(1) }}"), json!([1, [2], 3]));
        assert_eq!(
            r("{{ items | min }}/{{ items | max }}/{{ items | sum }}"),
            json!("1/3/7")
        );
        assert_eq!(r("{{ [[1], [2]] | sum(start=[]) }}"), json!([1, 2]));
        assert_eq!(r("{{ 'ab' | list }}"), json!(["a", "b"]));
        assert_eq!(
            r("{{ [1, 2] | zip(['a', 'b']) | list }}"),
            json!([[1, "a"], [2, "b"]])
        );
        assert_eq!(
            r("{{ [1, 2] | product(['a']) | list }}"),
            json!([[1, "a"], [2, "a"]])
        );
        assert_eq!(
            r("{{ ['x'] | map('extract', cfg.nested) | list }}"),
            json!(["y"])
        );
        assert_eq!(r("{{ range(3) | list }}"), json!([0, 1, 2]));
    }

    #[test]
    fn dict_filters() {
        assert_eq!(
            r("{{ {'a': 1} | dict2items }}"),
            json!([{"key": "a", "value": 1}])
        );
        assert_eq!(
            r("{{ {'a': 1} | dict2items(key_name='k', value_name='v') }}"),
            json!([{"k": "a", "v": 1}])
        );
        assert_eq!(
            r("{{ [{'key': 'a', 'value': 1}] | items2dict }}"),
            json!({"a": 1})
        );
        assert_eq!(
            r("{{ cfg | combine({'a': 2, 'nested': {'z': 1}}) }}"),
            json!({"a": 2, "nested": {"z": 1}})
        );
        assert_eq!(
            r("{{ cfg | combine({'nested': {'z': 1}}, recursive=true) }}"),
            json!({"a": 1, "nested": {"x": "y", "z": 1}})
        );
        assert_eq!(
            r("{{ {'l': [1]} | combine({'l': [2]}, list_merge='append') }}"),
            json!({"l": [1, 2]})
        );
        assert_eq!(r("{{ dict(a=1) }}"), json!({"a": 1}));
    }

    #[test]
    fn serialisation_filters() {
        assert_eq!(
            s("{{ cfg | to_json }}"),
            r#"{"a": 1, "nested": {"x": "y"}}"#
        );
        assert_eq!(s("{{ 'é' | to_json }}"), r#""\u00e9""#);
        assert_eq!(
            s("{{ {'b': 1, 'a': [1]} | to_nice_json }}"),
            "{\n    \"a\": [\n        1\n    ],\n    \"b\": 1\n}"
        );
        assert_eq!(r("{{ '{\"a\": [1]}' | from_json }}"), json!({"a": [1]}));
        assert_eq!(r("{{ 'a: [1, 2]' | from_yaml }}"), json!({"a": [1, 2]}));
        assert_eq!(s("{{ {'b': 1, 'a': 2} | to_yaml }}"), "a: 2\nb: 1\n");
        assert_eq!(r("{{ cfg | to_nice_yaml | from_yaml }}"), vars()["cfg"]);
        assert!(t().render_str("{{ '{' | from_json }}", &vars()).is_err());
    }

    #[test]
    fn other_filters() {
        assert_eq!(r("{{ flag | ternary('a', 'b') }}"), json!("a"));
        assert_eq!(r("{{ empty | ternary('a', 'b') }}"), json!("b"));
        assert_eq!(r("{{ none | ternary('a', 'b', 'n') }}"), json!("n"));
        assert_eq!(r("{{ port | mandatory }}"), json!(8080));
        assert!(t().render_str("{{ nope | mandatory }}", &vars()).is_err());
        let e = t()
            .render_str("{{ nope | mandatory('set nope') }}", &vars())
            .unwrap_err();
        assert_eq!(e.message, "set nope");
    }

    #[test]
    fn tests() {
        assert!(cond("'2.10' is version('2.9', '>')"));
        assert!(cond("'2.10' is version('2.9', 'gt')"));
        assert!(cond("'1.0' is version('1.0', '==')"));
        assert!(cond("'1.0' is version('1.0.0', 'lt')"));
        assert!(cond("'1.0' is version('1.0', 'eq')"));
        assert!(cond("'1.2.3' is version_compare('1.2', '>=')"));
        assert!(cond("'1.2' is version('1.3', '!=')"));
        assert!(cond("'1.2' is version('1.3', '<>')"));
        assert!(cond("'1.2' is version('1.3', 'le')"));
        assert!(cond("'1.2a' is version('1.2b', '<')"));
        assert!(
            t().eval_condition("'1' is version('1', 'bogus')", &vars())
                .is_err()
        );
        assert!(
            t().eval_condition("'1.a' is version('1.2', '<')", &vars())
                .is_err()
        );
        assert!(cond("none is none"));
        assert!(cond("'abc' is match('ab')"));
        assert!(!cond("'abc' is match('bc')"));
        assert!(cond("'abc' is search('bc')"));
        assert!(cond("'abc' is regex('^a.c$')"));
        assert!(cond("'ABC' is search('b', ignorecase=true)"));
        assert!(cond("'x' is truthy and '' is falsy"));
        assert!(cond("'no' is falsy(convert_bool=true)"));
        assert!(cond("name is string and port is number and cfg is mapping"));
        assert!(cond(
            "items is sequence and items is iterable and flag is boolean"
        ));
        assert!(cond("2 is in items"));
        assert!(cond("[1, 2] is subset(items)"));
        assert!(cond("items is superset([1])"));
        assert!(cond("items is contains(3)"));
        assert!(cond("[true, 1] is all and [0, 1] is any"));
    }

    #[test]
    fn py_replacement_conversion() {
        assert_eq!(filters::py_replacement(r"\1-\g<x>-$-\\"), "${1}-${x}-$$-\\");
    }

    #[test]
    fn no_panics_on_random_input() {
        const PIECES: &[&str] = &[
            "{{",
            "}}",
            "{%",
            "%}",
            "{#",
            "#}",
            " if ",
            " for ",
            " in ",
            "endif",
            "endfor",
            "x",
            "items",
            "cfg",
            ".",
            "[",
            "]",
            "(",
            ")",
            "|",
            "default",
            "int",
            "regex_replace",
            "'",
            "\"",
            "\\",
            "1",
            "-",
            "+",
            "*",
            "/",
            "~",
            ",",
            "is",
            "defined",
            "not",
            "omit",
            "combine",
            "to_json",
            "version",
            "==",
            "{",
            "}",
            ":",
            "\n",
            "é",
            "none",
            "range",
            "flatten",
            "map",
            "select",
            "loop",
            "set",
            "=",
            "macro",
            "endmacro",
            "raw",
            "endraw",
            "quote",
            "hash",
            "b64decode",
            "from_yaml",
            "from_json",
            "%",
            "10**9",
        ];
        let t = t();
        let vars = vars();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(seed >> 33).unwrap_or(0)
        };
        for _ in 0..3000 {
            let len = next() % 12 + 1;
            let text: String = (0..len).map(|_| PIECES[next() % PIECES.len()]).collect();
            let _ = t.render_str(&text, &vars);
            let _ = t.eval_condition(&text, &vars);
            let _ = t.check_syntax(&text);
            let _ = t.referenced_vars(&text);
            let _ = t.render_file("f", &text, &vars);
        }
    }
}
