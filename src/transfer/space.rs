//! Free-space preflight for a migration: does each target have room for what it receives?
//!
//! The needed figure is what the source directory *allocates* (`du -B1`, st_blocks), not the
//! sum of apparent sizes: a data set of many small files (MinIO, a Git server) occupies a whole
//! block for each one, plus its directories, and apparent sizes undercount that by a wide
//! margin. The one case where allocated bytes undercount is a sparse file whose holes the copy
//! fills in; the transfer keeps holes (`tar --sparse`), and [`super::manifest::Manifest`]
//! records both figures for a caller that wants the larger one. Block sizes of source and
//! target may differ a little, hence the margin in [`check_fits`].
//!
//! The target directory usually does not exist yet, so [`free_command`] asks `df` about its
//! nearest existing parent: the file system that will hold it.

use std::fmt::Write as _;

use super::manifest::{quote_dir, require_dir};

/// The command line that prints the bytes allocated by `dir` (absolute) and everything below
/// it, on one file system, hard links counted once. Exits
/// [`MISSING`](super::manifest::MISSING) like [`super::manifest::command`] when `dir` is
/// missing or not a directory, 1 when `du` fails.
pub fn usage_command(dir: &str) -> Result<String, String> {
    let d = quote_dir(dir)?;
    Ok(format!(
        "LC_ALL=C; export LC_ALL; d={d}; {}cd -P -- \"$d\" || exit 1; du -s -x -B1 . || exit 1",
        require_dir()
    ))
}

/// Reads `du -s -B1` output: `BYTES<TAB>.`.
pub fn parse_usage(stdout: &[u8]) -> Result<u64, String> {
    let text = std::str::from_utf8(stdout).map_err(|_| "du printed non-text".to_owned())?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    match (lines.next(), lines.next()) {
        (Some(line), None) => line
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("du printed `{}`, not a byte count", line.escape_debug())),
        _ => Err(format!(
            "du printed `{}`, not one line",
            text.escape_debug()
        )),
    }
}

/// The command line that prints the bytes free (`df`'s "Avail": without the blocks reserved
/// for root, the conservative figure) on the file system that would hold `path` (absolute):
/// that of `path` or, when it does not exist yet, of its nearest existing parent.
pub fn free_command(path: &str) -> Result<String, String> {
    let p = quote_dir(path)?;
    // dirname ends at `/`, which exists; the count bounds the loop all the same.
    Ok(format!(
        "LC_ALL=C; export LC_ALL; p={p}; i=0; \
         while [ ! -e \"$p\" ] && [ \"$i\" -lt 4096 ]; do p=$(dirname -- \"$p\"); i=$((i+1)); done; \
         df -B1 --output=avail -- \"$p\""
    ))
}

/// Reads `df --output=avail` output: a header line, then the byte count.
pub fn parse_free(stdout: &[u8]) -> Result<u64, String> {
    let text = std::str::from_utf8(stdout).map_err(|_| "df printed non-text".to_owned())?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    match lines[..] {
        [header, value] if header.trim() == "Avail" => value
            .trim()
            .parse()
            .map_err(|_| format!("df printed `{}`, not a byte count", value.escape_debug())),
        _ => Err(format!(
            "df printed `{}`, not a header and a byte count",
            text.escape_debug()
        )),
    }
}

/// Whether `needed` bytes plus `margin_percent` fit in `free` bytes at `place` (e.g.
/// `node05:/srv/nfs`); the error gives both figures in binary units.
pub fn check_fits(place: &str, needed: u64, free: u64, margin_percent: u32) -> Result<(), String> {
    let margin = (u128::from(needed) * u128::from(margin_percent)).div_ceil(100);
    if u128::from(free) >= u128::from(needed) + margin {
        return Ok(());
    }
    let (mut n, mut f) = (human_bytes(needed), human_bytes(free));
    if n == f {
        // Rounded alike, they would read as if it fitted.
        let _ = write!(n, " ({needed} bytes)");
        let _ = write!(f, " ({free} bytes)");
    }
    let plus = if margin_percent > 0 {
        format!(" plus a {margin_percent}% margin")
    } else {
        String::new()
    };
    Err(format!("needs {n}{plus}, {f} free on {place}"))
}

