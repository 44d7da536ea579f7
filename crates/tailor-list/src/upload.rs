//! Reading an advertiser's upload (CSV or NDJSON) into the SHA-256 digests to look up.
//!
//! The server matches an upload against the index of eligible identifiers, which holds keyed
//! digests of every convention: email basic and Gmail-canonical, phone with and without `+`.
//! [`UploadReader`] turns each data row into all the SHA-256 digests the row can match under,
//! normalizing raw values with the same core code as `tailor hash` and taking a hashed value as
//! it is (whoever hashed it chose the convention). A row is one person: its digests travel
//! together in one [`UploadRow`], held inline, with no allocation per row for hashed input.
//!
//! CSV is read by the same [`ListReader`] as `tailor hash` (header, delimiter, aliases, BOM,
//! quoting). NDJSON is one JSON object per line with the same field names, read line by line
//! with a line limit, so that memory stays bounded whatever the size of the body. The reader is
//! plain `std::io::Read`, to run on a blocking thread fed by an async body.
//!
//! Bad rows never stop an upload: they are counted by [`RejectReason`] in [`UploadCounts`]. Only
//! an upload that cannot be read as a whole is a [`ListError`]. Nothing here prints or logs, and
//! no count or error carries a value from the upload.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};

use csv::ByteRecord;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use tailor_core::{IdentifierKind, PhoneFormat, Region, RejectCounts, RejectReason, Sha256Digest};

use crate::columns::Column;
use crate::error::ListError;
use crate::reader::ListReader;
use crate::row::{Identifier, identifier_cells};

/// The longest NDJSON line, and the longest CSV record, an upload may hold.
///
/// A row of identifiers (plus a few columns the advertiser keeps) is well under a kilobyte; a
/// longer line is refused (NDJSON, where the next line is easy to find) or fails the upload
/// (CSV, where it means a quote left open and nothing after it can be read as rows).
pub const MAX_ROW_BYTES: usize = 1 << 20;

/// The NDJSON read buffer.
const NDJSON_BUFFER: usize = 64 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The format of an upload's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UploadFormat {
    /// A CSV list with a header row, as `tailor hash` reads it.
    Csv,
    /// One JSON object per line with the identifier field names of the CSV header.
    Ndjson,
}

impl UploadFormat {
    /// The format a `Content-Type` names, ignoring parameters such as `; charset=utf-8` and
    /// case: `text/csv`, or `application/x-ndjson`, `application/ndjson`, `application/jsonl`.
    pub fn from_content_type(content_type: &str) -> Option<UploadFormat> {
        let essence = content_type
            .split_once(';')
            .map_or(content_type, |(essence, _)| essence)
            .trim();
        let is = |name: &str| essence.eq_ignore_ascii_case(name);
        if is("text/csv") {
            Some(Self::Csv)
        } else if is("application/x-ndjson") || is("application/ndjson") || is("application/jsonl")
        {
            Some(Self::Ndjson)
        } else {
            None
        }
    }

    /// The media type to name the format by (in documentation and error bodies).
    pub const fn media_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv",
            Self::Ndjson => "application/x-ndjson",
        }
    }
}

/// One data row of an upload: its line and every SHA-256 digest it can match under.
///
/// A refused row (and a row whose every identifier was refused) has no digests. The digests are
/// distinct, and hold at most an email's two forms and a phone's two formats.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct UploadRow {
    line: u64,
    digests: [Sha256Digest; UploadRow::MAX_DIGESTS],
    len: u8,
}

impl UploadRow {
    /// The most digests a row has: email basic and Gmail-canonical, phone with and without `+`.
    pub const MAX_DIGESTS: usize = 4;

    const EMPTY: Sha256Digest = Sha256Digest::from_bytes([0; 32]);

    fn new(line: u64) -> Self {
        Self {
            line,
            digests: [Self::EMPTY; Self::MAX_DIGESTS],
            len: 0,
        }
    }

