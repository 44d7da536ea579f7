//! Where `tailor hash` reads and writes: files, standard input and output, the rejects file,
//! and the kept columns.

use crate::support::{Scratch, arg, counts, sha256_hex, summary, tailor};

const LIST: &str = "\
customer_id,E-Mail,Mobile,segment
c1,Ann.Lee@Example.com,(415) 555-0140,gold
c2,not-an-email,+1 415 555 0141,\"silver, old\"
c3,,,bronze
c4,bob@example.org,555,gold
";

fn expected_output() -> String {
    format!(
        "email_sha256,phone_sha256,customer_id,segment\n\
         {},{},c1,gold\n\
         ,{},c2,\"silver, old\"\n\
         ,,c3,bronze\n\
         {},,c4,gold\n",
        sha256_hex("ann.lee@example.com"),
        sha256_hex("+14155550140"),
        sha256_hex("+14155550141"),
        sha256_hex("bob@example.org"),
    )
}

const EXPECTED_REJECTS: &str = "\
line,column,reason
3,E-Mail,email_missing_at
4,,no_identifier
5,Mobile,phone_too_short
";

#[test]
fn files_in_files_out() {
    let dir = Scratch::new("files");
    let input = dir.write("list.csv", LIST);
    let output = dir.path("hashed.csv");
    let rejects = dir.path("rejects.csv");
    let run = tailor(
        [
            "hash",
            "--input",
            arg(&input),
            "--output",
            arg(&output),
            "--rejects",
            arg(&rejects),
            "--keep",
            "customer_id,segment",
        ],
        b"",
    );
    run.assert_success();
    assert_eq!(run.stdout, "");
    assert_eq!(std::fs::read_to_string(&output).unwrap(), expected_output());
    assert_eq!(std::fs::read_to_string(&rejects).unwrap(), EXPECTED_REJECTS);
    assert_eq!(dir.files(), ["hashed.csv", "list.csv", "rejects.csv"]);
    assert_eq!(
        summary(&run.stderr),
        counts(
            4,
            2,
            2,
            &[
                ("email_missing_at", 1),
                ("phone_too_short", 1),
                ("no_identifier", 1)
            ]
        )
    );
}

#[test]
fn short_options_and_repeated_keep() {
    let dir = Scratch::new("short");
    let input = dir.write("list.csv", LIST);
    let output = dir.path("hashed.csv");
    let run = tailor(
        [
            "hash",
            "-i",
            arg(&input),
            "-o",
            arg(&output),
            "--keep",
            "customer_id",
            "--keep",
            "SEGMENT",
        ],
        b"",
    );
    run.assert_success();
    // Kept columns are named as the input names them.
    assert_eq!(std::fs::read_to_string(&output).unwrap(), expected_output());
}

#[test]
fn standard_input_and_output() {
    let explicit = tailor(
        [
            "hash",
            "--input",
            "-",
            "--output",
            "-",
            "--keep",
            "customer_id,segment",
        ],
        LIST.as_bytes(),
    );
    explicit.assert_success();
    assert_eq!(explicit.stdout, expected_output());

    let implicit = tailor(["hash", "--keep", "customer_id,segment"], LIST.as_bytes());
    implicit.assert_success();
    assert_eq!(implicit.stdout, expected_output());
    // The summary goes to stderr, never into the data.
    assert!(implicit.stderr.contains("rows read"), "{}", implicit.stderr);
}

#[test]
fn a_file_in_and_standard_output_with_a_rejects_file() {
    let dir = Scratch::new("mixed");
    let input = dir.write("list.csv", LIST);
    let rejects = dir.path("rejects.csv");
    let run = tailor(
        [
            "hash",
            "--input",
            arg(&input),
            "--rejects",
            arg(&rejects),
            "--keep",
            "customer_id,segment",
        ],
        b"",
    );
    run.assert_success();
    assert_eq!(run.stdout, expected_output());
    assert_eq!(std::fs::read_to_string(&rejects).unwrap(), EXPECTED_REJECTS);
}

#[test]
fn an_existing_output_is_replaced() {
    let dir = Scratch::new("replace");
    let input = dir.write("list.csv", LIST);
    let output = dir.write("hashed.csv", "an older run\n".repeat(1000));
    let run = tailor(
        [
            "hash",
            "-i",
            arg(&input),
            "-o",
            arg(&output),
            "--keep",
            "customer_id,segment",
        ],
        b"",
    );
    run.assert_success();
    assert_eq!(std::fs::read_to_string(&output).unwrap(), expected_output());
    assert_eq!(dir.files(), ["hashed.csv", "list.csv"]);
}

#[test]
fn spreadsheet_exports_read_the_same() {
    // Semicolons, a byte-order mark and CRLF line ends, as a European spreadsheet writes them.
    let export = format!(
        "\u{FEFF}{}",
        LIST.replace(',', ";")
            .replace("\"silver; old\"", "\"silver, old\"")
            .replace('\n', "\r\n")
    );
    let dir = Scratch::new("export");
    let input = dir.write("export.csv", export);
    let rejects = dir.path("rejects.csv");
    let run = tailor(
        [
            "hash",
            "-i",
            arg(&input),
            "--rejects",
            arg(&rejects),
            "--keep",
            "customer_id,segment",
        ],
        b"",
    );
    run.assert_success();
    assert_eq!(run.stdout, expected_output());
    assert_eq!(std::fs::read_to_string(&rejects).unwrap(), EXPECTED_REJECTS);
}

#[test]
fn options_change_the_digests() {
    let list = "email,phone\nAnn.Lee+promo@gmail.com,020 7946 0142\n";
    let run = tailor(
        [
            "hash",
            "--region",
            "gb",
            "--phone-format",
            "digits",
            "--email-form",
            "gmail-canonical",
        ],
        list.as_bytes(),
    );
    run.assert_success();
    assert_eq!(
        run.stdout,
        format!(
            "email_sha256,phone_sha256\n{},{}\n",
            sha256_hex("annlee@gmail.com"),
            sha256_hex("442079460142")
        )
    );
}

#[test]
fn thread_counts_give_the_same_bytes() {
    let mut list = String::from("id,email\n");
    for i in 0..10_000 {
        if i % 9 == 0 {
            list.push_str(&format!("c{i},broken{i}\n"));
        } else {
            list.push_str(&format!("c{i},User{i}@Example.org\n"));
        }
    }
    let outputs: Vec<String> = ["1", "2", "4"]
        .into_iter()
        .map(|threads| {
            let run = tailor(
                ["hash", "--threads", threads, "--keep", "id"],
                list.as_bytes(),
            );
            run.assert_success();
            run.stdout
        })
        .collect();
    assert_eq!(outputs[0].lines().count(), 10_001);
    assert!(outputs[1] == outputs[0] && outputs[2] == outputs[0]);
    for (i, line) in outputs[0].lines().skip(1).enumerate() {
        let digest = if i % 9 == 0 {
            String::new()
        } else {
            sha256_hex(&format!("user{i}@example.org"))
        };
        assert_eq!(line, format!("{digest},c{i}"));
    }
}
