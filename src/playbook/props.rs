//! Property tests of the playbook side: the YAML tree reader, the playbook loader and the
//! template renderer. Any text is read or refused with a located error (exit 4 for files),
//! never a panic or a hang; JSON documents (which are YAML) read back as the same values;
//! text without markup renders to itself and a variable's value is never templated again.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::load::load_playbook;
use super::template::Templater;
use super::yaml;
use crate::error::{Error, ExitCode};
use crate::props::{bounded, soup};

const YAML_PIECES: &[&str] = &[
    "- ",
    "hosts: ",
    "all",
    "\n",
    "  ",
    "    ",
    "tasks:",
    "[",
    "]",
    "{",
    "}",
    ": ",
    ":",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "<<: ",
    "<<: *a",
    "\"",
    "'",
    "|",
    "|-",
    ">",
    "#",
    "!!str ",
    "!!int ",
    "!x ",
    "!vault ",
    "---\n",
    "...",
    "? ",
    ",",
    "{{",
    "}}",
    "command: ls",
    "when: ",
    "block:",
    "rescue:",
    "loop: ",
    "become: yes",
    "vars:",
    "name: ",
    "shell: echo",
    "\t",
    "é",
    "%",
    "@",
    "\\",
    "0755",
    "1e3",
    "~",
    "null",
    "- import_tasks: x\n",
    "- import_playbook: y\n",
    "handlers:",
    "notify: h",
    "register: r",
    "until: ",
    "retries: 9999999999999",
];

const TEMPLATE_PIECES: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    "{{-",
    "-}}",
    " if ",
    " else ",
    " endif ",
    " for ",
    " in ",
    " endfor ",
    " set ",
    " = ",
    "x",
    "items",
    "name",
    "|",
    "default(",
    "join(",
    "int",
    "string",
    "to_json",
    "from_json",
    "regex_replace(",
    "(",
    ")",
    "'",
    "\"",
    ",",
    "range(",
    "99999",
    "*",
    "~",
    "+",
    "-",
    "/",
    "//",
    "%",
    "**",
    "lookup(",
    ".",
    "[",
    "]",
    "not ",
    " and ",
    "==",
    "is defined",
    "loop",
    "macro ",
    "endmacro",
    "call",
    "raw",
    "endraw",
    "omit",
    "hostvars",
    "\n",
    "é",
    "\\",
    "0",
];

fn vars() -> Value {
    json!({
        "x": "a", "name": "node-01", "items": [1, 2, 3], "n": 5,
        "d": { "k": "v", "nested": { "l": [true, null] } },
    })
}

fn check_located(e: &Error, text: &str) {
    assert_eq!(e.exit_code(), ExitCode::Parse, "{e:?}");
    if let Error::Parse(l) = e {
        // Lines as YAML counts them: a lone CR is a line break too.
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        assert!(l.line <= text.lines().count() + 1, "{e}");
        if let (Some(shown), true) = (&l.source_line, l.line > 0) {
            assert_eq!(Some(shown.as_str()), text.lines().nth(l.line - 1), "{e}");
        }
    }
    let _ = e.render();
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn yaml_text_is_read_or_refused_with_a_place(text in prop_oneof![soup(YAML_PIECES, 80), ".{0,400}"]) {
        let t = text.clone();
        let r = bounded(&format!("{text:?}"), move || yaml::parse(&t).map(|n| n.map(|n| n.to_json(true))));
        if let Err(e) = r {
            prop_assert!(e.line >= 1 && e.col >= 1, "{:?}", e);
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn json_documents_read_back_as_the_same_value(v in json_value()) {
        let text = serde_json::to_string_pretty(&v).unwrap();
        let got = yaml::parse(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        let got = got.map_or(Value::Null, |n| n.to_json(false));
        prop_assert_eq!(got, v);
    }

    #[test]
    fn playbooks_load_or_are_refused_with_a_location(text in prop_oneof![soup(YAML_PIECES, 80), ".{0,400}"]) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("play.yml");
        std::fs::write(&path, &text).unwrap();
        let r = bounded(&format!("{text:?}"), move || load_playbook(&path).map(|_| ()));
        if let Err(e) = r {
            check_located(&e, &text);
        }
    }

    #[test]
    fn templates_render_or_fail_without_panicking(text in prop_oneof![soup(TEMPLATE_PIECES, 40), ".{0,200}"]) {
        let t = text.clone();
        let r = bounded(&format!("{text:?}"), move || {
            let tp = Templater::new();
            let v = vars();
            let a = tp.render_str(&t, &v).map(|_| ()).map_err(|e| e.to_string());
            let b = tp.eval_condition(&t, &v).map(|_| ()).map_err(|e| e.to_string());
            let _ = tp.check_syntax(&t);
            (a, b)
        });
        for e in [r.0.err(), r.1.err()].into_iter().flatten() {
            // `guard` turns a panic inside the engine into this message: a panic is a bug.
            prop_assert!(!e.contains("internal error"), "{}", e);
        }
    }

    #[test]
    fn text_without_markup_renders_to_itself(text in "[^{}%#]{0,200}") {
        let got = Templater::new().render_str(&text, &vars()).unwrap();
        prop_assert_eq!(got, Value::String(text));
    }

    #[test]
    fn a_variable_value_is_data_never_a_template(value in prop_oneof![soup(TEMPLATE_PIECES, 20), any::<String>()]) {
        let v = json!({ "v": value.clone() });
        let got = Templater::new().render_str("{{ v }}", &v).unwrap();
        prop_assert_eq!(&got, &Value::String(value.clone()));
        let got = Templater::new().render_str("<{{ v }}>", &v).unwrap();
        prop_assert_eq!(got, Value::String(format!("<{value}>")));
    }
}

#[test]
fn a_huge_playbook_is_refused_naming_the_file_and_the_limit() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("site.yml");
    std::fs::File::create(&p)
        .unwrap()
        .set_len(200 * 1024 * 1024)
        .unwrap();
    let e = load_playbook(&p).unwrap_err();
    assert_eq!(e.exit_code(), ExitCode::Parse);
    let msg = e.render();
    assert!(msg.contains("site.yml"), "{msg}");
    assert!(msg.contains("200 MiB") && msg.contains("64 MiB"), "{msg}");
}

#[test]
fn very_deep_nesting_is_refused_without_exhausting_the_stack() {
    for deep in [
        format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000)),
        format!("{}1{}", "{a: ".repeat(100_000), "}".repeat(100_000)),
        "- ".repeat(50_000) + "x",
    ] {
        let e = bounded("deep", move || yaml::parse(&deep).map(|_| ())).unwrap_err();
        // Our own limit, or the scanner's, whichever is reached first: both say why.
        assert!(
            e.message.contains("nesting deeper") || e.message.contains("recursion limit"),
            "{e:?}"
        );
    }
}
