//! `kamo rollback`, `kamo migrate-db`, `kamo db status|restore` against a real PostgreSQL
//! (issue 7): what is dropped and what is kept, the backup, failures that change nothing, the
//! lock, a crash and `kamo resume`, `--via` through a lab node's sshd, and the password kept out
//! of output, journal and process list.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use kamo::db::{apply, migrations};

use crate::support::kamo::{Kamo, Run, empty_home};
use sqlx::{Connection, PgConnection};

use crate::support::pg::{Pg, block_on, connect};

const V200: &str = "20200319064613_v2.0.0";
const V210: &str = "20200615001935_v2.1.0";

/// A database of the test server at v2.1.0 with the lab's sample rows.
struct App {
    /// With the password.
    url: String,
    /// Without it (what kamo is given; the password comes from PGPASSWORD).
    bare: String,
    password: String,
}

fn app_db(pg: &Pg, name: &str) -> App {
    let url = pg.create_db(name);
    let all = migrations::load(&migrations::default_dir()).unwrap();
    block_on(async {
        let mut c = connect(&url).await;
        apply::up_to_newest(&mut c, &all).await.unwrap();
        sqlx::raw_sql(kamo::lab::db::SAMPLE_ROWS)
            .execute(&mut c)
            .await
            .unwrap();
    });
    let password = format!("{name}-secret-{}", pg.port);
    App {
        bare: url.replace(&format!(":{password}@"), "@"),
        url,
        password,
    }
}

/// A kamo run for `app` with its password in PGPASSWORD and its own state directory.
fn kamo(home: &Path, app: &App) -> Kamo {
    Kamo::new(home)
        .env("PGPASSWORD", &app.password)
        .env("KAMO_STATE_DIR", home.join("state"))
}

fn rollback(home: &Path, app: &App, extra: &[&str]) -> Run {
    kamo(home, app)
        .args(["rollback", "--db", &app.bare, "--db-only", "--yes"])
        .args(extra)
        .run()
}

fn history(url: &str) -> Vec<String> {
    block_on(async {
        let mut c = connect(url).await;
        apply::applied(&mut c)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect()
    })
}

fn count(url: &str, sql: &str) -> i64 {
    block_on(async {
        let mut c = connect(url).await;
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    })
}

fn columns(url: &str, table: &str) -> Vec<String> {
    block_on(async {
        let mut c = connect(url).await;
        sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns WHERE table_name = $1 \
             ORDER BY 1",
        )
        .bind(table)
        .fetch_all(&mut c)
        .await
        .unwrap()
    })
}

