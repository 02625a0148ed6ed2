//! Static checks on a loaded playbook, before any host is touched: every template string and
//! every condition must parse.

use serde_json::Value;

use super::model::{Loop, Playbook, Task, TaskKind};
use super::template::Templater;
use crate::error::{Error, Located};

/// Checks the syntax of every template in the playbook; the first error is located at its task.
pub fn templates(pb: &Playbook, t: &Templater) -> Result<(), Error> {
    for play in &pb.plays {
        for v in play.vars.values() {
            value(v, t, &play.span)?;
        }
        for task in play.sections.iter().flatten().chain(&play.handlers) {
            check_task(task, t)?;
        }
    }
    Ok(())
}

fn err(span: &super::model::Span, what: &str, e: &super::template::TemplateError) -> Error {
    let text = std::fs::read_to_string(span.file.as_ref()).unwrap_or_default();
    Error::parse(
        Located::new(
            span.file.as_ref(),
            span.line,
            format!("template error in {what}: {e}"),
        )
        .column(span.column, 0)
        .source(&text),
    )
}

fn value(v: &Value, t: &Templater, span: &super::model::Span) -> Result<(), Error> {
    match v {
        Value::String(s) => t.check_syntax(s).map_err(|e| err(span, "a value", &e)),
        Value::Array(a) => a.iter().try_for_each(|x| value(x, t, span)),
        Value::Object(m) => m.values().try_for_each(|x| value(x, t, span)),
        _ => Ok(()),
    }
}

fn cond(c: &str, t: &Templater, span: &super::model::Span) -> Result<(), Error> {
    t.check_syntax(&format!("{{% if {c} %}}{{% endif %}}"))
        .map_err(|e| err(span, &format!("condition `{c}`"), &e))
}

fn check_task(task: &Task, t: &Templater) -> Result<(), Error> {
    let span = &task.span;
    for c in task
        .when
        .iter()
        .chain(task.changed_when.iter().flatten())
        .chain(task.failed_when.iter().flatten())
        .chain(task.until.iter().flatten())
    {
        cond(c, t, span)?;
    }
    if let Some(Loop::Items(v) | Loop::Dict(v)) = &task.r#loop {
        value(v, t, span)?;
    }
    for v in task.vars.values().chain(task.environment.values()) {
        value(v, t, span)?;
    }
    match &task.kind {
        TaskKind::Action(a) => {
            for v in a.args.values() {
                value(v, t, &a.span)?;
            }
        }
        TaskKind::Block {
            block,
            rescue,
            always,
        } => {
            for c in block.iter().chain(rescue).chain(always) {
                check_task(c, t)?;
            }
        }
        TaskKind::IncludeTasks { .. } | TaskKind::Meta(_) => {}
    }
    Ok(())
}
