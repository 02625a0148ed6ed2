//! The KAMONOHASHI app database (PostgreSQL): its EF Core migrations as SQL, applied and
//! reverted from the workstation.
//!
//! KAMONOHASHI's web-api owns the schema and records what is applied in
//! `"__EFMigrationsHistory"`. kamo keeps each migration as `up.sql`/`down.sql` in
//! `playbooks/migrations/` ([`migrations`]) and runs them over sqlx ([`apply`]) instead of
//! `dotnet ef` in a pod, so that a lab database can be loaded and a version rolled back without
//! the app's tooling. [`scram`] lets kamo set role passwords without sending them in a statement.

pub mod apply;
pub mod backup;
pub mod migrations;
pub mod pgpass;
pub mod scram;
pub mod target;
