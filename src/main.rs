//! The `kamo` binary: parse arguments, set up logging, run the command, map errors to
//! Ansible's exit codes. Everything else lives in the library.

use std::process::ExitCode as ProcessExit;

use clap::Parser;
use kamo::cli::{Cli, Command, DbCommand, InventoryCommand, LabCommand};
use kamo::error::{Error, ExitCode};

fn main() -> ProcessExit {
    // On a lab node kamo also stands in for apt-get, systemctl, kubeadm, ... (by its name).
    let mut words = std::env::args();
    if let Some(tool) = words
        .next()
        .as_deref()
        .and_then(kamo::lab::standin::called_as)
    {
        let args: Vec<String> = words.collect();
        let code = kamo::lab::standin::main(tool, &args);
        return ProcessExit::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => ExitCode::Ok,
                _ => ExitCode::Usage,
            };
            let _ = e.print();
            return ProcessExit::from(code as u8);
        }
    };
    init_tracing(cli.verbose);
    // A socket per host: 1,000 hosts need more than the usual soft limit of 1,024 files.
    let _ = kamo::transport::limits::raise();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", e.render());
            e.exit_code()
        }
    };
    ProcessExit::from(code as u8)
}

fn run(cli: Cli) -> Result<ExitCode, Error> {
    // Vault passwords are read (or asked) before any inventory or playbook is.
    if let Some(v) = cli.command.vault() {
        kamo::vault::keyring::install_from(v.ask, &v.ids, &v.password_files)?;
        // A resume installs the secret-name patterns itself: its run's, read from the journal,
        // and these.
        if !matches!(cli.command, Command::Resume(_)) {
            kamo::secret::install_patterns(&v.secret_vars)?;
        }
    }
    match cli.command {
        Command::Inventory(InventoryCommand::List(a)) => kamo::commands::inventory::list(&a),
        Command::Inventory(InventoryCommand::Graph(a)) => kamo::commands::inventory::graph(&a),
        Command::Exec(a) => runtime()?.block_on(kamo::commands::exec::run(a)),
        Command::Copy(a) => runtime()?.block_on(kamo::commands::copy::run(a)),
        Command::Migrate(a) => runtime()?.block_on(kamo::commands::migrate::run(a, cli.verbose)),
        Command::Run(a) => runtime()?.block_on(kamo::commands::run::run(a, cli.verbose)),
        Command::Plan(a) => kamo::commands::plan::run(&a),
        Command::SyntaxCheck(a) => kamo::commands::run::syntax_check(&a),
        Command::Resume(a) => runtime()?.block_on(kamo::commands::resume::run(a, cli.verbose)),
        Command::History(a) => runtime()?.block_on(kamo::commands::history::history(&a)),
        Command::Show(a) => runtime()?.block_on(kamo::commands::history::show(&a)),
        Command::Log(a) => runtime()?.block_on(kamo::commands::history::log(&a)),
        Command::Lab(LabCommand::Up(a)) => runtime()?.block_on(kamo::commands::lab::up(&a)),
        Command::Lab(LabCommand::Status(a)) => runtime()?.block_on(kamo::commands::lab::status(&a)),
        Command::Lab(LabCommand::Down(a)) => runtime()?.block_on(kamo::commands::lab::down(&a)),
        Command::Lab(LabCommand::Fault(a)) => runtime()?.block_on(kamo::commands::lab::fault(&a)),
        Command::Lab(LabCommand::Node(a)) => kamo::commands::lab::node(&a),
        Command::Configure(a) => kamo::commands::configure::run(&a),
        Command::Deploy(a) => {
            runtime()?.block_on(kamo::commands::lifecycle::deploy(a, cli.verbose))
        }
        Command::Clean(a) => runtime()?.block_on(kamo::commands::lifecycle::clean(a, cli.verbose)),
        Command::Update(a) => {
            runtime()?.block_on(kamo::commands::lifecycle::update(a, cli.verbose))
        }
        Command::Rebuild(a) => {
            runtime()?.block_on(kamo::commands::lifecycle::rebuild(a, cli.verbose))
        }
        Command::Credentials(a) => {
            runtime()?.block_on(kamo::commands::lifecycle::credentials(a, cli.verbose))
        }
        Command::Check(a) => runtime()?.block_on(kamo::commands::check::run(a)),
        Command::Versions(a) => kamo::commands::versions::run(&a),
        Command::Completions(a) => Ok(kamo::commands::docs::completions(&a)),
        Command::Man(a) => kamo::commands::docs::man(&a),
        Command::Rollback(a) => runtime()?.block_on(kamo::commands::db::rollback(a, cli.verbose)),
        Command::MigrateDb(a) => runtime()?.block_on(kamo::commands::db::migrate(a, cli.verbose)),
        Command::Db(DbCommand::Status(a)) => runtime()?.block_on(kamo::commands::db::status(a)),
        Command::Db(DbCommand::Restore(a)) => runtime()?.block_on(kamo::commands::db::restore(a)),
        Command::Lab(LabCommand::Disk(a)) => kamo::commands::lab::disk(&a),
        Command::Lab(LabCommand::Supervise(a)) => runtime()?.block_on(
            kamo::commands::lab::supervise(&a.dir.unwrap_or_else(|| "lab".into())),
        ),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))
}

/// Warnings by default; `-v` info, `-vv` debug, `-vvv` trace; `KAMO_LOG` overrides.
fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KAMO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},russh=warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
}
