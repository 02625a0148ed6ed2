//! `reboot` (and `systemctl reboot`) on a lab node: asks the lab supervisor to take this
//! node's sshd down and bring it back after a few seconds, which is what a real reboot looks
//! like to an SSH client. Like the real command, it returns at once.

use super::{Io, Node};

/// Files the request; the supervisor picks it up within a tenth of a second.
pub fn request(node: &Node, io: &mut Io) -> i32 {
    let ctl = node.lab_dir.join("ctl");
    let path = ctl.join(format!("{}.reboot", node.name));
    match std::fs::create_dir_all(&ctl).and_then(|()| std::fs::write(&path, "")) {
        Ok(()) => 0,
        Err(e) => {
            io.err(&format!(
                "Failed to talk to init daemon: {e} ({})\n",
                path.display()
            ));
            1
        }
    }
}

pub fn main(node: &Node, args: &[String], io: &mut Io) -> i32 {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        io.out("reboot [OPTIONS...]\n\nReboot the system.\n");
        return 0;
    }
    request(node, io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_a_request_for_the_supervisor() {
        let lab = tempfile::tempdir().unwrap();
        let node = Node {
            name: "node02".into(),
            lab_dir: lab.path().to_owned(),
            ..Node::default()
        };
        let mut io = Io::default();
        assert_eq!(main(&node, &[], &mut io), 0);
        assert!(lab.path().join("ctl/node02.reboot").exists());
    }
}
