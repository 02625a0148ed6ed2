//! The manifest command run for real (`sh -c` here: GNU find, sha256sum, xargs) on a tree of
//! awkward names and kinds, checked field by field against `lstat`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::Digest;

use super::*;

fn sh(cmd: &str) -> Output {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("run /bin/sh")
}

/// Runs a program with arguments given as bytes (no shell quoting in the way).
fn run(program: &str, args: &[&[u8]]) {
    let out = Command::new(program)
        .args(args.iter().map(|a| OsStr::from_bytes(a)))
        .output()
        .expect("run a program");
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
}

fn p(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(rel))
}

fn manifest_of(root: &Path) -> Manifest {
    let out = sh(&command(root.to_str().unwrap()).unwrap());
    assert!(out.status.success(), "{out:?}");
    parse(&out.stdout).unwrap_or_else(|e| panic!("{e}"))
}

const NAMES: [&[u8]; 9] = [
    b"a b.txt",
    b"new\nline",
    b"bad\xff\xfename",
    b"back\\slash",
    b"\\n-not-a-newline",
    b"cr\rname",
    b"\x1b[2Jevil",
    b"-rf",
    b"sub/deeper/file",
];

/// The awkward tree: names, links, a sparse file, special kinds and modes.
fn build(root: &Path) {
    std::fs::create_dir_all(root.join("many")).unwrap();
    for i in 0..300 {
        std::fs::write(root.join(format!("many/{i}")), format!("{i}")).unwrap();
    }
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    for name in NAMES {
        std::fs::write(p(root, name), [name, b" content"].concat()).unwrap();
    }
    std::os::unix::fs::symlink("a b.txt", root.join("link")).unwrap();
    std::os::unix::fs::symlink(
        OsStr::from_bytes(b"nowhere/\xff at all"),
        root.join("dangling"),
    )
    .unwrap();
    std::fs::write(root.join("hard1"), b"shared").unwrap();
    std::fs::hard_link(root.join("hard1"), root.join("sub/hard2")).unwrap();
    let sparse = std::fs::File::create(root.join("sparse")).unwrap();
    sparse.set_len(64 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&sparse, b"data", 1 << 20).unwrap();
    drop(sparse);
    std::fs::create_dir(root.join("empty")).unwrap();
    run("mkfifo", &[root.join("fifo").as_os_str().as_bytes()]);
    std::fs::write(root.join("suid"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(root.join("suid"), PermissionsExt::from_mode(0o4755)).unwrap();
    std::fs::create_dir(root.join("sticky")).unwrap();
    std::fs::set_permissions(root.join("sticky"), PermissionsExt::from_mode(0o1777)).unwrap();
    std::fs::create_dir(root.join("setgid")).unwrap();
    std::fs::set_permissions(root.join("setgid"), PermissionsExt::from_mode(0o2750)).unwrap();
    // Fixed symlink times, so a re-created link can get the same one.
    for l in ["link", "dangling"] {
        run(
            "touch",
            &[
                b"-h",
                b"-d",
                b"@1600000000",
                root.join(l).as_os_str().as_bytes(),
            ],
        );
    }
}

/// Every path below `root` (relative, `.` for root itself) with its lstat.
fn walk(root: &Path) -> BTreeMap<Vec<u8>, std::fs::Metadata> {
    let mut out = BTreeMap::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let abs = root.join(&rel);
        let md = std::fs::symlink_metadata(&abs).unwrap();
        if md.is_dir() {
            for e in std::fs::read_dir(&abs).unwrap() {
                todo.push(rel.join(e.unwrap().file_name()));
            }
        }
        let key = if rel.as_os_str().is_empty() {
            b".".to_vec()
        } else {
            rel.as_os_str().as_bytes().to_vec()
        };
        out.insert(key, md);
    }
    out
}

#[test]
fn lists_every_entry_exactly_as_lstat_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("src");
    build(&root);
    let m = manifest_of(&root);
    let seen = walk(&root);
    assert_eq!(
        m.entries.keys().collect::<Vec<_>>(),
        seen.keys().collect::<Vec<_>>()
    );
    for (path, md) in &seen {
        let e = &m.entries[path];
        let at = show(path);
        let ft = md.file_type();
        let kind = if ft.is_file() {
            Kind::File
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink
        } else {
            Kind::Fifo
        };
        assert_eq!(e.kind, kind, "{at}");
        assert_eq!(e.mode, md.mode() & 0o7777, "{at}");
        assert_eq!((e.uid, e.gid), (md.uid(), md.gid()), "{at}");
        assert_eq!(e.size, md.size(), "{at}");
        assert_eq!(e.mtime, md.mtime(), "{at}");
        assert_eq!(e.allocated, md.blocks() * 512, "{at}");
        let abs = p(&root, path);
        let target = ft.is_symlink().then(|| {
            std::fs::read_link(&abs)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec()
        });
        assert_eq!(e.target, target, "{at}");
        let sha = ft
            .is_file()
            .then(|| crate::journal::hex(&sha2::Sha256::digest(std::fs::read(&abs).unwrap())));
        assert_eq!(e.sha256, sha, "{at}");
        let linked = ft.is_file() && md.nlink() > 1;
        assert_eq!(e.link.is_some(), linked, "{at}");
    }
    // The cases spelled out.
    let hard = Some(b"hard1".to_vec());
    assert_eq!(m.entries[b"hard1".as_slice()].link, hard);
    assert_eq!(m.entries[b"sub/hard2".as_slice()].link, hard);
    assert_eq!(m.entries[b"suid".as_slice()].mode, 0o4755);
    assert_eq!(m.entries[b"sticky".as_slice()].mode, 0o1777);
    assert_eq!(m.entries[b"setgid".as_slice()].mode, 0o2750);
    assert_eq!(m.entries[b"fifo".as_slice()].kind, Kind::Fifo);
    assert_eq!(m.entries[b"empty".as_slice()].kind, Kind::Dir);
    assert_eq!(
        m.entries[b"dangling".as_slice()].target.as_deref(),
        Some(b"nowhere/\xff at all".as_slice())
    );
    assert_eq!(m.entries[b"link".as_slice()].mtime, 1_600_000_000);
    let sparse = &m.entries[b"sparse".as_slice()];
    assert_eq!(sparse.size, 64 << 20);
    assert!(sparse.allocated < 1 << 20, "{}", sparse.allocated);
    for name in NAMES {
        let want = crate::journal::hex(&sha2::Sha256::digest([name, b" content"].concat()));
        assert_eq!(
            m.entries[name].sha256.as_ref(),
            Some(&want),
            "{}",
            show(name)
        );
    }
    assert_eq!(m.files(), 300 + NAMES.len() + 4);
    // hard1 and sub/hard2 count once.
    let names: u64 = NAMES.iter().map(|n| n.len() as u64 + 8).sum();
    let many: u64 = (0..300).map(|i: u64| i.to_string().len() as u64).sum();
    assert_eq!(m.total_bytes(), many + names + 6 + (64 << 20) + 10);
}