/// Files directly in `dir` (none when it does not exist).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Every byte of the journal (database and WAL), for "the password is not in it".
fn journal_bytes(home: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for f in files_in(&home.join("state")) {
        if f.to_string_lossy().contains("journal") {
            all.extend(std::fs::read(&f).unwrap_or_default());
        }
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn assert_no_password(runs: &[&Run], password: &str) {
    for r in runs {
        assert!(
            !r.stdout.contains(password) && !r.stderr.contains(password),
            "the password is in the output: {r:?}"
        );
    }
}

/// Watches every process's command line while a test runs; returns those that held `needle`.
struct CmdlineWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<(Vec<String>, usize)>,
}

impl CmdlineWatch {
    fn start(needle: &str) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, needle) = (stop.clone(), needle.to_owned());
        let handle = std::thread::spawn(move || {
            let mut hits = Vec::new();
            let mut pg_clients = 0;
            // Bounded by the test: it stops the watch before it ends (at most 10 minutes).
            let deadline = Instant::now() + Duration::from_secs(600);
            while !s.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
                        let text = String::from_utf8_lossy(&c).replace('\0', " ");
                        if text.contains(&needle) {
                            hits.push(text.clone());
                        }
                        if text.starts_with("pg_dump") || text.starts_with("pg_restore") {
                            pg_clients += 1;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            (hits, pg_clients)
        });
        Self { stop, handle }
    }

    fn finish(self) -> (Vec<String>, usize) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// Rollback to v2.0.0 drops exactly the reverted columns and the training tags, keeps every
/// other row, ends the history at the target, and its backup restores the state before
/// (`pg_dump` compared); the password is in no output, journal or command line.
#[test]
fn rollback_drops_exactly_the_reverted_data_and_the_backup_restores_it() {
    let pg = Pg::start();
    let app = app_db(&pg, "app");
    let home = empty_home();
    let before = pg.dump_all("app");
    let tables = [
        "Tenants",
        "Users",
        "TrainingHistories",
        "NotebookHistories",
        "InferenceHistories",
        "TensorBoardContainers",
        "DataSets",
        "Data",
    ];
    let rows_before: Vec<i64> = tables
        .iter()
        .map(|t| count(&app.url, &format!("SELECT count(*) FROM \"{t}\"")))
        .collect();
    let tags = count(&app.url, r#"SELECT count(*) FROM "Tags""#);
    let training_tags = count(&app.url, r#"SELECT count(*) FROM "Tags" WHERE "Type" = 2"#);
    let maps = count(&app.url, r#"SELECT count(*) FROM "TrainingHistoryTagMaps""#);
    let training_maps = count(
        &app.url,
        r#"SELECT count(*) FROM "TrainingHistoryTagMaps" m JOIN "Tags" t ON t."Id" = m."TagId" WHERE t."Type" = 2"#,
    );
    assert!(training_tags > 0 && training_maps > 0 && tags > training_tags);

    let watch = CmdlineWatch::start(&app.password);
    let r = rollback(home.path(), &app, &["--to-version", "2.0.0"]);
    let (hits, _) = watch.finish();
    r.assert_code(0);
    assert!(
        hits.is_empty(),
        "the password was on a command line: {hits:?}"
    );
    assert!(
        r.stderr.contains(&format!(
            "rolled back app@127.0.0.1:{}/app to {V200}",
            pg.port
        )),
        "{}",
        r.stderr
    );
    assert_eq!(history(&app.url), [V200]);
    for (table, gone) in [
        ("TensorBoardContainers", "ExpiresIn"),
        ("NotebookHistories", "EntryPoint"),
        ("NotebookHistories", "LocalDataSet"),
        ("TrainingHistories", "LocalDataSet"),
        ("InferenceHistories", "LocalDataSet"),
        ("Tags", "Type"),
    ] {
        let cols = columns(&app.url, table);
        assert!(
            !cols.contains(&gone.to_owned()),
            "{table}.{gone} still there: {cols:?}"
        );
        assert!(
            cols.contains(&"Id".to_owned()),
            "{table} lost more: {cols:?}"
        );
    }
    let rows_after: Vec<i64> = tables
        .iter()
        .map(|t| count(&app.url, &format!("SELECT count(*) FROM \"{t}\"")))
        .collect();
    assert_eq!(rows_before, rows_after, "rows of {tables:?}");
    assert_eq!(
        count(&app.url, r#"SELECT count(*) FROM "Tags""#),
        tags - training_tags
    );
    assert_eq!(
        count(&app.url, r#"SELECT count(*) FROM "TrainingHistoryTagMaps""#),
        maps - training_maps
    );

    // One backup, 0600, its size and checksum in the journal.
    let backups = files_in(&home.path().join("state/backups"));
    assert_eq!(backups.len(), 1, "{backups:?}");
    let b = &backups[0];
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(b).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let sha = {
        use sha2::Digest;
        kamo::journal::hex(&sha2::Sha256::digest(std::fs::read(b).unwrap()))
    };
    assert!(r.stderr.contains(&sha), "{}", r.stderr);
    let show = kamo(home.path(), &app)
        .args(["show", "latest", "--output", "json"])
        .run();
    show.assert_code(0);
    assert!(show.stdout.contains("\"db\""), "{}", show.stdout);
    let log = kamo(home.path(), &app)
        .args(["log", "latest", "db", "backup"])
        .run();
    log.assert_code(0);
    assert!(log.stdout.contains(&sha), "{}", log.stdout);

    // db status: the history and the app version of each migration.
    let st = kamo(home.path(), &app)
        .args(["db", "status", "--db", &app.bare])
        .run();
    st.assert_code(0);
    assert!(
        st.stdout
            .contains(&format!("newest applied: {V200} (app 2.0.0)")),
        "{}",
        st.stdout
    );
    assert!(
        st.stdout.contains(V210) && st.stdout.contains("pending"),
        "{}",
        st.stdout
    );

    // Undo: the backup restores the state before, exactly.
    let restore = kamo(home.path(), &app)
        .args(["db", "restore"])
        .arg_path(b)
        .args(["--db", &app.bare, "--yes"])
        .run();
    restore.assert_code(0);
    assert_eq!(history(&app.url), [V200, V210]);
    let after = pg.dump_all("app");
    assert!(
        after == before,
        "the restore differs:\n{}",
        diff(&before, &after)
    );

    // With the password in the URL: still in no output, and not in the journal.
    let with_url = kamo(home.path(), &app)
        .env("PGPASSWORD", "")
        .args([
            "rollback",
            "--to",
            V200,
            "--db",
            &app.url,
            "--db-only",
            "--yes",
        ])
        .run();
    with_url.assert_code(0);
    assert_eq!(history(&app.url), [V200]);
    assert_no_password(&[&r, &show, &log, &st, &restore, &with_url], &app.password);
    assert!(
        !contains(&journal_bytes(home.path()), &app.password),
        "the password is in the journal"
    );
}

fn diff(a: &str, b: &str) -> String {
    similar::TextDiff::from_lines(a, b)
        .unified_diff()
        .header("before", "after")
        .to_string()
}

/// The app database's full dump is still `before`, byte for byte.
fn assert_unchanged(pg: &Pg, before: &str) {
    let after = pg.dump_all("app");
    assert!(
        after == before,
        "the database changed:\n{}",
        diff(before, &after)
    );
}

/// A copy of the shipped migrations whose v2.1.0 down.sql fails at a known line, after
/// statements that succeed.
fn broken_migrations(dir: &Path) -> (PathBuf, usize) {
    // After the first three statements (two DROP COLUMN and a DELETE), a failing one.
    migrations_with(dir, "ALTER TABLE \"Tags\" DROP COLUMN \"NoSuchColumn\";")
}

/// The shipped v2.0.0 and v2.1.0 migrations copied into `dir`, with `statement` put into
/// v2.1.0's down.sql after its first statements; the down.sql and the statement's line.
fn migrations_with(dir: &Path, statement: &str) -> (PathBuf, usize) {
    let src = migrations::default_dir();
    for id in [V200, V210] {
        std::fs::create_dir_all(dir.join(id)).unwrap();
        for f in ["up.sql", "down.sql"] {
            std::fs::copy(src.join(id).join(f), dir.join(id).join(f)).unwrap();
        }
    }
    let down = dir.join(V210).join("down.sql");
    let text = std::fs::read_to_string(&down).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("DELETE FROM \"DataTagMaps\""))
        .unwrap();
    lines.insert(at, statement);
    std::fs::write(&down, lines.join("\n")).unwrap();
    (down, at + 1)
}

/// A failing down.sql leaves the database byte for byte as before and names the migration,
/// file, line and PostgreSQL's message; the run can be resumed once the script is fixed.
#[test]
fn a_failing_down_script_changes_nothing_and_is_located() {
    let pg = Pg::start();
    let app = app_db(&pg, "app");
    let home = empty_home();
    let mig = tempfile::tempdir().unwrap();
    let (down, line) = broken_migrations(mig.path());
    let before = pg.dump_all("app");
    let r = rollback(
        home.path(),
        &app,
        &["--to", V200, "--migrations", mig.path().to_str().unwrap()],
    );
    r.assert_code(2);
    assert!(
        r.stderr.contains(&format!(
            "migration {V210} failed at {}:{line}",
            down.display()
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("column \"NoSuchColumn\" of relation \"Tags\" does not exist"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("rolled back"), "{}", r.stderr);
    assert_unchanged(&pg, &before);
    assert_eq!(history(&app.url), [V200, V210]);
    let hist = kamo(home.path(), &app)
        .args(["history", "--output", "json"])
        .run();
    let runs: serde_json::Value = serde_json::from_str(&hist.stdout).unwrap();
    assert_eq!(runs[0]["state"], "failed", "{runs}");

    // Fixed script: resume refuses the changed file unless told, then finishes the run.
    std::fs::copy(migrations::default_dir().join(V210).join("down.sql"), &down).unwrap();
    let r = kamo(home.path(), &app).args(["resume"]).run();
    r.assert_code(1);
    assert!(
        r.stderr
            .contains(&format!("migration {} changed", down.display())),
        "{}",
        r.stderr
    );
    assert_eq!(history(&app.url), [V200, V210]);
    let r = kamo(home.path(), &app).args(["resume", "--force"]).run();
    r.assert_code(0);
    assert!(r.stderr.contains("reusing"), "{}", r.stderr);
    assert_eq!(history(&app.url), [V200]);
}

/// Unknown target, target not applied, missing down.sql, wrong password, unreachable
/// database: each a clear error and its exit code; nothing changed, no backup written.
#[test]
fn bad_targets_and_connections_are_refused_and_change_nothing() {
    let pg = Pg::start();
    let app = app_db(&pg, "app");
    let home = empty_home();
    let before = pg.dump_all("app");

    let r = rollback(home.path(), &app, &["--to", "20990101000000_v9.9.9"]);
    r.assert_code(5);
    assert!(
        r.stderr
            .contains("cannot roll back to 20990101000000_v9.9.9: it is unknown"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(V210), "shows the history: {}", r.stderr);

    let r = rollback(home.path(), &app, &["--to", "not-a-migration"]);
    r.assert_code(5);
    assert!(
        r.stderr.contains("is not an EF Core migration id"),
        "{}",
        r.stderr
    );

    let r = rollback(home.path(), &app, &["--to-version", "1.0.0"]);
    r.assert_code(5);
    assert!(
        r.stderr
            .contains("does not know the database migration of 1.0.0"),
        "{}",
        r.stderr
    );

    // Missing down.sql: the directory is refused when it is loaded, before any connection.
    let mig = tempfile::tempdir().unwrap();
    broken_migrations(mig.path());
    std::fs::remove_file(mig.path().join(V210).join("down.sql")).unwrap();
    let r = rollback(
        home.path(),
        &app,
        &["--to", V200, "--migrations", mig.path().to_str().unwrap()],
    );
    r.assert_code(4);
    assert!(
        r.stderr.contains("missing migration script"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("{V210}/down.sql")),
        "{}",
        r.stderr
    );
    // An applied migration the directory does not have at all.
    std::fs::remove_dir_all(mig.path().join(V210)).unwrap();
    let r = rollback(
        home.path(),
        &app,
        &["--to", V200, "--migrations", mig.path().to_str().unwrap()],
    );
    r.assert_code(5);
    assert!(
        r.stderr.contains(&format!("has no {V210}/down.sql")),
        "{}",
        r.stderr
    );

    let wrong = kamo(home.path(), &app)
        .env("PGPASSWORD", "not-the-password")
        .args([
            "rollback",
            "--to",
            V200,
            "--db",
            &app.bare,
            "--db-only",
            "--yes",
        ])
        .run();
    wrong.assert_code(3);
    assert!(
        wrong
            .stderr
            .contains(&format!("cannot connect to app@127.0.0.1:{}/app", pg.port))
            && wrong
                .stderr
                .contains("password authentication failed for user \"app\"")
            && wrong.stderr.contains("(password from PGPASSWORD)"),
        "{}",
        wrong.stderr
    );
    assert!(!wrong.stderr.contains("not-the-password"));

    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let r = kamo(home.path(), &app)
        .args(["rollback", "--to", V200, "--db-only", "--yes", "--db"])
        .args([format!("postgres://app@127.0.0.1:{dead_port}/app")])
        .run();
    r.assert_code(3);
    assert!(
        r.stderr
            .contains(&format!("cannot connect to app@127.0.0.1:{dead_port}/app"))
            && r.stderr.contains("nothing was changed"),
        "{}",
        r.stderr
    );

    // No password anywhere: no terminal to ask on, so a clear refusal (exit 5).
    let r = Kamo::new(home.path())
        .args([
            "rollback",
            "--to",
            V200,
            "--db",
            &app.bare,
            "--db-only",
            "--yes",
        ])
        .run();
    r.assert_code(5);
    assert!(r.stderr.contains("no password for app@"), "{}", r.stderr);

    // Without --yes and no answer on stdin: refused before anything.
    let r = kamo(home.path(), &app)
        .args(["rollback", "--to", V200, "--db", &app.bare, "--db-only"])
        .run();
    r.assert_code(5);
    assert!(r.stderr.contains("Type app to go on"), "{}", r.stderr);
    assert!(
        r.stderr.contains("rows of \"Tags\""),
        "the loss is shown: {}",
        r.stderr
    );

    assert_unchanged(&pg, &before);
    assert!(files_in(&home.path().join("state/backups")).is_empty());
}

/// `--check` prints the plan and the exact SQL of every step and changes nothing: no backup,
/// no lock left, no journal run, the same dump.
#[test]
fn check_prints_the_plan_and_changes_nothing() {
    let pg = Pg::start();
    let app = app_db(&pg, "app");
    let home = empty_home();
    let before = pg.dump_all("app");
    let training_tags = count(&app.url, r#"SELECT count(*) FROM "Tags" WHERE "Type" = 2"#);
    let r = kamo(home.path(), &app)
        .args([
            "rollback",
            "--to",
            V200,
            "--db",
            &app.bare,
            "--db-only",
            "--check",
        ])
        .run();
    r.assert_code(0);
    let out = &r.stdout;
    for want in [
        "revert, newest first:",
        &format!("{V210} (app 2.1.0)"),
        &format!("{training_tags} rows of \"Tags\""),
        "value of \"TensorBoardContainers\".\"ExpiresIn\" (",
        "BEGIN;",
        "SET LOCAL lock_timeout",
        "ALTER TABLE \"Tags\" DROP COLUMN \"Type\";",
        &format!("DELETE FROM \"__EFMigrationsHistory\" WHERE \"MigrationId\" = '{V210}';"),
        "COMMIT;",
        "pg_try_advisory_lock",
        "pg_dump --format=custom",
        &format!("expected: {V200}"),
        "stop-app",
        "skipped (--db-only)",
        "dry run (--check): nothing was changed",
    ] {
        assert!(out.contains(want), "{want:?} missing:\n{out}");
    }
    // The SQL is located in its script.
    assert!(out.contains(&format!("{V210}/down.sql:8")), "{out}");
    let after = pg.dump_all("app");
    assert!(
        after == before,
        "--check changed the database:\n{}",
        diff(&before, &after)
    );
    assert!(!home.path().join("state/backups").exists());
    assert!(
        !home.path().join("state/journal.sqlite3").exists(),
        "no run recorded"
    );
    assert_eq!(
        count(
            &app.url,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        ),
        0
    );
    assert_no_password(&[&r], &app.password);
}

/// A test session that holds a lock on a table the rollback's first statement alters, so that
/// a rollback stops inside its transaction (after its backup) until the session ends.
struct Blocker {
    rt: tokio::runtime::Runtime,
    conn: Option<PgConnection>,
}

impl Blocker {
    fn hold(url: &str) -> Blocker {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let conn = rt.block_on(async {
            let mut c = connect(url).await;
            sqlx::raw_sql("BEGIN; LOCK TABLE \"TensorBoardContainers\" IN ROW EXCLUSIVE MODE;")
                .execute(&mut c)
                .await
                .unwrap();
            c
        });
        Blocker {
            rt,
            conn: Some(conn),
        }
    }

    fn release(&mut self) {
        if let Some(mut c) = self.conn.take() {
            self.rt.block_on(async {
                sqlx::raw_sql("ROLLBACK").execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            });
        }
    }
}

/// Waits (bounded) until a kamo session of `verb` waits for a lock in the database.
fn wait_until_blocked(url: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = count(
            url,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'kamo rollback%' \
             AND wait_event_type = 'Lock'",
        );
        if n > 0 {
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            let out = child.wait_with_output_now();
            panic!("kamo ended ({st}) before it blocked: {out}");
        }
        assert!(Instant::now() < deadline, "kamo never waited for the lock");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (bounded) until no kamo session is left in the database.
fn wait_until_no_kamo_session(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'kamo%'",
    ) > 0
    {
        assert!(Instant::now() < deadline, "kamo's session did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
}

trait OutputNow {
    fn wait_with_output_now(&mut self) -> String;
}

impl OutputNow for Child {
    fn wait_with_output_now(&mut self) -> String {
        use std::io::Read;
        let mut s = String::new();
        if let Some(mut o) = self.stdout.take() {
            let _ = o.read_to_string(&mut s);
        }
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

/// Waits for a spawned kamo, bounded; returns its exit code and output.
fn finish(mut child: Child) -> (i32, String) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return (st.code().unwrap_or(-1), child.wait_with_output_now());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kamo did not finish: {}", child.wait_with_output_now());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// While one rollback runs (held inside its transaction), a second one is refused at once,
/// naming the holder, without writing a backup; the first then finishes.
#[test]
fn a_second_concurrent_rollback_is_refused() {
    let pg = Pg::start();
    let app = app_db(&pg, "app");
    let home = empty_home();
    let mut blocker = Blocker::hold(&app.url);
    let mut first = kamo(home.path(), &app)
        .args([
            "rollback",
            "--to",
            V200,
            "--db",
            &app.bare,
            "--db-only",
            "--yes",
        ])
        .spawn();
    wait_until_blocked(&app.url, &mut first);
    let second_home = empty_home();
    let second = kamo(second_home.path(), &app)
        .args([
            "rollback",
            "--to",
            V200,
            "--db",
            &app.bare,
            "--db-only",
            "--yes",
        ])
        .run();
    second.assert_code(1);
    assert!(
        second
            .stderr
            .contains("another kamo rollback or migration is running")
            && second.stderr.contains("kamo rollback pid")
            && second.stderr.contains("nothing was changed"),
        "{}",
        second.stderr
    );
    assert!(files_in(&second_home.path().join("state/backups")).is_empty());
    blocker.release();
    let (code, out) = finish(first);
    assert_eq!(code, 0, "{out}");
    assert_eq!(history(&app.url), [V200]);
}

/// SIGKILL after the backup, inside the transaction: the database is as before; `kamo resume`
/// (itself killed once the same way) reuses the backup (its checksum verified) and runs the
/// transaction. Killed again, and the
/// revert committed by someone else before the resume (as when kamo dies between its commit and
/// its record): the resume does not run the transaction again.
#[test]
fn a_crash_between_backup_and_transaction_resumes_correctly() {
    let pg = Pg::start();
    for (name, committed_meanwhile) in [("crash1", false), ("crash2", true)] {
        let app = app_db(&pg, name);
        let home = empty_home();
        let before = pg.dump_all(name);
        let mut blocker = Blocker::hold(&app.url);
        let mut child = kamo(home.path(), &app)
            .args([
                "rollback",
                "--to",
                V200,
                "--db",
                &app.bare,
                "--db-only",
                "--yes",
            ])
            .spawn();
        wait_until_blocked(&app.url, &mut child);
        let backups = files_in(&home.path().join("state/backups"));
        assert_eq!(
            backups.len(),
            1,
            "the backup is taken before the transaction"
        );
        // SAFETY: kill(2) on the child this test started.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        blocker.release();
        wait_until_no_kamo_session(&app.url);
        let after = pg.dump_all(name);
        assert!(
            after == before,
            "the crash changed the database:\n{}",
            diff(&before, &after)
        );
        let hist = kamo(home.path(), &app)
            .args(["history", "--output", "json"])
            .run();
        let runs: serde_json::Value = serde_json::from_str(&hist.stdout).unwrap();
        assert_eq!(runs[0]["state"], "killed", "{runs}");
        if !committed_meanwhile {
            // Killed again while resuming: the backup stays recorded for the next resume.
            let mut blocker = Blocker::hold(&app.url);
            let mut child = kamo(home.path(), &app).args(["resume"]).spawn();
            wait_until_blocked(&app.url, &mut child);
            // SAFETY: kill(2) on the child this test started.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            let _ = child.wait();
            blocker.release();
            wait_until_no_kamo_session(&app.url);
            assert_eq!(pg.dump_all(name), before);
        }
        if committed_meanwhile {
            let all = migrations::load(&migrations::default_dir()).unwrap();
            block_on(async {
                let mut c = connect(&app.url).await;
                apply::down(&mut c, all.get(V210).unwrap()).await.unwrap();
            });
        }
        let r = kamo(home.path(), &app).args(["resume"]).run();
        r.assert_code(0);
        assert!(
            r.stderr.contains("reusing") && r.stderr.contains("verified"),
            "{}",
            r.stderr
        );
        if committed_meanwhile {
            assert!(r.stderr.contains("not run again"), "{}", r.stderr);
        } else {
            assert!(r.stderr.contains("committed"), "{}", r.stderr);
        }
        assert_eq!(history(&app.url), [V200]);
        assert_eq!(
            files_in(&home.path().join("state/backups")),
            backups,
            "no second backup"
        );
        let hist = kamo(home.path(), &app)
            .args(["history", "--output", "json"])
            .run();
        let runs: serde_json::Value = serde_json::from_str(&hist.stdout).unwrap();
        assert_eq!(runs[0]["state"], "ok", "{runs}");
        assert_no_password(&[&r, &hist], &app.password);
    }
}

/// `kamo migrate-db` takes a v2.0.0 database forward with up.sql (backup, one transaction,
/// verify); `--check` first changes nothing; a target already passed is refused.
#[test]
fn migrate_db_goes_forward_with_the_same_safety() {
    let pg = Pg::start();
    let app = app_db(&pg, "app");
    let home = empty_home();
    rollback(home.path(), &app, &["--to", V200]).assert_code(0);
    let before = pg.dump_all("app");
    let check = kamo(home.path(), &app)
        .args(["migrate-db", "--to", V210, "--db", &app.bare, "--check"])
        .run();
    check.assert_code(0);
    assert!(
        check.stdout.contains("apply, oldest first:"),
        "{}",
        check.stdout
    );
    assert!(
        check.stdout.contains(&format!("INSERT INTO \"__EFMigrationsHistory\" (\"MigrationId\", \"ProductVersion\") VALUES ('{V210}'")),
        "{}",
        check.stdout
    );
    assert_eq!(pg.dump_all("app"), before);
    let r = kamo(home.path(), &app)
        .args(["migrate-db", "--to", V210, "--db", &app.bare, "--yes"])
        .run();
    r.assert_code(0);
    assert_eq!(history(&app.url), [V200, V210]);
    assert!(columns(&app.url, "Tags").contains(&"Type".to_owned()));
    assert_eq!(files_in(&home.path().join("state/backups")).len(), 2);
    let again = kamo(home.path(), &app)
        .args(["migrate-db", "--to", V200, "--db", &app.bare, "--yes"])
        .run();
    again.assert_code(5);
    assert!(
        again.stderr.contains("use kamo rollback --to"),
        "{}",
        again.stderr
    );
}

/// Without --db-only, kamo needs the app's playbooks before it touches anything; when they are
/// missing it says which and points at --db-only.
#[test]
fn full_mode_refuses_clearly_when_the_app_playbooks_are_missing() {
    let pg = Pg::start();
    let app = app_db(&pg, "app");
    let home = empty_home();
    let inv = home.path().join("hosts.ini");
    std::fs::write(&inv, "[kube-master]\nmaster1 ansible_host=127.0.0.1\n").unwrap();
    // A playbook directory with the matrix but without the app's playbooks.
    let root = home.path().join("playbooks");
    std::fs::create_dir(&root).unwrap();
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("playbooks/versions.yml"),
        root.join("versions.yml"),
    )
    .unwrap();
    let before = pg.dump_all("app");
    let r = kamo(home.path(), &app)
        .args([
            "rollback",
            "--to-version",
            "2.0.0",
            "--db",
            &app.bare,
            "--yes",
            "-i",
        ])
        .arg_path(&inv)
        .args(["--playbooks"])
        .arg_path(&root)
        .run();
    r.assert_code(5);
    assert!(r.stderr.contains("which does not exist"), "{}", r.stderr);
    assert!(r.stderr.contains("--db-only"), "{}", r.stderr);
    assert_eq!(pg.dump_all("app"), before);
    assert!(files_in(&home.path().join("state/backups")).is_empty());
}

/// `--via`: the database is named as only the cluster knows it (a lab node's name, which this
/// machine cannot resolve) and reached through a direct-tcpip tunnel over the SSH connection to
/// another node; `kamo db status -i` finds the database and its password file in the
/// inventory's settings. The password is in no command line and no output.
#[test]
fn via_reaches_a_database_that_only_the_cluster_can_name() {
    use crate::support::lab::Lab;
    use std::net::ToSocketAddrs;
    let (lab, _) = Lab::start(2, &["--with-db"]);
    let st = lab.status();
    let port = st["database"]["port"].as_u64().unwrap();
    let address = st["database"]["address"].as_str().unwrap().to_owned();
    let password = std::fs::read_to_string(lab.dir.join("db-password"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        ("node01", 5432).to_socket_addrs().is_err(),
        "this machine resolves node01: the test would not prove the tunnel"
    );
    let state = lab.home.path().join("state");
    let inv = lab.inventory();

    let status = lab
        .kamo()
        .env("KAMO_STATE_DIR", &state)
        .args(["db", "status", "-i"])
        .arg_path(&inv)
        .run();
    status.assert_code(0);
    assert!(
        status
            .stdout
            .contains(&format!("newest applied: {V210} (app 2.1.0)")),
        "{}",
        status.stdout
    );

    let watch = CmdlineWatch::start(&password);
    let r = lab
        .kamo()
        .env("KAMO_STATE_DIR", &state)
        .env("PGPASSWORD", &password)
        .args(["rollback", "--to-version", "2.0.0", "--db-only", "--yes"])
        .args(["--via", "node02", "--db"])
        .args([format!("postgres://platypus@node01:{port}/kamonohashi")])
        .args(["-i"])
        .arg_path(&inv)
        .run();
    let (hits, _) = watch.finish();
    r.assert_code(0);
    assert!(
        hits.is_empty(),
        "the password was on a command line: {hits:?}"
    );
    assert!(
        r.stderr.contains(&format!("-> node02 -> node01:{port}")),
        "{}",
        r.stderr
    );
    let url = format!("postgres://platypus:{password}@{address}:{port}/kamonohashi");
    assert_eq!(history(&url), [V200]);
    assert_eq!(files_in(&state.join("backups")).len(), 1);
    assert_no_password(&[&status, &r], &password);
    assert!(!contains(&journal_bytes(lab.home.path()), &password));
}

/// TLS with rustls when the URL asks for it: `verify-full` with the server's CA in
/// `sslrootcert` connects, without it the certificate is refused; `require` to a server without
/// TLS is refused clearly. Each refusal is exit 3 and changes nothing.
#[test]
fn tls_is_used_when_the_url_asks_for_it() {
    let pg = Pg::start_tls();
    let app = app_db(&pg, "app");
    let home = empty_home();
    let ca = pg.ca_cert();
    let status = |url: String| {
        kamo(home.path(), &app)
            .args(["db", "status", "--db"])
            .args([url])
            .run()
    };
    let base = format!("postgres://app@localhost:{}/app", pg.port);
    let ok = status(format!(
        "{base}?sslmode=verify-full&sslrootcert={}",
        ca.display()
    ));
    ok.assert_code(0);
    assert!(ok.stdout.contains(V210), "{}", ok.stdout);
    status(format!("{base}?sslmode=require")).assert_code(0);
    let untrusted = status(format!("{base}?sslmode=verify-full"));
    untrusted.assert_code(3);
    assert!(
        untrusted.stderr.contains("cannot connect to app@localhost")
            && untrusted.stderr.contains("invalid peer certificate"),
        "{}",
        untrusted.stderr
    );

    let plain = Pg::start();
    let other = app_db(&plain, "plain");
    let r = kamo(home.path(), &other)
        .args(["db", "status", "--db"])
        .args([format!(
            "postgres://plain@127.0.0.1:{}/plain?sslmode=require",
            plain.port
        )])
        .run();
    r.assert_code(3);
    assert!(
        r.stderr.contains("server does not support TLS"),
        "{}",
        r.stderr
    );
    assert_no_password(&[&ok, &untrusted, &r], &app.password);
}

/// The password from ~/.pgpass (0600; a file others can read is ignored with a warning, as
/// libpq does) or $PGPASSFILE with a wildcard line; `kamo db restore` asks its own typed
/// confirmation (the database's name) and a wrong answer changes nothing.
#[test]
fn pgpass_gives_the_password_and_restore_asks_its_own_confirmation() {
    use std::os::unix::fs::PermissionsExt;
    let pg = Pg::start();
    let app = app_db(&pg, "app");
    let home = empty_home();
    let plain = |home: &Path| Kamo::new(home).env("KAMO_STATE_DIR", home.join("state"));
    let pgpass = home.path().join(".pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "# kamo test\notherhost:*:*:*:wrong\n127.0.0.1:{}:app:app:{}\n",
            pg.port, app.password
        ),
    )
    .unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let st = plain(home.path())
        .args(["db", "status", "--db", &app.bare])
        .run();
    st.assert_code(0);
    assert!(st.stdout.contains(V210), "{}", st.stdout);

    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = plain(home.path())
        .args(["db", "status", "--db", &app.bare])
        .run();
    r.assert_code(5);
    assert!(
        r.stderr.contains("has group or world access") && r.stderr.contains("no password for"),
        "{}",
        r.stderr
    );

    let other = home.path().join("elsewhere.pgpass");
    std::fs::write(&other, format!("*:*:*:app:{}\n", app.password)).unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
    let with_file = |home: &Path| plain(home).env("PGPASSFILE", &other);
    let rb = with_file(home.path())
        .args([
            "rollback",
            "--to",
            V200,
            "--db",
            &app.bare,
            "--db-only",
            "--yes",
        ])
        .run();
    rb.assert_code(0);
    assert_eq!(history(&app.url), [V200]);
    let backup = files_in(&home.path().join("state/backups")).remove(0);

    let wrong = with_file(home.path())
        .args(["db", "restore"])
        .arg_path(&backup)
        .args(["--db", &app.bare])
        .run_with_stdin("yes\n");
    wrong.assert_code(5);
    assert!(wrong.stderr.contains("not confirmed"), "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("dropped and recreated"),
        "{}",
        wrong.stderr
    );
    assert_eq!(history(&app.url), [V200]);
    let right = with_file(home.path())
        .args(["db", "restore"])
        .arg_path(&backup)
        .args(["--db", &app.bare])
        .run_with_stdin("app\n");
    right.assert_code(0);
    assert_eq!(history(&app.url), [V200, V210]);
    assert_no_password(&[&st, &r, &rb, &wrong, &right], &app.password);
}

/// Ctrl-C inside the transaction: kamo exits 99, the transaction is rolled back, the run is
/// recorded as interrupted, and `kamo resume` finishes it.
#[test]
fn an_interrupted_rollback_exits_99_and_resumes() {
    let pg = Pg::start();
    let app = app_db(&pg, "app");
    let home = empty_home();
    let before = pg.dump_all("app");
    let mut blocker = Blocker::hold(&app.url);
    let mut child = kamo(home.path(), &app)
        .args([
            "rollback",
            "--to",
            V200,
            "--db",
            &app.bare,
            "--db-only",
            "--yes",
        ])
        .spawn();
    wait_until_blocked(&app.url, &mut child);
    // SAFETY: kill(2) on the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let (code, out) = finish(child);
    assert_eq!(code, 99, "{out}");
    assert!(out.contains("kamo resume 1"), "{out}");
    blocker.release();
    wait_until_no_kamo_session(&app.url);
    let after = pg.dump_all("app");
    assert!(
        after == before,
        "the interrupt changed the database:\n{}",
        diff(&before, &after)
    );
    let hist = kamo(home.path(), &app)
        .args(["history", "--output", "json"])
        .run();
    let runs: serde_json::Value = serde_json::from_str(&hist.stdout).unwrap();
    assert_eq!(runs[0]["state"], "interrupted", "{runs}");
    let r = kamo(home.path(), &app).args(["resume", "1"]).run();
    r.assert_code(0);
    assert_eq!(history(&app.url), [V200]);
}

/// The database connection is cut (the server ends kamo's backend) while the rollback's
/// transaction is inside the down-migration: nothing changed, the error says the connection
/// was lost, and `kamo resume` finishes the rollback once the database answers (issue 10).
#[test]
fn a_connection_dropped_inside_the_rollback_transaction_changes_nothing_and_resume_finishes() {
    let pg = Pg::start();
    let app = app_db(&pg, "app");
    let home = empty_home();
    let mig = tempfile::tempdir().unwrap();
    // A pause after the first statements, in the transaction, for the connection to be cut.
    migrations_with(mig.path(), "SELECT pg_sleep(3) /* kamo-test-pause */;");
    let before = pg.dump_all("app");

    let migs = mig.path().to_str().unwrap().to_owned();
    let running = kamo(home.path(), &app)
        .args(["rollback", "--db", &app.bare, "--db-only", "--yes"])
        .args(["--to", V200, "--migrations", &migs]);
    let running = std::thread::spawn(move || running.run());
    let busy = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%kamo-test-pause%' \
                AND pid <> pg_backend_pid()";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while pg.superuser_sql("postgres", busy).trim() != "1" {
        assert!(
            std::time::Instant::now() < deadline,
            "the rollback never reached its pause"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    pg.superuser_sql(
        "postgres",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query LIKE '%kamo-test-pause%' AND pid <> pg_backend_pid()",
    );
    let r = running.join().unwrap();
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains(V210) && r.stderr.to_lowercase().contains("connection"),
        "the error names neither the migration nor the connection: {}",
        r.stderr
    );
    assert!(
        !r.stderr.contains(&app.password),
        "the password was printed: {}",
        r.stderr
    );
    assert_unchanged(&pg, &before);
    assert_eq!(history(&app.url), [V200, V210]);

    let r = kamo(home.path(), &app).args(["resume"]).run();
    r.assert_code(0);
    assert_eq!(history(&app.url), [V200]);
}
