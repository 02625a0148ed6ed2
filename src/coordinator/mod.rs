//! Steps that run on the workstation between the playbooks: confirmations, reading what a
//! cluster says about itself, choosing the playbooks of a version.
//!
//! Why a separate room: the engine runs tasks on hosts and knows nothing of KAMONOHASHI; the
//! lifecycle verbs (`deploy`, `clean`, `rebuild`, ...) decide *which* playbooks run, with which
//! variables, after which question to the operator. Keeping that here leaves the engine generic
//! and every verb a short, readable sequence.

pub mod confirm;
pub mod datasets;
pub mod dbjournal;
pub mod dbplan;
pub mod matrix;
pub mod playbooks;
pub mod tunnel;
