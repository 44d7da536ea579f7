//! Properties of the pipeline over random synthetic lists: one output row per input row, each
//! digest the SHA-256 of what `tailor_core` normalizes the cell to, and the same bytes whatever
//! the number of threads.

use proptest::prelude::*;
use tailor_core::{E164Phone, NormalizedEmail, PhoneFormat, Region};
use tailor_list::HashOptions;

use crate::support::{options, run, sha256_hex};

/// A cell as a person might have typed it: valid or not, with stray case and spaces.
fn email_cell() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => ("[ ]{0,2}", "[a-zA-Z][a-zA-Z0-9.+_-]{0,10}", prop_oneof![
            Just("example.com"),
            Just("Example.ORG"),
            Just("mail.example.org"),
        ], "[ \t]{0,2}")
            .prop_map(|(lead, local, domain, trail)| format!("{lead}{local}@{domain}{trail}")),
        1 => prop_oneof![
            Just("ann.example.com".to_owned()),
            Just("ann@".to_owned()),
            Just("@example.com".to_owned()),
            Just("a@b@example.com".to_owned()),
            Just("ann lee@example.com".to_owned()),
            Just("ann@example".to_owned()),
        ],
        1 => Just(String::new()),
    ]
}

fn phone_cell() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (0u32..100, prop_oneof![
            Just("+1 415 555 01"),
            Just("(415) 555-01"),
            Just("415.555.01"),
            Just("4155550"),
            Just("+44 20 7946 01"),
        ])
            .prop_map(|(n, prefix)| format!("{prefix}{n:02}")),
        1 => prop_oneof![
            Just("555-01".to_owned()),
            Just("12".to_owned()),
            Just("call me".to_owned()),
            Just("+999 555 0100".to_owned()),
            Just("+1 415 555 0100 ext. 12".to_owned()),
            "[0-9]{1,16}",
        ],
        1 => Just(String::new()),
    ]
}

/// A synthetic row: its cells, and how to write each cell.
#[derive(Clone, Debug)]
struct Row {
    id: u32,
    email: String,
    phone: String,
    quote: [bool; 3],
}

fn row() -> impl Strategy<Value = Row> {
    (any::<u32>(), email_cell(), phone_cell(), any::<[bool; 3]>()).prop_map(
        |(id, email, phone, quote)| Row {
            id,
            email,
            phone,
            quote,
        },
    )
}

fn cell(text: &str, quote: bool, delimiter: char) -> String {
    if quote || text.contains(delimiter) || text.contains('"') {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn list(rows: &[Row], delimiter: char, crlf: bool) -> Vec<u8> {
    let end = if crlf { "\r\n" } else { "\n" };
    let d = delimiter;
    let mut text = format!("id{d}email{d}phone{end}");
    for row in rows {
        let id = format!("c{}", row.id);
        text.push_str(&format!(
            "{}{d}{}{d}{}{end}",
            cell(&id, row.quote[0], d),
            cell(&row.email, row.quote[1], d),
            cell(&row.phone, row.quote[2], d),
        ));
    }
    text.into_bytes()
}

/// The digest cell `tailor_core` implies for an email cell.
fn expected_email(raw: &str) -> String {
    NormalizedEmail::parse(raw).map_or_else(|_| String::new(), |e| sha256_hex(e.as_str()))
}

fn expected_phone(raw: &str, format: PhoneFormat) -> String {
    E164Phone::parse(raw, Region::US)
        .map_or_else(|_| String::new(), |p| sha256_hex(p.formatted(format)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_row_comes_out_hashed_as_the_core_says(
        rows in proptest::collection::vec(row(), 0..40),
        delimiter in prop_oneof![Just(','), Just(';'), Just('\t')],
        crlf in any::<bool>(),
        digits in any::<bool>(),
    ) {
        let input = list(&rows, delimiter, crlf);
        let format = if digits { PhoneFormat::Digits } else { PhoneFormat::E164 };
        let options = |threads| HashOptions {
            phone_format: format,
            keep: vec!["id".to_owned()],
            ..options(threads)
        };
        let one = run(&input, &options(1)).unwrap();
        let three = run(&input, &options(3)).unwrap();
        prop_assert!(one.output == three.output, "threads change the output");
        prop_assert!(one.rejects == three.rejects, "threads change the rejects");
        prop_assert_eq!(&one.summary, &three.summary);

        let mut reader = csv::ReaderBuilder::new().from_reader(one.output.as_bytes());
        prop_assert_eq!(
            reader.headers().unwrap().iter().collect::<Vec<_>>(),
            ["email_sha256", "phone_sha256", "id"]
        );
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        prop_assert_eq!(records.len(), rows.len());

        let (mut emails, mut phones, mut refused) = (0, 0, 0);
        let mut rejects = String::from("line,column,reason\n");
        for (line, (row, record)) in (2..).zip(rows.iter().zip(&records)) {
            let email = expected_email(&row.email);
            let phone = expected_phone(&row.phone, format);
            prop_assert_eq!(&record[0], email.as_str(), "email {:?}", row.email);
            prop_assert_eq!(&record[1], phone.as_str(), "phone {:?}", row.phone);
            prop_assert_eq!(&record[2], format!("c{}", row.id));
            let email_given = !row.email.trim().is_empty();
            let phone_given = !row.phone.trim().is_empty();
            emails += u64::from(!email.is_empty());
            phones += u64::from(!phone.is_empty());
            refused += u64::from(email_given && email.is_empty());
            refused += u64::from(phone_given && phone.is_empty());
            refused += u64::from(!email_given && !phone_given);
            if let (true, Err(reason)) = (email_given, NormalizedEmail::parse(&row.email)) {
                rejects.push_str(&format!("{line},email,{}\n", reason.code()));
            }
            if let (true, Err(reason)) = (phone_given, E164Phone::parse(&row.phone, Region::US)) {
                rejects.push_str(&format!("{line},phone,{}\n", reason.code()));
            }
            if !email_given && !phone_given {
                rejects.push_str(&format!("{line},,no_identifier\n"));
            }
        }
        prop_assert_eq!(&one.rejects, &rejects);
        prop_assert_eq!(one.summary.rows, rows.len() as u64);
        prop_assert_eq!(one.summary.emails, emails);
        prop_assert_eq!(one.summary.phones, phones);
        prop_assert_eq!(one.summary.rejected.total(), refused);
    }
}
