//! Property tests of the inventory readers (INI, YAML) and the host-pattern parser: any text
//! is read or refused with a located parse error, never a panic or a hang; generated
//! inventories read back as written; generated patterns select what set algebra says.

use std::collections::BTreeSet;
use std::path::Path;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::Inventory;
use crate::error::Error;
use crate::props::{bounded, soup};

const INI_PIECES: &[&str] = &[
    "[",
    "]",
    ":",
    "=",
    "'",
    "\"",
    "#",
    ";",
    "\\",
    "\t",
    " ",
    "\n",
    "\r\n",
    "web",
    "vars",
    "children",
    "[web]\n",
    "[web:vars]\n",
    "[web:children]\n",
    "[all:vars]\n",
    "node",
    "[1:3]",
    "[01:10]",
    "[a:c]",
    "[0:99999]",
    "[1:5:2]",
    "[:",
    "h:22",
    ":99999",
    "a=1",
    "x='a b'",
    "y=[1,2]",
    "z={'k': 1}",
    "True",
    "None",
    "0x1f",
    "1e5",
    "-0",
    "é",
    "ansible_host=",
];

const YAML_INV_PIECES: &[&str] = &[
    "all:",
    "children:",
    "hosts:",
    "vars:",
    "web:",
    "node[1:3]:",
    "h1:",
    "\n",
    "  ",
    "    ",
    "- ",
    ": ",
    "~",
    "null",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a ",
    "*a",
    "<<: *a",
    "'",
    "\"",
    "#",
    "---\n",
    "ansible_port: 22",
    "k: v",
    "!!str ",
    "|",
    ">",
    "? ",
    "1",
    "yes",
    "é",
];

/// The located parse error of an inventory (exit 4), or a failure of the property.
fn assert_located(r: &Result<Inventory, Error>, text: &str) {
    if let Err(e) = r {
        match e {
            Error::Parse(l) => {
                assert!(
                    l.line <= text.lines().count() + 1,
                    "line {} is past the text: {e}",
                    l.line
                );
                assert!(!l.message.is_empty());
                let _ = e.to_string();
            }
            other => panic!("not a parse error: {other:?}"),
        }
    }
}

/// An inventory description: hosts (name, groups it is in, its variables).
type Spec = Vec<(String, BTreeSet<usize>, Vec<(String, Value)>)>;

const GROUPS: &[&str] = &["web", "db", "gpu", "edge"];

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u32>().prop_map(Value::from),
        // A leading letter and no Python literal keyword: Ansible keeps these as strings.
        "v[a-z0-9_.-]{0,12}".prop_map(Value::from),
        "v[a-z0-9 ]{0,12}[a-z]".prop_map(Value::from),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    proptest::collection::btree_map(
        "h[a-z0-9-]{0,10}",
        (
            proptest::collection::btree_set(0..GROUPS.len(), 0..3),
            proptest::collection::btree_map("k[a-z0-9_]{0,8}", value(), 0..4),
        ),
        1..12,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(h, (g, v))| (h, g, v.into_iter().collect()))
            .collect()
    })
}

fn ini_of(spec: &Spec) -> String {
    let mut s = String::new();
    let line = |h: &str, vars: &[(String, Value)]| {
        let mut l = h.to_owned();
        for (k, v) in vars {
            match v {
                Value::String(t) => l.push_str(&format!(" {k}='{t}'")),
                other => l.push_str(&format!(" {k}={other}")),
            }
        }
        l + "\n"
    };
    // Ungrouped hosts first (before any section), then each group's hosts.
    for (h, groups, vars) in spec {
        if groups.is_empty() {
            s.push_str(&line(h, vars));
        }
    }
    for (gi, g) in GROUPS.iter().enumerate() {
        s.push_str(&format!("[{g}]\n"));
        for (h, groups, vars) in spec {
            if groups.contains(&gi) {
                s.push_str(&line(h, vars));
            }
        }
    }
    s
}

fn yaml_of(spec: &Spec) -> String {
    let host = |vars: &[(String, Value)]| {
        Value::Object(vars.iter().cloned().collect::<serde_json::Map<_, _>>())
    };
    let mut ungrouped = serde_json::Map::new();
    let mut children = serde_json::Map::new();
    for (h, groups, vars) in spec {
        if groups.is_empty() {
            ungrouped.insert(h.clone(), host(vars));
        }
    }
    for (gi, g) in GROUPS.iter().enumerate() {
        let mut hosts = serde_json::Map::new();
        for (h, groups, vars) in spec {
            if groups.contains(&gi) {
                hosts.insert(h.clone(), host(vars));
            }
        }
        children.insert((*g).to_owned(), json!({ "hosts": hosts }));
    }
    let doc = json!({ "all": { "hosts": ungrouped, "children": children } });
    serde_yaml::to_string(&doc).expect("serialize the generated inventory")
}