#[test]
fn saved_manifests_load_equal_and_stay_private() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("src");
    build(&root);
    let m = manifest_of(&root);
    let file = dir.path().join("src.manifest");
    m.save(&file).unwrap();
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(Manifest::load(&file).unwrap(), m);
    // Saving again replaces the file; no temporary file is left behind.
    m.save(&file).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    let text = std::fs::read_to_string(&file).unwrap();
    // Readable where it can be, exact where it cannot.
    assert!(text.contains(r#""path":"new\nline""#), "{text}");
    assert!(
        text.contains(r#""path":{"hex":"626164fffe6e616d65"}"#),
        "{text}"
    );

    let cut = text.lines().take(5).collect::<Vec<_>>().join("\n");
    std::fs::write(&file, cut).unwrap();
    let e = Manifest::load(&file).unwrap_err().to_string();
    assert!(e.contains("4 entries where the header announces"), "{e}");
    let mut lines: Vec<&str> = text.lines().collect();
    lines[3] = r#"{"path":"x","kind":"file","mode":"9999"}"#;
    std::fs::write(&file, lines.join("\n")).unwrap();
    let e = Manifest::load(&file).unwrap_err().to_string();
    assert!(e.contains(":4: bad entry"), "{e}");
    lines[3] = r#"{"path":"../x","kind":"file","mode":"0644","uid":0,"gid":0,"size":0,"mtime":0,"allocated":0}"#;
    std::fs::write(&file, lines.join("\n")).unwrap();
    let e = Manifest::load(&file).unwrap_err().to_string();
    assert!(
        e.contains(":4: bad entry: `../x` is not a relative path"),
        "{e}"
    );
    std::fs::write(&file, "{}\n").unwrap();
    let e = Manifest::load(&file).unwrap_err().to_string();
    assert!(e.contains(":1: not a kamo manifest"), "{e}");
}

/// Sets `path`'s mtime (symlinks themselves) to that of `like`.
fn same_time(path: &Path, like: &Path) {
    run(
        "touch",
        &[
            b"-h",
            b"-r",
            like.as_os_str().as_bytes(),
            path.as_os_str().as_bytes(),
        ],
    );
}

#[test]
fn a_copy_has_no_differences_and_each_change_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    build(&src);
    run(
        "cp",
        &[
            b"-a",
            src.as_os_str().as_bytes(),
            dst.as_os_str().as_bytes(),
        ],
    );
    let source = manifest_of(&src);
    assert_eq!(diff(&source, &manifest_of(&dst)), vec![]);

    // Content, same size, same mtime.
    std::fs::write(dst.join("a b.txt"), b"A b.txt content").unwrap();
    same_time(&dst.join("a b.txt"), &src.join("a b.txt"));
    // Mode.
    std::fs::set_permissions(dst.join("suid"), PermissionsExt::from_mode(0o755)).unwrap();
    // Owner (root only can give files away).
    let root_user = nix::unistd::geteuid().is_root();
    if root_user {
        std::os::unix::fs::lchown(dst.join("-rf"), Some(65534), None).unwrap();
    }
    // Mtime of a file with a newline in its name.
    run(
        "touch",
        &[
            b"-d",
            b"@981173106",
            p(&dst, b"new\nline").as_os_str().as_bytes(),
        ],
    );
    // Symlink target (its time kept).
    std::fs::remove_file(dst.join("link")).unwrap();
    std::os::unix::fs::symlink("back\\slash", dst.join("link")).unwrap();
    same_time(&dst.join("link"), &src.join("link"));
    // A hard link broken into two copies.
    run(
        "cp",
        &[
            b"-p",
            dst.join("sub/hard2").as_os_str().as_bytes(),
            dst.join("sub/hard2.tmp").as_os_str().as_bytes(),
        ],
    );
    std::fs::rename(dst.join("sub/hard2.tmp"), dst.join("sub/hard2")).unwrap();
    // Removed, added, kind changed, size changed.
    std::fs::remove_file(dst.join("many/17")).unwrap();
    std::fs::write(dst.join("zzz-new"), b"").unwrap();
    std::fs::remove_dir(dst.join("empty")).unwrap();
    std::fs::write(dst.join("empty"), b"").unwrap();
    std::fs::write(p(&dst, b"\x1b[2Jevil"), b"longer than before").unwrap();
    same_time(&p(&dst, b"\x1b[2Jevil"), &p(&src, b"\x1b[2Jevil"));
    // Directory times are not compared.
    run(
        "touch",
        &[b"-d", b"@1", dst.join("sticky").as_os_str().as_bytes()],
    );

    let target = manifest_of(&dst);
    let diffs = diff(&source, &target);
    let text: Vec<String> = diffs.iter().map(ToString::to_string).collect();
    let sha = |p: &Path| crate::journal::hex(&sha2::Sha256::digest(std::fs::read(p).unwrap()));
    let (a, b) = (sha(&src.join("a b.txt")), sha(&dst.join("a b.txt")));
    let new_line_time = humantime::format_rfc3339_seconds(
        std::fs::symlink_metadata(p(&src, b"new\nline"))
            .unwrap()
            .modified()
            .unwrap(),
    );
    let mut want = vec![
        // Paths in byte order: ESC sorts before `-`.
        "\\x1b[2Jevil: size differs (16 vs 18 bytes)".to_owned(),
        "-rf: owner differs (uid:gid 0:0 vs 65534:0)".to_owned(),
        format!(
            "a b.txt: content differs (sha256 {}… vs {}…)",
            &a[..12],
            &b[..12]
        ),
        "empty: a directory in the source, a file on the target".to_owned(),
        "hard1: hard links differ (source: in the hard-link group of hard1; target: not \
         hard-linked)"
            .to_owned(),
        "link: symlink target differs (a b.txt vs back\\\\slash)".to_owned(),
        "many/17: missing on the target".to_owned(),
        format!("new\\nline: mtime differs ({new_line_time} vs 2001-02-03T04:05:06Z)"),
        "sub/hard2: hard links differ (source: in the hard-link group of hard1; target: not \
         hard-linked)"
            .to_owned(),
        "suid: mode differs (4755 vs 0755)".to_owned(),
        "zzz-new: on the target but not in the source".to_owned(),
    ];
    if !root_user {
        want.retain(|w| !w.contains("owner differs"));
    }
    assert_eq!(text, want);
    assert_eq!(
        summary(&diffs, 2),
        format!(
            "{}\n{}\n... and {} more ({} differences in all)",
            want[0],
            want[1],
            want.len() - 2,
            want.len()
        )
    );
    assert_eq!(summary(&diffs, 100), want.join("\n"));
    assert_eq!(summary(&[], 3), "");
}

#[test]
fn a_missing_directory_exits_3_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("no such dir");
    let out = sh(&command(gone.to_str().unwrap()).unwrap());
    assert_eq!(out.status.code(), i32::try_from(MISSING).ok());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("kamo: {}: no such file or directory\n", gone.display())
    );
    assert!(out.stdout.is_empty());
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let out = sh(&command(file.to_str().unwrap()).unwrap());
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("kamo: {}: not a directory\n", file.display())
    );
    assert!(command("relative").is_err());
    assert!(command("/nul\0byte").is_err());
}

