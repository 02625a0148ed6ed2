//! `kamo completions SHELL` and `kamo man`: generated from the same clap definitions the
//! parser uses (clap_complete, clap_mangen), so they cannot drift from the real flags.

use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::error::{Error, ExitCode, Result};

#[must_use]
pub fn completions(args: &CompletionsArgs) -> ExitCode {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "kamo", &mut std::io::stdout());
    ExitCode::Ok
}

pub fn man(args: &ManArgs) -> Result<ExitCode> {
    let cmd = Cli::command();
    match &args.dir {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|e| Error::Other(format!("cannot render the manual page: {e}")))?;
            crate::ui::print_text(String::from_utf8_lossy(&out).trim_end());
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
            write_pages(&cmd, dir)?;
            crate::ui::print_text(&format!("manual pages written to {}", dir.display()));
        }
    }
    Ok(ExitCode::Ok)
}

fn write_pages(cmd: &clap::Command, dir: &Path) -> Result<()> {
    clap_mangen::generate_to(cmd.clone(), dir)
        .map_err(|e| Error::io("cannot write manual pages into", dir, e))
}
