-- kamo's run journal, schema 1. One row per run, per file the run read, per host and task,
-- and per host lock. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    command         TEXT    NOT NULL,   -- the command line, secrets redacted
    user            TEXT    NOT NULL,
    pid             INTEGER NOT NULL,   -- the kamo process running it now
    pid_start       INTEGER,            -- that process's start time (/proc), to tell a reused pid
    kamo_version    TEXT    NOT NULL,
    playbook        TEXT    NOT NULL,   -- the first playbook's path
    playbook_hash   TEXT    NOT NULL,   -- SHA-256 over every playbook file's path and hash
    inventory_hash  TEXT    NOT NULL,   -- SHA-256 over every inventory file's path and hash
    extra_vars      TEXT    NOT NULL,   -- JSON, secrets redacted
    options         TEXT    NOT NULL,   -- JSON: what `kamo resume` needs to run it again
    state           TEXT    NOT NULL,   -- running, ok, failed, unreachable, interrupted, error
    message         TEXT,               -- why it ended that way
    started_at      INTEGER NOT NULL,
    ended_at        INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 1  -- 1 + how many times it was resumed
);

CREATE TABLE run_files (
    run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind    TEXT    NOT NULL,   -- playbook or inventory
    path    TEXT    NOT NULL,
    sha256  TEXT    NOT NULL,
    PRIMARY KEY (run_id, path)
);

CREATE TABLE results (
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    host        TEXT    NOT NULL,
    task_key    TEXT    NOT NULL,   -- file:line:col of the task, '#', its nth run on this host
    seq         INTEGER NOT NULL,   -- order of the task on this host
    task        TEXT    NOT NULL,   -- the task's name
    location    TEXT    NOT NULL,
    state       TEXT    NOT NULL,   -- pending, running, ok, changed, failed, skipped, unreachable
    attempt     INTEGER NOT NULL,   -- which attempt of the run (1 = the first, 2 = first resume)
    rerun       INTEGER NOT NULL DEFAULT 0,  -- sent again because it was in flight at a stop
    started_at  INTEGER,
    ended_at    INTEGER,
    rc          INTEGER,
    msg         TEXT,
    changed     INTEGER NOT NULL DEFAULT 0,
    ignored     INTEGER NOT NULL DEFAULT 0,  -- failed with ignore_errors
    rescued     INTEGER NOT NULL DEFAULT 0,  -- failed, then a rescue section ran for it
    register    TEXT,               -- JSON of the registered result (NULL when not kept)
    facts       TEXT,               -- JSON of set_fact results
    restorable  INTEGER NOT NULL DEFAULT 1,  -- 0: a secret was left out, resume runs it again
    stdout      TEXT    NOT NULL DEFAULT '',
    stderr      TEXT    NOT NULL DEFAULT '',
    stdout_size INTEGER NOT NULL DEFAULT 0,  -- bytes before the cap
    stderr_size INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, host, task_key)
);

CREATE INDEX results_by_seq ON results (run_id, host, seq);

CREATE TABLE host_locks (
    host        TEXT    PRIMARY KEY,
    run_id      INTEGER NOT NULL,
    pid         INTEGER NOT NULL,
    pid_start   INTEGER,
    user        TEXT    NOT NULL,
    started_at  INTEGER NOT NULL
);