#[test]
fn a_symlinked_directory_is_followed_at_the_top_only() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    build(&real);
    let via = dir.path().join("via");
    std::os::unix::fs::symlink(&real, &via).unwrap();
    assert_eq!(manifest_of(&via), manifest_of(&real));
}

#[test]
fn parse_refuses_cut_and_garbled_output_without_panicking() {
    const ALPHABET: &[u8] = b"f d0 7\\\n.:=sha256end-x\0\0";
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    std::fs::create_dir(&root).unwrap();
    for name in [b"a\nb".as_slice(), b"c\\d", b"e\xff"] {
        std::fs::write(p(&root, name), name).unwrap();
    }
    std::os::unix::fs::symlink("a", root.join("l")).unwrap();
    let out = sh(&command(root.to_str().unwrap()).unwrap()).stdout;
    assert!(parse(&out).is_ok());
    // Every strict prefix is refused.
    for n in 0..out.len() {
        assert!(parse(&out[..n]).is_err(), "prefix of {n} bytes accepted");
    }
    // Every single-byte corruption is parsed or refused, never a panic.
    for i in 0..out.len() {
        for b in [0u8, b'\n', b'\\', b' ', b'.', b'9', 0xff] {
            let mut bad = out.clone();
            bad[i] = b;
            let _ = parse(&bad);
        }
    }
    // Garbage.
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    for len in 0..2000 {
        let bytes: Vec<u8> = (0..len % 300)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ALPHABET[usize::try_from(x % ALPHABET.len() as u64).unwrap()]
            })
            .collect();
        let _ = parse(&bytes);
    }
    // Located errors.
    let e = parse(b"d 755 0 0 4096 1.5 8 1:2\0\0\0f 7a8 0 0 1 2.0 8 1:3\0x\ny\0\0").unwrap_err();
    assert_eq!(
        e,
        "manifest record 2 (byte 27): x\\ny: mode `7a8` is not octal permission bits"
    );
    let e = parse(b"d 755 0 0 4096 1.5 8 1:2\0\0\0f 644 0 0 1 2.0 8 1:3\0x\0\0=sha256\0=end\0")
        .unwrap_err();
    assert!(e.contains("x: a regular file without a sha256"), "{e}");
    for bad in [
        b"/etc/passwd".as_slice(),
        b"a/../../b",
        b"a//b",
        b"./a",
        b"a/",
    ] {
        let mut out = b"d 755 0 0 4096 1.5 8 1:2\0\0\0f 644 0 0 0 2.0 0 1:3\0".to_vec();
        out.extend_from_slice(bad);
        out.extend_from_slice(b"\0\0=sha256\0=end\0");
        let e = parse(&out).unwrap_err();
        assert!(
            e.ends_with("not a relative path below the directory"),
            "{e}"
        );
    }
    let e = parse(b"d 755 0 0 4096 1.5 8 1:2\0\0\0=sha256\0zz  ./x\n=end\0").unwrap_err();
    assert_eq!(e, "manifest sha256 line 1: not a sha256sum line: `zz  ./x`");
}

