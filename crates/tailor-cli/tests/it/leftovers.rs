//! A failed run leaves no output behind: neither a file under the final name, which would look
//! finished, nor the temporary `.partial` file; and an older output stays as it was.

use crate::support::{Scratch, arg, tailor};

/// Inputs on which `tailor hash` fails after it has started writing its output.
const FAILING: &[(&str, &[u8], &[&str])] = &[
    ("no identifier column", b"id,name\nc1,Ann\n", &[]),
    ("header is data", b"ann@example.com,Ann\n", &[]),
    ("empty", b"", &[]),
    (
        "keep a missing column",
        b"email,id\nann@example.com,c1\n",
        &["--keep", "customer"],
    ),
    (
        "keep an identifier column",
        b"email,id\nann@example.com,c1\n",
        &["--keep", "email"],
    ),
];

#[test]
fn a_failed_run_leaves_no_output_file() {
    for (name, input, extra) in FAILING {
        let dir = Scratch::new("failed");
        let list = dir.write("list.csv", input);
        let output = dir.path("hashed.csv");
        let rejects = dir.path("rejects.csv");
        let mut args = vec![
            "hash",
            "--input",
            arg(&list),
            "--output",
            arg(&output),
            "--rejects",
            arg(&rejects),
        ];
        args.extend_from_slice(extra);
        tailor(&args, b"").assert_failure();
        assert_eq!(dir.files(), ["list.csv"], "{name}");
    }
}

#[test]
fn a_failed_run_on_standard_input_leaves_no_output_file() {
    let dir = Scratch::new("failed-stdin");
    let output = dir.path("hashed.csv");
    tailor(["hash", "--output", arg(&output)], b"id,name\nc1,Ann\n").assert_failure();
    assert!(dir.files().is_empty(), "{:?}", dir.files());
}

#[test]
fn a_read_error_leaves_no_output_file() {
    let dir = Scratch::new("unreadable");
    let input = dir.path("a-directory");
    std::fs::create_dir(&input).unwrap();
    let output = dir.path("hashed.csv");
    tailor(
        ["hash", "--input", arg(&input), "--output", arg(&output)],
        b"",
    )
    .assert_failure();
    assert_eq!(dir.files(), ["a-directory"]);
}

#[test]
fn a_failed_run_leaves_an_older_output_untouched() {
    let dir = Scratch::new("older");
    let older = "email_sha256\nfrom an earlier run\n";
    let output = dir.write("hashed.csv", older);
    let list = dir.write("list.csv", "id,name\nc1,Ann\n");
    tailor(["hash", "-i", arg(&list), "-o", arg(&output)], b"").assert_failure();
    assert_eq!(std::fs::read_to_string(&output).unwrap(), older);
    assert_eq!(dir.files(), ["hashed.csv", "list.csv"]);
}

#[test]
fn a_successful_run_leaves_no_partial_file() {
    let dir = Scratch::new("success");
    let list = dir.write("list.csv", "email\nann@example.com\nbroken\n");
    let output = dir.path("hashed.csv");
    let rejects = dir.path("rejects.csv");
    tailor(
        [
            "hash",
            "-i",
            arg(&list),
            "-o",
            arg(&output),
            "--rejects",
            arg(&rejects),
        ],
        b"",
    )
    .assert_success();
    assert_eq!(dir.files(), ["hashed.csv", "list.csv", "rejects.csv"]);
    let rejects = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(rejects, "line,column,reason\n3,email,email_missing_at\n");
}