/// Bytes in binary units with one decimal: `512 B`, `1.5 KiB`, `2.1 GiB`.
#[must_use]
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut unit = 1024u128;
    for name in UNITS {
        let tenths = (u128::from(n) * 10 + unit / 2) / unit;
        // Move up a unit rather than print `1024.0 KiB`.
        if tenths < 10240 || name == "EiB" {
            return format!("{}.{} {name}", tenths / 10, tenths % 10);
        }
        unit *= 1024;
    }
    unreachable!("the last unit returns")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::manifest;

    fn sh(cmd: &str) -> std::process::Output {
        std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(cmd)
            .output()
            .expect("run /bin/sh")
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(human_bytes(2_254_857_830), "2.1 GiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn fits_or_says_both_figures() {
        let gib = 1u64 << 30;
        assert_eq!(check_fits("n:/d", gib, gib, 0), Ok(()));
        assert_eq!(check_fits("n:/d", 0, 0, 10), Ok(()));
        assert_eq!(
            check_fits("node05:/srv/nfs", 2_254_857_830, 3 * gib / 2, 5),
            Err("needs 2.1 GiB plus a 5% margin, 1.5 GiB free on node05:/srv/nfs".to_owned())
        );
        // Fits without the margin, not with it.
        assert_eq!(
            check_fits("n:/d", gib, gib + 1, 1),
            Err(
                "needs 1.0 GiB (1073741824 bytes) plus a 1% margin, 1.0 GiB (1073741825 bytes) \
                 free on n:/d"
                    .to_owned()
            )
        );
        assert_eq!(check_fits("n:/d", 100 * gib, 101 * gib, 1), Ok(()));
        assert!(check_fits("n:/d", u64::MAX, u64::MAX, 100).is_err());
    }

    #[test]
    fn usage_is_allocated_bytes_and_matches_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a"), vec![7u8; 10_000]).unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        for i in 0..50 {
            std::fs::write(root.join(format!("sub/{i}")), b"x").unwrap();
        }
        std::fs::hard_link(root.join("a"), root.join("sub/a-link")).unwrap();
        let sparse = std::fs::File::create(root.join("sparse")).unwrap();
        sparse.set_len(64 << 20).unwrap();
        drop(sparse);
        let d = root.to_str().unwrap();
        let out = sh(&usage_command(d).unwrap());
        assert!(out.status.success(), "{out:?}");
        let used = parse_usage(&out.stdout).unwrap();
        // 51 one-byte files take a block each: far more than their 51 apparent bytes.
        assert!(used >= 51 * 512 + 10_000, "{used}");
        assert!(
            used < 64 << 20,
            "the sparse file's holes are not counted: {used}"
        );
        let m = sh(&manifest::command(d).unwrap());
        let m = manifest::parse(&m.stdout).unwrap();
        assert_eq!(used, m.allocated_bytes());
        assert_eq!(m.total_bytes(), 10_000 + 50 + (64 << 20));
    }

    #[test]
    fn usage_of_a_missing_directory_exits_3() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let out = sh(&usage_command(gone.to_str().unwrap()).unwrap());
        assert_eq!(out.status.code(), Some(3));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("{}: no such file or directory", gone.display())));
        std::fs::write(&gone, b"").unwrap();
        let out = sh(&usage_command(gone.to_str().unwrap()).unwrap());
        assert_eq!(out.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
    }

    #[test]
    fn free_space_of_a_path_that_does_not_exist_yet() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let parent = parse_free(&sh(&free_command(d).unwrap()).stdout).unwrap();
        let child = sh(&free_command(&format!("{d}/not/yet 'there'")).unwrap());
        assert!(child.status.success(), "{child:?}");
        let child = parse_free(&child.stdout).unwrap();
        assert!(parent > 0);
        // Same file system; other builds on the machine may write meanwhile.
        assert!(parent.abs_diff(child) < 1 << 30, "{parent} vs {child}");
        // A path below /proc would be on procfs, which has no free bytes: the walk really
        // measures the nearest existing parent.
        let proc = parse_free(&sh(&free_command("/proc/kamo/none").unwrap()).stdout).unwrap();
        assert_eq!(proc, 0);
    }

    #[test]
    fn bad_paths_and_outputs_are_refused() {
        assert!(usage_command("relative/dir").is_err());
        assert!(free_command("").is_err());
        assert!(usage_command("/a\0b").is_err());
        assert_eq!(parse_usage(b"4096\t.\n"), Ok(4096));
        assert!(parse_usage(b"").is_err());
        assert!(parse_usage(b"x\t.\n").is_err());
        assert!(parse_usage(b"1\t.\n2\t.\n").is_err());
        assert_eq!(parse_free(b"    Avail\n 12345\n"), Ok(12345));
        assert!(parse_free(b" 12345\n").is_err());
        assert!(parse_free(b"    Avail\n-1\n").is_err());
        assert!(parse_free(&[0xff]).is_err());
    }
}