#[test]
fn mtimes_round_down() {
    assert_eq!(parse_mtime("1700000000.9999999999"), Some(1_700_000_000));
    assert_eq!(parse_mtime("5"), Some(5));
    assert_eq!(parse_mtime("-1.5000000000"), Some(-2));
    assert_eq!(parse_mtime("-1.0000000000"), Some(-1));
    assert_eq!(parse_mtime("-0.5"), Some(-1));
    for bad in ["", "-", ".5", "1.2.3", "+1", "1e3", "99999999999999999999"] {
        assert_eq!(parse_mtime(bad), None, "{bad}");
    }
}

#[test]
fn names_are_shown_terminal_safe() {
    assert_eq!(show(b"photos/a b.jpg"), "photos/a b.jpg");
    assert_eq!(show(b"a\nb\\c\td\re"), "a\\nb\\\\c\\td\\re");
    assert_eq!(show(b"\x1b[2J\x7f"), "\\x1b[2J\\x7f");
    assert_eq!(show(b"bad\xff\xfe"), "bad\\xff\\xfe");
    assert_eq!(
        show("日本\u{9b}x\u{202e}y".as_bytes()),
        "日本\\u{9b}x\\u{202e}y"
    );
}

#[test]
fn hashes_cover_several_xargs_batches() {
    // 1500 names of 150 bytes: over 200 KiB of arguments, more than one xargs batch.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    std::fs::create_dir(&root).unwrap();
    for i in 0..1500 {
        std::fs::write(root.join(format!("{i:0>150}")), i.to_string()).unwrap();
    }
    let m = manifest_of(&root);
    assert_eq!(m.files(), 1500);
    let name = format!("{:0>150}", 1499);
    let want = crate::journal::hex(&sha2::Sha256::digest(b"1499"));
    assert_eq!(m.entries[name.as_bytes()].sha256.as_ref(), Some(&want));
}