    /// The line the row starts on (1-based, physical: blank lines and, for CSV, the header and
    /// line breaks inside quoted fields count).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The digests to look up, each once: for an email its basic form then (for Gmail, when it
    /// differs) its canonical form; for a phone `+` then digits; a hashed value as given.
    pub fn digests(&self) -> &[Sha256Digest] {
        &self.digests[..usize::from(self.len)]
    }

    /// Whether the row has at least one valid identifier.
    pub fn is_accepted(&self) -> bool {
        self.len > 0
    }

    fn push(&mut self, digest: Sha256Digest) {
        let len = usize::from(self.len);
        if len < Self::MAX_DIGESTS && !self.digests[..len].contains(&digest) {
            self.digests[len] = digest;
            self.len += 1;
        }
    }

    fn push_identifier(&mut self, identifier: &Identifier) {
        match identifier {
            Identifier::Email(email) => {
                self.push(email.sha256());
                if let Some(canonical) = email.gmail_canonical() {
                    self.push(canonical.sha256());
                }
            }
            Identifier::Phone(phone) => {
                self.push(phone.sha256(PhoneFormat::E164));
                self.push(phone.sha256(PhoneFormat::Digits));
            }
            Identifier::EmailDigest(digest) | Identifier::PhoneDigest(digest) => self.push(*digest),
        }
    }
}

impl fmt::Debug for UploadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Digests identify people as well as the identifiers do: only their number is shown.
        f.debug_struct("UploadRow")
            .field("line", &self.line)
            .field("digests", &self.len)
            .finish()
    }
}

/// What an upload held, so far: every count is exact, and none says what matched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UploadCounts {
    /// Data rows read (not the CSV header, not blank lines), refused ones included.
    pub rows_received: u64,
    /// Rows with at least one valid identifier.
    pub rows_accepted: u64,
    /// Refused rows and cells, by reason. A row with two refused cells counts twice.
    pub rejected: RejectCounts,
}

/// An upload being read, row by row.
///
/// ```
/// use tailor_core::Region;
/// use tailor_list::{UploadFormat, UploadReader};
///
/// let body = b"{\"email\":\"Jane.Doe@gmail.com\",\"customer_id\":7}\n{\"phone\":null}\n";
/// let mut upload = UploadReader::new(&body[..], UploadFormat::Ndjson, Region::US)?;
/// let row = upload.next_row()?.expect("a first row");
/// assert_eq!(row.digests().len(), 2); // jane.doe@gmail.com and janedoe@gmail.com
/// let refused = upload.next_row()?.expect("a second row");
/// assert!(!refused.is_accepted());
/// assert!(upload.next_row()?.is_none());
/// assert_eq!(upload.counts().rows_received, 2);
/// assert_eq!(upload.counts().rows_accepted, 1);
/// # Ok::<(), tailor_list::ListError>(())
/// ```
pub struct UploadReader<R: Read> {
    source: Source<R>,
    region: Region,
    counts: UploadCounts,
    /// Set after an error: the upload is over.
    failed: bool,
}

enum Source<R: Read> {
    Csv {
        // Boxed: the CSV parser's state is several times the size of the NDJSON reader's.
        reader: Box<ListReader<R>>,
        record: ByteRecord,
    },
    Ndjson(Lines<R>),
}

impl<R: Read> fmt::Debug for UploadReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = match self.source {
            Source::Csv { .. } => UploadFormat::Csv,
            Source::Ndjson(_) => UploadFormat::Ndjson,
        };
        f.debug_struct("UploadReader")
            .field("format", &format)
            .field("region", &self.region)
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

