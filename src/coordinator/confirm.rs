//! Typed confirmations before destructive steps.
//!
//! A y/n question is answered by reflex at 3 a.m., and `yes | kamo clean all` answers it for
//! every cluster in reach. So a destructive verb names every host it will touch and what it
//! destroys, then asks the operator to type the cluster's name (its first `kube-master` host, or
//! the single host): typing it proves the inventory is the one they meant. Anything else stops.
//!
//! Where the answer comes from: the terminal when stdin is one; otherwise one line read from
//! stdin (so a test or a careful script can answer), and with nothing to read the verb refuses
//! and points at `--yes`, the explicit "I know" for scripts.

use std::io::{BufRead, IsTerminal, Write};

use crate::error::{Error, Result};

/// What the operator is asked to confirm.
pub struct Question<'a> {
    /// What will happen, e.g. "uninstall Kubernetes and the app from every host".
    pub action: &'a str,
    /// The hosts it touches, in inventory order.
    pub hosts: &'a [String],
    /// What is lost, one line each.
    pub destroys: &'a [String],
    /// The word to type.
    pub word: &'a str,
}

/// Asks, unless `yes`; `Ok(())` means go on. `stdin_taken` says stdin carries something else
/// (a password), so it cannot carry the answer.
pub fn ask(q: &Question<'_>, yes: bool, stdin_taken: bool) -> Result<()> {
    let summary = summary(q);
    if yes {
        crate::ui::eprint_line(&summary);
        crate::ui::eprint_line("confirmed by --yes");
        return Ok(());
    }
    let stdin = std::io::stdin();
    let answer = if stdin.is_terminal() {
        crate::ui::eprint_line(&summary);
        dialoguer::Input::<String>::new()
            .with_prompt(format!("Type {} to go on, anything else stops", q.word))
            .allow_empty(true)
            .interact_text()
            .map_err(|e| Error::Other(format!("cannot read the confirmation: {e}")))?
    } else if stdin_taken {
        return Err(Error::Usage(format!(
            "{summary}\nstdin carries the password, so it cannot carry the confirmation: \
             pass --yes to confirm"
        )));
    } else {
        crate::ui::eprint_line(&summary);
        eprint!("Type {} to go on, anything else stops: ", q.word);
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| Error::Other(format!("cannot read the confirmation: {e}")))?;
        if line.is_empty() {
            eprintln!();
            return Err(Error::Usage(
                "no confirmation: stdin is not a terminal and gave no answer; pass --yes to \
                 confirm from a script"
                    .into(),
            ));
        }
        line
    };
    check(answer.trim(), q.word)
}

/// The text shown before the question.
#[must_use]
pub fn summary(q: &Question<'_>) -> String {
    let mut s = format!(
        "kamo is about to {} on {} host(s):\n",
        q.action,
        q.hosts.len()
    );
    for h in q.hosts {
        s.push_str(&format!("  - {h}\n"));
    }
    if !q.destroys.is_empty() {
        s.push_str("This destroys:\n");
        for d in q.destroys {
            s.push_str(&format!("  - {d}\n"));
        }
    }
    s.trim_end().to_owned()
}

fn check(answer: &str, word: &str) -> Result<()> {
    if answer == word {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "not confirmed (typed {answer:?}, expected {word:?}): nothing was changed"
        )))
    }
}

/// The word to type for an inventory: the first `kube-master` host, else the first host.
#[must_use]
pub fn word_for(inventory: &crate::inventory::Inventory, hosts: &[String]) -> String {
    inventory
        .select("kube-master")
        .ok()
        .and_then(|m| m.into_iter().next())
        .or_else(|| hosts.first().cloned())
        .unwrap_or_else(|| "yes".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_word_confirms() {
        assert!(check("master1", "master1").is_ok());
        for wrong in ["y", "yes", "Master1", "master", ""] {
            let e = check(wrong, "master1").unwrap_err();
            assert!(e.to_string().contains("nothing was changed"), "{e}");
        }
    }

    #[test]
    fn the_summary_names_every_host_and_what_is_lost() {
        let hosts = vec!["m1".to_owned(), "c1".to_owned()];
        let lost = vec!["Kubernetes on every host".to_owned()];
        let s = summary(&Question {
            action: "clean all",
            hosts: &hosts,
            destroys: &lost,
            word: "m1",
        });
        assert!(
            s.contains("on 2 host(s)") && s.contains("  - m1\n  - c1"),
            "{s}"
        );
        assert!(
            s.contains("This destroys:\n  - Kubernetes on every host"),
            "{s}"
        );
    }
}
