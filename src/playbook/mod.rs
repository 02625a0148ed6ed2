//! Ansible playbooks: the model, the loader, templating, modules, and the planner.
//!
//! The subset kamo supports is refused-or-exact: anything outside it is an error with its
//! location before any host is touched (see docs/SUBSET.md).

pub mod check;
pub mod load;
pub mod model;
pub mod modules;
#[cfg(test)]
mod props;
pub mod template;
pub mod yaml;