fn assert_reads_back(inv: &Inventory, spec: &Spec) {
    let mut names: Vec<&str> = inv.hosts().map(|h| h.name.as_str()).collect();
    names.sort_unstable();
    let mut want: Vec<&str> = spec.iter().map(|(h, _, _)| h.as_str()).collect();
    want.sort_unstable();
    assert_eq!(names, want);
    for (h, groups, vars) in spec {
        let in_groups: BTreeSet<usize> = (0..GROUPS.len())
            .filter(|gi| inv.group(GROUPS[*gi]).is_some_and(|g| g.hosts.contains(h)))
            .collect();
        assert_eq!(&in_groups, groups, "groups of {h}");
        let got = inv.vars_for(h);
        for (k, v) in vars {
            assert_eq!(got.get(k), Some(v), "{h}: {k}");
        }
    }
}

/// A pattern and the hosts it must select.
#[derive(Debug, Clone)]
enum Term {
    Group(usize),
    Host(usize),
    /// `h<prefix>*`: hosts whose name starts with `h<prefix>`.
    Glob(String),
}

fn pattern() -> impl Strategy<Value = Vec<(char, Term)>> {
    let term = prop_oneof![
        (0..GROUPS.len()).prop_map(Term::Group),
        (0usize..12).prop_map(Term::Host),
        "[0-9]{0,1}".prop_map(Term::Glob),
    ];
    proptest::collection::vec((proptest::sample::select(vec![' ', '&', '!']), term), 1..6)
}

