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

#[test]
fn a_pipe_as_output_is_written_in_place_and_stays_a_pipe() {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;

    let dir = Scratch::new("fifo");
    let fifo = dir.path("out.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            std::fs::File::open(fifo)
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            text
        })
    };
    let list = dir.write("list.csv", "email\nann@example.com\n");
    tailor(["hash", "-i", arg(&list), "-o", arg(&fifo)], b"").assert_success();
    let text = reader.join().unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(dir.files(), ["list.csv", "out.fifo"]);
}

#[test]
fn a_symbolic_link_as_output_keeps_the_link_and_fills_its_target() {
    let dir = Scratch::new("symlink");
    let target = dir.write("real.csv", "older\n");
    let link = dir.path("link.csv");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let list = dir.write("list.csv", "email\nann@example.com\n");
    tailor(["hash", "-i", arg(&list), "-o", arg(&link)], b"").assert_success();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(text.starts_with("email_sha256\n"), "{text}");
    assert_eq!(dir.files(), ["link.csv", "list.csv", "real.csv"]);
}
