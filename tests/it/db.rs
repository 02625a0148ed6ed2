//! The app database: the PostgreSQL test harness, the shipped migrations applied and reverted on
//! a real server, and `kamo lab up --with-db`.

use std::path::Path;

use kamo::db::{apply, migrations};

use sqlx::{Connection, PgConnection};

use crate::support::pg::{Pg, block_on, connect};

/// Whether a process has exited: no longer in /proc, or a zombie waiting for init to reap it
/// (the lab's server is not a child of this test).
fn gone(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    })
}

fn shipped() -> migrations::Migrations {
    migrations::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/migrations")).unwrap()
}

#[test]
fn harness_starts_connects_and_stops_postgres() {
    let mut pg = Pg::start();
    let url = pg.create_db("harness");
    let (user, version): (String, String) = block_on(async {
        let mut c = connect(&url).await;
        sqlx::query_as("SELECT current_user::text, current_setting('server_version')")
            .fetch_one(&mut c)
            .await
            .unwrap()
    });
    assert_eq!(user, "harness");
    assert!(!version.is_empty());
    // A wrong password is refused: the harness really asks for one.
    let wrong = url.replace("harness-secret", "wrong");
    let err = block_on(async { PgConnection::connect(&wrong).await.err() });
    assert!(
        err.is_some_and(|e| e.to_string().contains("password authentication failed")),
        "a wrong password was accepted"
    );
    let pid = pg.pid;
    assert!(pg.alive());
    pg.stop();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "postgres {pid} still running"
    );
}

#[test]
fn every_migration_has_up_and_down() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/migrations");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        if e.path().is_dir() {
            for f in ["up.sql", "down.sql"] {
                assert!(
                    e.path().join(f).is_file(),
                    "{} has no {f}",
                    e.path().display()
                );
            }
            n += 1;
        }
    }
    let m = shipped();
    assert_eq!(m.list.len(), n);
    assert_eq!(m.list[0].id, "20200319064613_v2.0.0");
    assert!(m.get("20200615001935_v2.1.0").is_some());
}

/// Every migration's down.sql returns the schema to exactly what it was before its up.sql
/// (`pg_dump --schema-only` compared), the history says so at each step, and the v2.1.0
/// revert drops exactly the training tags and keeps every other row.
#[test]
fn migrations_up_then_down_restore_the_schema() {
    let pg = Pg::start();
    let url = pg.create_db("app");
    let all = shipped();
    block_on(async {
        let mut c = connect(&url).await;
        assert!(apply::applied(&mut c).await.unwrap().is_empty());
        // kamo creates the history table with the first migration and never drops it: create it
        // first so that "before the baseline" and "after its down" compare like for like.
        sqlx::raw_sql(apply::HISTORY_DDL)
            .execute(&mut c)
            .await
            .unwrap();
        let mut before = Vec::new();
        for m in &all.list {
            before.push(pg.dump_schema("app"));
            apply::up(&mut c, m).await.unwrap();
        }
        let ids: Vec<String> = apply::applied(&mut c)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(
            ids,
            all.list.iter().map(|m| m.id.clone()).collect::<Vec<_>>()
        );
        for (m, dump) in all.list.iter().zip(before).rev() {
            apply::down(&mut c, m).await.unwrap();
            let after = pg.dump_schema("app");
            assert!(
                after == dump,
                "down of {} does not restore the schema:\n{}",
                m.id,
                diff(&dump, &after)
            );
        }
        assert!(apply::applied(&mut c).await.unwrap().is_empty());
    });
}

fn diff(a: &str, b: &str) -> String {
    similar::TextDiff::from_lines(a, b)
        .unified_diff()
        .header("before up", "after down")
        .to_string()
}