impl<R: Read> UploadReader<R> {
    /// Starts reading `input`; `region` reads phone numbers written without `+`.
    ///
    /// For CSV this reads the header row and fails as `tailor hash` does (no header, no
    /// identifier column, two columns of one kind, ...). NDJSON has no header: an empty body is
    /// an upload of no rows.
    pub fn new(input: R, format: UploadFormat, region: Region) -> Result<Self, ListError> {
        let source = match format {
            UploadFormat::Csv => Source::Csv {
                reader: Box::new(ListReader::new(input)?.with_record_limit(MAX_ROW_BYTES)),
                record: ByteRecord::new(),
            },
            UploadFormat::Ndjson => Source::Ndjson(Lines::new(input)),
        };
        Ok(Self {
            source,
            region,
            counts: UploadCounts::default(),
            failed: false,
        })
    }

    /// The next data row; `None` at the end of the upload.
    ///
    /// Every data row comes out, refused ones with no digests, so that `rows_received` is the
    /// number of rows handed out. After an error the upload is over: later calls return `None`.
    pub fn next_row(&mut self) -> Result<Option<UploadRow>, ListError> {
        if self.failed {
            return Ok(None);
        }
        let row = match &mut self.source {
            Source::Csv { reader, record } => read_csv_row(reader, record, self.region),
            Source::Ndjson(lines) => read_ndjson_row(lines, self.region),
        };
        match row {
            Ok(Some(read)) => Ok(Some(self.count(read))),
            Ok(None) => Ok(None),
            Err(error) => {
                self.failed = true;
                Err(error)
            }
        }
    }

    /// The counts of the rows read so far.
    pub fn counts(&self) -> &UploadCounts {
        &self.counts
    }

    /// The counts, once the upload is read.
    pub fn into_counts(self) -> UploadCounts {
        self.counts
    }

    fn count(&mut self, read: RowRead) -> UploadRow {
        self.counts.rows_received += 1;
        self.counts.rows_accepted += u64::from(read.row.is_accepted());
        for reason in read.rejected.into_iter().flatten() {
            self.counts.rejected.add(reason);
        }
        read.row
    }
}

impl<R: Read> Iterator for UploadReader<R> {
    type Item = Result<UploadRow, ListError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_row().transpose()
    }
}

/// A row as read, with the refusals it adds to the counts: a row-level reason, or up to one
/// per identifier cell.
struct RowRead {
    row: UploadRow,
    rejected: [Option<RejectReason>; 2],
}

impl RowRead {
    fn refused(line: u64, reason: RejectReason) -> Self {
        Self {
            row: UploadRow::new(line),
            rejected: [Some(reason), None],
        }
    }

    /// Parses the identifier cells of a row (email first), none of them blank.
    fn of_cells(line: u64, cells: [Option<(Column, &str)>; 2], region: Region) -> Self {
        let mut read = Self {
            row: UploadRow::new(line),
            rejected: [None, None],
        };
        let mut any = false;
        for (slot, cell) in read.rejected.iter_mut().zip(cells) {
            let Some((column, text)) = cell else {
                continue;
            };
            any = true;
            match Identifier::parse(column, text, region) {
                Ok(identifier) => read.row.push_identifier(&identifier),
                Err(reason) => *slot = Some(reason),
            }
        }
        if !any {
            read.rejected[0] = Some(RejectReason::NoIdentifier);
        }
        read
    }
}

fn read_csv_row<R: Read>(
    reader: &mut ListReader<R>,
    record: &mut ByteRecord,
    region: Region,
) -> Result<Option<RowRead>, ListError> {
    if !reader.read_record(record)? {
        return Ok(None);
    }
    let line = record.position().map_or(0, csv::Position::line);
    Ok(Some(match identifier_cells(record, reader.columns()) {
        Ok(cells) => RowRead::of_cells(line, cells, region),
        Err(reject) => RowRead::refused(line, reject.reason),
    }))
}