#[test]
fn parse_reads_the_escapes_of_old_and_new_sha256sum() {
    let h = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let mut out = b"d 755 0 0 4096 1.5 8 1:2\0\0\0".to_vec();
    for (i, name) in [b"cr\rold".as_slice(), b"cr\rnew", b"a\\b\nc"]
        .iter()
        .enumerate()
    {
        out.extend_from_slice(format!("f 644 0 0 0 2.0 0 1:{i}\0").as_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(b"\0\0");
    }
    out.extend_from_slice(b"=sha256\0");
    // coreutils 8.28 leaves CR alone; 9.x escapes it; both escape `\` and newline.
    out.extend_from_slice(format!("{h}  ./cr\rold\n").as_bytes());
    out.extend_from_slice(format!("\\{h}  ./cr\\rnew\n").as_bytes());
    out.extend_from_slice(format!("\\{h} *./a\\\\b\\nc\n").as_bytes());
    out.extend_from_slice(b"=end\0");
    let m = parse(&out).unwrap_or_else(|e| panic!("{e}"));
    for name in [b"cr\rold".as_slice(), b"cr\rnew", b"a\\b\nc"] {
        assert_eq!(m.entries[name].sha256.as_deref(), Some(h), "{}", show(name));
    }
    let bad = String::from_utf8_lossy(&out).replace("\\\\b", "\\tb");
    assert!(parse(bad.as_bytes()).unwrap_err().contains("sha256 line 3"));
}

/// The Python hasher the command prefers writes exactly what `sha256sum` writes, escapes
/// included, for every awkward name: the manifest is the same whichever a node has.
#[test]
fn the_python_hasher_prints_what_sha256sum_prints() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    build(&root);
    let quoted = crate::transport::quote::quote(root.to_str().unwrap()).unwrap();
    let py = crate::transport::quote::quote(HASHER).unwrap();
    let list = "find . -xdev -type f -print0 | LC_ALL=C sort -z";
    let a = sh(&format!("cd {quoted} && {list} | python3 -c {py}"));
    let b = sh(&format!("cd {quoted} && {list} | xargs -0 -r sha256sum --"));
    assert!(a.status.success() && b.status.success(), "{a:?} {b:?}");
    assert!(a.stdout.len() > 300 * 66, "too little output");
    assert_eq!(
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout)
    );
}