proptest! {
    #[test]
    fn ini_text_is_read_or_refused_with_a_line(text in prop_oneof![soup(INI_PIECES, 60), ".{0,300}"]) {
        let t = text.clone();
        let r = bounded(&format!("{text:?}"), move || Inventory::from_ini(&t, Path::new("h.ini")));
        assert_located(&r, &text);
    }

    #[test]
    fn yaml_inventory_is_read_or_refused_with_a_line(text in prop_oneof![soup(YAML_INV_PIECES, 60), ".{0,300}"]) {
        let t = text.clone();
        let r = bounded(&format!("{text:?}"), move || Inventory::from_yaml(&t, Path::new("h.yml")));
        assert_located(&r, &text);
    }

    #[test]
    fn generated_ini_inventories_read_back(spec in spec()) {
        let text = ini_of(&spec);
        let inv = Inventory::from_ini(&text, Path::new("h.ini"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_reads_back(&inv, &spec);
    }

    #[test]
    fn generated_yaml_inventories_read_back(spec in spec()) {
        let text = yaml_of(&spec);
        let inv = Inventory::from_yaml(&text, Path::new("h.yml"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_reads_back(&inv, &spec);
    }

    #[test]
    fn any_pattern_selects_or_is_refused(pat in prop_oneof![
        soup(&["web", "db", ":", "&", "!", "*", "?", "~", "[", "]", "0", "-1", ":", ",", "h1", "^", "(", ")", "\\"], 30),
        ".{0,60}",
    ]) {
        let inv = Inventory::from_ini("h1\n[web]\nh2\nh3\n[db]\nh3\n", Path::new("h.ini")).unwrap();
        let p = pat.clone();
        let r = bounded(&format!("{pat:?}"), move || inv.select(&p).map(|v| v.len()));
        if let Ok(n) = r {
            prop_assert!(n <= 3);
        }
    }

    #[test]
    fn generated_patterns_select_what_set_algebra_says(
        memberships in proptest::collection::vec(proptest::collection::btree_set(0..GROUPS.len(), 0..3), 12),
        pat in pattern(),
    ) {
        let names: Vec<String> = (0..12).map(|i| format!("h{i}")).collect();
        let spec: Spec = names.iter().cloned().zip(memberships).map(|(h, g)| (h, g, Vec::new())).collect();
        let inv = Inventory::from_ini(&ini_of(&spec), Path::new("h.ini")).unwrap();
        let hosts_of = |t: &Term| -> BTreeSet<String> {
            match t {
                Term::Group(g) => spec.iter().filter(|(_, gs, _)| gs.contains(g)).map(|(h, _, _)| h.clone()).collect(),
                Term::Host(i) => BTreeSet::from([names[*i].clone()]),
                Term::Glob(p) => names.iter().filter(|h| h.starts_with(&format!("h{p}"))).cloned().collect(),
            }
        };
        let word = |t: &Term| match t {
            Term::Group(g) => GROUPS[*g].to_owned(),
            Term::Host(i) => names[*i].clone(),
            Term::Glob(p) => format!("h{p}*"),
        };
        let all: BTreeSet<String> = names.iter().cloned().collect();
        let unions: Vec<&Term> = pat.iter().filter(|(op, _)| *op == ' ').map(|(_, t)| t).collect();
        let mut want: BTreeSet<String> = if unions.is_empty() {
            all
        } else {
            unions.iter().flat_map(|t| hosts_of(t)).collect()
        };
        for (op, t) in &pat {
            match op {
                '&' => want = want.intersection(&hosts_of(t)).cloned().collect(),
                '!' => want = want.difference(&hosts_of(t)).cloned().collect(),
                _ => {}
            }
        }
        let text: Vec<String> = pat.iter().map(|(op, t)| match op {
            ' ' => word(t),
            o => format!("{o}{}", word(t)),
        }).collect();
        let text = text.join(":");
        let got: BTreeSet<String> = inv.select(&text).unwrap_or_else(|e| panic!("{text}: {e}")).into_iter().collect();
        prop_assert_eq!(got, want, "pattern {}", text);
    }
}

#[test]
fn ranges_that_expand_past_the_memory_bound_are_refused_with_their_line() {
    // 400 lines of 100,000 hosts each: 40 million hosts from a 10 KiB file.
    let mut text = String::from("[big]\n");
    for i in 0..400 {
        text.push_str(&format!("n{i}x[0:99999] some_var=some_value\n"));
    }
    let start = std::time::Instant::now();
    let e = Inventory::from_ini(&text, Path::new("big.ini")).unwrap_err();
    let Error::Parse(l) = &e else { panic!("{e:?}") };
    assert!(l.message.contains("256 MiB"), "{e}");
    assert!(l.line > 2 && l.line < 400, "{e}");
    assert!(start.elapsed() < std::time::Duration::from_secs(60));
    let mut yaml = String::from("all:\n  hosts:\n");
    for i in 0..400 {
        yaml.push_str(&format!("    n{i}x[0:99999]: {{some_var: some_value}}\n"));
    }
    let e = Inventory::from_yaml(&yaml, Path::new("big.yml")).unwrap_err();
    assert!(e.to_string().contains("256 MiB"), "{e}");
}

#[test]
fn yaml_inventory_alias_bombs_and_deep_nesting_are_refused() {
    let mut text = String::from("all:\n  vars:\n    a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        text.push_str(&format!(
            "    a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let start = std::time::Instant::now();
    let r = bounded("alias bomb", move || {
        Inventory::from_yaml(&text, Path::new("bomb.yml")).map(|_| ())
    });
    let e = r.unwrap_err();
    assert!(matches!(e, Error::Parse(_)), "{e:?}");
    // Said in words that name the cause, not only the parser's "repetition limit exceeded".
    assert!(e.to_string().contains("billion laughs"), "{e}");
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    let deep = format!(
        "all:\n  vars:\n    x: {}1{}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let e = bounded("deep", move || {
        Inventory::from_yaml(&deep, Path::new("deep.yml")).map(|_| ())
    })
    .unwrap_err();
    assert!(matches!(e, Error::Parse(_)), "{e:?}");
    assert!(e.to_string().contains("nests deeper"), "{e}");
}

#[test]
fn a_huge_inventory_file_is_refused_naming_the_file_and_the_limit() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("hosts.ini");
    std::fs::File::create(&p)
        .unwrap()
        .set_len(200 * 1024 * 1024)
        .unwrap();
    let e = Inventory::load(std::slice::from_ref(&p)).unwrap_err();
    assert_eq!(e.exit_code(), crate::error::ExitCode::Parse);
    let msg = e.to_string();
    assert!(msg.contains("hosts.ini"), "{msg}");
    assert!(
        msg.contains("200 MiB") && msg.contains("more than the 64 MiB"),
        "{msg}"
    );
}