fn read_ndjson_row<R: Read>(
    lines: &mut Lines<R>,
    region: Region,
) -> Result<Option<RowRead>, ListError> {
    loop {
        let Some(fits) = lines.next_line()? else {
            return Ok(None);
        };
        let line = lines.number;
        if !fits {
            return Ok(Some(RowRead::refused(line, RejectReason::LineTooLong)));
        }
        if lines.line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(text) = std::str::from_utf8(&lines.line) else {
            return Ok(Some(RowRead::refused(line, RejectReason::InvalidUtf8)));
        };
        return Ok(Some(match parse_object(text) {
            Ok(fields) => {
                let cells = [&fields.email, &fields.phone]
                    .map(|cell| cell.as_ref().map(|(column, text)| (*column, &**text)));
                RowRead::of_cells(line, cells, region)
            }
            Err(_) => RowRead::refused(line, RejectReason::MalformedJson),
        }));
    }
}

/// The lines of an NDJSON body, one at a time, each kept only if it fits the limit.
struct Lines<R> {
    input: BufReader<R>,
    /// The current line, without its line end (`\n` or `\r\n`) and, on line 1, without a BOM.
    line: Vec<u8>,
    /// The current line's number.
    number: u64,
}

impl<R: Read> Lines<R> {
    fn new(input: R) -> Self {
        Self {
            input: BufReader::with_capacity(NDJSON_BUFFER, input),
            line: Vec::new(),
            number: 0,
        }
    }

    /// Reads the next line into `self.line`: `None` at the end of the input, else whether the
    /// line fits [`MAX_ROW_BYTES`] (the bytes of one that does not are skipped, not kept).
    fn next_line(&mut self) -> Result<Option<bool>, ListError> {
        self.line.clear();
        let line = self.number + 1;
        let mut consumed = 0usize;
        let mut fits = true;
        loop {
            let available = match self.input.fill_buf() {
                Ok(available) => available,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(ListError::Read { line, source }),
            };
            if available.is_empty() {
                break;
            }
            let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..i], true),
                None => (available, false),
            };
            if fits && self.line.len() + chunk.len() <= MAX_ROW_BYTES + 1 {
                // One byte over the limit is kept: it may be the `\r` of a CRLF line end.
                self.line.extend_from_slice(chunk);
            } else {
                fits = false;
                self.line.clear();
            }
            let take = chunk.len() + usize::from(done);
            consumed += take;
            self.input.consume(take);
            if done {
                break;
            }
        }
        if consumed == 0 {
            return Ok(None);
        }
        self.number = line;
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        if self.line.len() > MAX_ROW_BYTES {
            fits = false;
            self.line.clear();
        }
        if line == 1 && self.line.starts_with(BOM) {
            self.line.drain(..BOM.len());
        }
        Ok(Some(fits))
    }
}

/// The identifier fields of one NDJSON line, each present and not blank.
#[derive(Default)]
struct Fields<'de> {
    email: Option<(Column, Text<'de>)>,
    phone: Option<(Column, Text<'de>)>,
}

/// A string value: borrowed from the line unless it had escapes to decode.
type Text<'de> = Cow<'de, str>;

/// Why a line is not an upload object. It says nothing more: the parser's own messages may
/// quote the line.
#[derive(Debug)]
struct NotAnUploadObject;

impl fmt::Display for NotAnUploadObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(RejectReason::MalformedJson.message())
    }
}

impl std::error::Error for NotAnUploadObject {}

impl de::Error for NotAnUploadObject {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Self
    }
}

/// Reads one line as a JSON object: the identifier fields (by [`Column::from_header`]) must be
/// strings or null, at most one of each kind non-blank; other fields may hold anything.
fn parse_object(text: &str) -> Result<Fields<'_>, NotAnUploadObject> {
    let mut json = serde_json::Deserializer::from_str(text);
    let fields = ObjectSeed
        .deserialize(&mut json)
        .map_err(|_| NotAnUploadObject)?;
    json.end().map_err(|_| NotAnUploadObject)?;
    Ok(fields)
}

struct ObjectSeed;

