//! Placeholder Templater (replaced by the real minijinja implementation on merge).
#![allow(
    clippy::unused_self,
    clippy::missing_const_for_fn,
    clippy::new_without_default
)]
use serde_json::Value;
pub const OMIT: &str = "__omit_place_holder__kamo__";
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
    pub undefined: Option<String>,
    pub syntax: bool,
    pub line: Option<usize>,
}
pub struct Templater;
impl Templater {
    #[must_use]
    pub fn new() -> Self {
        Self
    }
    pub fn render_str(&self, text: &str, _vars: &Value) -> Result<Value, TemplateError> {
        Ok(Value::String(text.to_owned()))
    }
    pub fn render_value(&self, v: &Value, _vars: &Value) -> Result<Value, TemplateError> {
        Ok(v.clone())
    }
    pub fn eval_condition(&self, expr: &str, _vars: &Value) -> Result<bool, TemplateError> {
        Ok(expr.trim() == "true")
    }
    pub fn check_syntax(&self, _text: &str) -> Result<(), TemplateError> {
        Ok(())
    }
    pub fn render_file(
        &self,
        _name: &str,
        text: &str,
        _vars: &Value,
    ) -> Result<String, TemplateError> {
        Ok(text.to_owned())
    }
    #[must_use]
    pub fn referenced_vars(&self, _text: &str) -> std::collections::BTreeSet<String> {
        std::collections::BTreeSet::new()
    }
}
