//! Placeholder loader (replaced by the real one on merge).
use super::model::{Playbook, RoleCtx, Task, Vars};
use crate::error::Error;
use std::path::Path;
use std::sync::Arc;
pub fn load_playbook(path: &Path) -> Result<Playbook, Error> {
    Err(Error::Other(format!(
        "loader not merged yet: {}",
        path.display()
    )))
}
pub fn load_tasks(path: &Path, _role: Option<Arc<RoleCtx>>) -> Result<Vec<Task>, Error> {
    Err(Error::Other(format!(
        "loader not merged yet: {}",
        path.display()
    )))
}
pub fn load_vars_file(path: &Path) -> Result<Vars, Error> {
    Err(Error::Other(format!(
        "loader not merged yet: {}",
        path.display()
    )))
}