#[test]
fn v2_1_0_down_drops_training_tags_and_keeps_the_rest() {
    let pg = Pg::start();
    let url = pg.create_db("app");
    let all = shipped();
    let v210 = all.get("20200615001935_v2.1.0").unwrap();
    block_on(async {
        let mut c = connect(&url).await;
        apply::up_to_newest(&mut c, &all).await.unwrap();
        sqlx::raw_sql(kamo::lab::db::SAMPLE_ROWS)
            .execute(&mut c)
            .await
            .unwrap();
        let count = |sql: &'static str| sqlx::query_scalar::<sqlx::Postgres, i64>(sql);
        let tags_before = count(r#"SELECT count(*) FROM "Tags""#)
            .fetch_one(&mut c)
            .await
            .unwrap();
        let training_tags = count(r#"SELECT count(*) FROM "Tags" WHERE "Type" = 2"#)
            .fetch_one(&mut c)
            .await
            .unwrap();
        let maps_before = count(r#"SELECT count(*) FROM "TrainingHistoryTagMaps""#)
            .fetch_one(&mut c)
            .await
            .unwrap();
        let training_maps = count(
            r#"SELECT count(*) FROM "TrainingHistoryTagMaps" m JOIN "Tags" t ON t."Id" = m."TagId" WHERE t."Type" = 2"#,
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        assert!(training_tags > 0 && training_maps > 0 && tags_before > training_tags);
        let trainings = count(r#"SELECT count(*) FROM "TrainingHistories""#)
            .fetch_one(&mut c)
            .await
            .unwrap();

        // A revert that is not of the newest migration is refused, changing nothing.
        let e = apply::down(&mut c, &all.list[0]).await.unwrap_err();
        assert!(
            e.to_string()
                .contains("newest applied migration is 20200615001935_v2.1.0"),
            "{e}"
        );

        apply::down(&mut c, v210).await.unwrap();
        assert_eq!(
            count(r#"SELECT count(*) FROM "Tags""#)
                .fetch_one(&mut c)
                .await
                .unwrap(),
            tags_before - training_tags
        );
        assert_eq!(
            count(r#"SELECT count(*) FROM "TrainingHistoryTagMaps""#)
                .fetch_one(&mut c)
                .await
                .unwrap(),
            maps_before - training_maps
        );
        assert_eq!(
            count(r#"SELECT count(*) FROM "TrainingHistories""#)
                .fetch_one(&mut c)
                .await
                .unwrap(),
            trainings
        );
        let history: Vec<String> = apply::applied(&mut c)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(history, ["20200319064613_v2.0.0"]);
    });
}

/// A failing script rolls back its earlier statements and the history row, and the error names
/// the migration, file and line.
#[test]
fn failing_migration_changes_nothing_and_is_located() {
    let pg = Pg::start();
    let url = pg.create_db("app");
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("20200101000000_base");
    std::fs::create_dir(&base).unwrap();
    std::fs::write(
        base.join("up.sql"),
        "CREATE TABLE \"T\" (\"Id\" integer);\n",
    )
    .unwrap();
    std::fs::write(base.join("down.sql"), "DROP TABLE \"T\";\n").unwrap();
    let bad = tmp.path().join("20200202000000_bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(
        bad.join("up.sql"),
        "-- adds a column, then fails\nALTER TABLE \"T\" ADD \"X\" integer;\n\nALTER TABLE\n  \"T\" DROP COLUMN \"Nope\";\n",
    )
    .unwrap();
    std::fs::write(bad.join("down.sql"), "SELECT 1;\n").unwrap();
    let all = migrations::load(tmp.path()).unwrap();
    block_on(async {
        let mut c = connect(&url).await;
        apply::up(&mut c, &all.list[0]).await.unwrap();
        let before = pg.dump_schema("app");
        let e = apply::up_to_newest(&mut c, &all)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("migration 20200202000000_bad failed at"), "{e}");
        assert!(e.contains("20200202000000_bad/up.sql:4"), "{e}");
        assert!(
            e.contains("column \"Nope\" of relation \"T\" does not exist"),
            "{e}"
        );
        assert_eq!(pg.dump_schema("app"), before);
        let ids: Vec<String> = apply::applied(&mut c)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(ids, ["20200101000000_base"]);
    });
}

/// `kamo lab up --with-db`: a real PostgreSQL on the master's address, loaded at the newest
/// migration with sample rows, reached from a node, shown by status, stopped by down (by PID)
/// and removed by --purge; its password is in no output.
#[test]
fn lab_up_with_db_serves_the_schema_to_the_nodes() {
    use crate::support::lab::Lab;
    let (lab, first) = Lab::start(2, &["--with-db"]);
    assert!(
        first.stdout.contains("database: platypus@"),
        "{}",
        first.stdout
    );
    let password_file = lab.dir.join("db-password");
    let password = std::fs::read_to_string(&password_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(password.len() >= 32, "a strong password");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&password_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let mut outputs = vec![first];

    let st = lab.status();
    let db = &st["database"];
    assert_eq!(db["state"], "up", "{st}");
    let newest = shipped().newest().unwrap().id.clone();
    assert_eq!(db["newest_migration"], newest.as_str(), "{st}");
    let address = db["address"].as_str().unwrap().to_owned();
    let port = db["port"].as_u64().unwrap();
    assert_eq!(
        address,
        st["nodes"][0]["address"].as_str().unwrap(),
        "on the master"
    );
    let pid = db["pid"].as_u64().unwrap();
    assert!(!gone(pid));
    let text = lab.lab(&["status"]);
    text.assert_code(0);
    assert!(
        text.stdout.contains(&format!(
            "database: up platypus@{address}:{port}/kamonohashi"
        )),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains(&newest), "{}", text.stdout);
    outputs.push(text);

    let settings = std::fs::read_to_string(lab.dir.join("group_vars/all/settings.yml")).unwrap();
    for line in [
        format!("db_host: {address}"),
        format!("db_port: {port}"),
        "db_name: kamonohashi".into(),
        "db_user: platypus".into(),
        format!("db_password_file: {}", password_file.display()),
    ] {
        assert!(settings.contains(&line), "{line} missing:\n{settings}");
    }
    assert!(!settings.contains(&password));

    // A node reaches the database port, as the app's pods would.
    let r = lab.exec(
        "node02",
        &[],
        &format!("timeout 2 bash -c '</dev/tcp/{address}/{port}' && echo reached"),
    );
    r.assert_code(0);
    assert_eq!(
        r.host("node02")["stdout"].as_str().unwrap().trim(),
        "reached"
    );

    // The schema and rows, as the app user, over TCP with the generated password.
    let url = format!("postgres://platypus:{password}@{address}:{port}/kamonohashi");
    block_on(async {
        let mut c = connect(&url).await;
        let history: Vec<(String, String)> = sqlx::query_as(
            r#"SELECT "MigrationId", "ProductVersion" FROM "__EFMigrationsHistory" ORDER BY 1"#,
        )
        .fetch_all(&mut c)
        .await
        .unwrap();
        let ids: Vec<&str> = history.iter().map(|(i, _)| i.as_str()).collect();
        assert_eq!(ids, ["20200319064613_v2.0.0", "20200615001935_v2.1.0"]);
        assert!(history.iter().all(|(_, v)| v == apply::PRODUCT_VERSION));
        for (table, at_least) in [
            ("Tenants", 1),
            ("Users", 2),
            ("TrainingHistories", 3),
            ("NotebookHistories", 2),
            ("InferenceHistories", 1),
            ("TensorBoardContainers", 1),
        ] {
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM \"{table}\""
            )))
            .fetch_one(&mut c)
            .await
            .unwrap();
            assert!(n >= at_least, "{table}: {n} rows");
        }
        let types: Vec<i32> =
            sqlx::query_scalar(r#"SELECT DISTINCT "Type" FROM "Tags" ORDER BY 1"#)
                .fetch_all(&mut c)
                .await
                .unwrap();
        assert_eq!(types, [1, 2]);
        let untagged: i64 = sqlx::query_scalar(
            r#"SELECT count(*) FROM "TrainingHistories" t WHERE NOT EXISTS
               (SELECT 1 FROM "TrainingHistoryTagMaps" m WHERE m."TrainingHistoryId" = t."Id")"#,
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        assert!(untagged >= 1, "a training without tags");
        // The superuser is not reachable over TCP.
        let su = format!("postgres://postgres:{password}@{address}:{port}/postgres");
        assert!(PgConnection::connect(&su).await.is_err());
    });

    // `up` again reports the running lab and starts no second server.
    let again = lab
        .kamo()
        .args(["lab", "up", "--nodes", "2", "--with-db", "--dir"])
        .arg_path(&lab.dir)
        .run();
    again.assert_code(0);
    assert!(
        again.stdout.contains(&format!("database pid {pid}")),
        "{}",
        again.stdout
    );
    assert_eq!(lab.status()["database"]["pid"].as_u64(), Some(pid));
    outputs.push(again);

    let down = lab.lab(&["down"]);
    down.assert_code(0);
    assert!(gone(pid), "postgres {pid} still running after down");
    assert!(
        lab.dir.join("db/data/PG_VERSION").exists(),
        "down without --purge keeps the data"
    );
    let st = lab.status();
    assert_eq!(st["database"]["state"], "down", "{st}");
    outputs.push(down);

    // Up again: the same data, served again.
    let up = lab.lab(&["up", "--nodes", "2"]);
    up.assert_code(0);
    let st = lab.status();
    assert_eq!(st["database"]["state"], "up", "{st}");
    assert_eq!(st["database"]["newest_migration"], newest.as_str());
    let pid = st["database"]["pid"].as_u64().unwrap();
    outputs.push(up);

    let log = std::fs::read_to_string(lab.dir.join("db/postgres.log")).unwrap();
    assert!(
        !log.contains(&password),
        "the server's log holds the password"
    );
    let purge = lab.lab(&["down", "--purge"]);
    purge.assert_code(0);
    assert!(gone(pid), "postgres {pid} still running after down --purge");
    assert!(!lab.dir.join("db").exists() && !password_file.exists());
    outputs.push(purge);
    for o in &outputs {
        assert!(
            !o.stdout.contains(&password) && !o.stderr.contains(&password),
            "{o:?}"
        );
    }
}

/// The server runs as `postgres`: a lab directory that user cannot reach is refused before
/// anything is created (exit 5), naming the directory to open.
#[test]
fn lab_with_db_refuses_a_dir_postgres_cannot_reach() {
    use crate::support::kamo::{Kamo, empty_home};
    use std::os::unix::fs::PermissionsExt;
    let home = empty_home();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let dir = home.path().join("lab");
    let r = Kamo::new(home.path())
        .args(["lab", "up", "--nodes", "1", "--with-db", "--dir"])
        .arg_path(&dir)
        .run();
    let created = dir.join("lab.json").exists();
    if created {
        // Take down whatever a wrong acceptance started before failing.
        Kamo::new(home.path())
            .args(["lab", "down", "--purge", "--dir"])
            .arg_path(&dir)
            .run();
    }
    r.assert_code(5);
    assert!(
        r.stderr
            .contains(&format!("cannot enter {}", home.path().display())),
        "{}",
        r.stderr
    );
    assert!(!created, "nothing is created");
}