impl<'de> DeserializeSeed<'de> for ObjectSeed {
    type Value = Fields<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Fields::default();
        while let Some(FieldName(column)) = map.next_key()? {
            let Some(column) = column else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let OptionalText(Some(text)) = map.next_value()? else {
                continue;
            };
            if text.trim_ascii().is_empty() {
                continue;
            }
            let slot = match column.kind() {
                IdentifierKind::Email => &mut fields.email,
                IdentifierKind::Phone => &mut fields.phone,
            };
            if slot.is_some() {
                return Err(de::Error::custom("two values for one kind of identifier"));
            }
            *slot = Some((column, text));
        }
        Ok(fields)
    }
}

/// A field name, read as the identifier column it names, if any.
struct FieldName(Option<Column>);

impl<'de> de::Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(FieldNameVisitor)
    }
}

struct FieldNameVisitor;

impl Visitor<'_> for FieldNameVisitor {
    type Value = FieldName;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<FieldName, E> {
        Ok(FieldName(Column::from_header(name)))
    }
}

/// The value of an identifier field: a string, or null for none.
struct OptionalText<'de>(Option<Text<'de>>);

impl<'de> de::Deserialize<'de> for OptionalText<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_option(OptionalTextVisitor)
    }
}

struct OptionalTextVisitor;

impl<'de> Visitor<'de> for OptionalTextVisitor {
    type Value = OptionalText<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(OptionalText(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(OptionalText(None))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(OptionalText(Some(Cow::Borrowed(text))))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(OptionalText(Some(Cow::Owned(text.to_owned()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let cases = [
            ("text/csv", Some(UploadFormat::Csv)),
            ("Text/CSV; charset=utf-8", Some(UploadFormat::Csv)),
            (" text/csv ;header=present", Some(UploadFormat::Csv)),
            ("application/x-ndjson", Some(UploadFormat::Ndjson)),
            (
                "application/ndjson; charset=UTF-8",
                Some(UploadFormat::Ndjson),
            ),
            ("application/jsonl", Some(UploadFormat::Ndjson)),
            ("application/json", None),
            ("text/plain", None),
            ("", None),
            ("text/csvx", None),
        ];
        for (content_type, format) in cases {
            assert_eq!(
                UploadFormat::from_content_type(content_type),
                format,
                "{content_type:?}"
            );
        }
        for format in [UploadFormat::Csv, UploadFormat::Ndjson] {
            assert_eq!(
                UploadFormat::from_content_type(format.media_type()),
                Some(format)
            );
        }
    }

    #[test]
    fn objects() {
        let fields =
            parse_object(r#"{"E-Mail":"a@b.co","x":[1,{"y":null}],"mobile":null}"#).unwrap();
        assert!(matches!(
            fields.email,
            Some((Column::Email, Cow::Borrowed("a@b.co")))
        ));
        assert!(fields.phone.is_none());
        let fields = parse_object(r#"{"phone_sha256":"a\u0062"}"#).unwrap();
        assert!(matches!(&fields.phone, Some((Column::PhoneSha256, Cow::Owned(t))) if t == "ab"));
        for bad in [
            "[]",
            "\"email\"",
            "null",
            "{",
            r#"{"email":1}"#,
            r#"{"email":["a@b.co"]}"#,
            r#"{"email":"a@b.co","mail":"c@d.co"}"#,
            r#"{"email":"a@b.co","hashed_email":"x"}"#,
            r#"{"email":"a@b.co"} {}"#,
        ] {
            assert!(parse_object(bad).is_err(), "{bad}");
        }
        // A blank or null second value of a kind is no second value.
        assert!(parse_object(r#"{"email":"a@b.co","mail":" ","email_sha256":null}"#).is_ok());
    }

    #[test]
    fn rows_keep_distinct_digests_up_to_four() {
        let mut row = UploadRow::new(3);
        let a = Sha256Digest::of(b"a");
        row.push(a);
        row.push(a);
        assert_eq!(row.digests(), [a]);
        for i in 0..10u8 {
            row.push(Sha256Digest::of(&[i]));
        }
        assert_eq!(row.digests().len(), UploadRow::MAX_DIGESTS);
        assert_eq!(format!("{row:?}"), "UploadRow { line: 3, digests: 4 }");
    }
}
