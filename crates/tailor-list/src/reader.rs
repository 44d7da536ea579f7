//! Reading a customer list: header detection, delimiter sniffing, records with line numbers.
//!
//! The reader accepts what spreadsheet exports produce: comma, semicolon or tab delimiters
//! (detected from the header row), a UTF-8 byte-order mark, quoted fields with embedded
//! delimiters, quotes or newlines, CRLF line ends, and blank lines. Records come out as raw
//! bytes: deciding what to do with a row that is not UTF-8 or has the wrong number of fields is
//! the caller's business, row by row, so one bad row never stops a list.

use std::io::{self, Cursor, Read};

use csv::ByteRecord;

use crate::columns::ColumnMap;
use crate::error::ListError;

/// The longest header row we accept.
const HEADER_LIMIT: usize = 64 * 1024;

/// The CSV parser's read buffer: it never holds more unconsumed bytes than this.
const BUFFER: usize = 256 * 1024;

/// The candidate delimiters, in order of preference when counts tie.
const DELIMITERS: [u8; 3] = [b',', b';', b'\t'];

const BOM: &[u8] = b"\xEF\xBB\xBF";

type Inner<R> = csv::Reader<Tail<io::Chain<Cursor<Vec<u8>>, R>>>;

/// A customer list being read.
pub struct ListReader<R: Read> {
    csv: Inner<R>,
    columns: ColumnMap,
    delimiter: u8,
}

impl<R: Read> std::fmt::Debug for ListReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListReader")
            .field("columns", &self.columns)
            .field("delimiter", &char::from(self.delimiter))
            .finish_non_exhaustive()
    }
}

impl<R: Read> ListReader<R> {
    /// Reads the header row of `input` and maps its columns.
    pub fn new(mut input: R) -> Result<Self, ListError> {
        let mut prefix = read_first_line(&mut input)?;
        if prefix.starts_with(BOM) {
            prefix.drain(..BOM.len());
        }
        let header = first_non_blank_line(&prefix).ok_or(ListError::Empty)?;
        if header.len() > HEADER_LIMIT {
            return Err(ListError::HeaderTooLong {
                limit: HEADER_LIMIT,
            });
        }
        let delimiter = sniff_delimiter(header);
        let mut csv = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(true)
            .flexible(true)
            .buffer_capacity(BUFFER)
            .from_reader(Tail::new(Cursor::new(prefix).chain(input)));
        let names = csv
            .byte_headers()
            .map_err(|e| read_error(1, e, None))?
            .iter()
            .map(|name| std::str::from_utf8(name).map(str::to_owned))
            .collect::<Result<Vec<String>, _>>()
            .map_err(|_| ListError::HeaderNotUtf8)?;
        let columns = ColumnMap::from_header(&names)?;
        Ok(Self {
            csv,
            columns,
            delimiter,
        })
    }

    /// The columns named by the header.
    pub fn columns(&self) -> &ColumnMap {
        &self.columns
    }

    /// The delimiter found in the header row.
    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// Fails the list with [`ListError::RecordTooLong`] when one record (with the empty lines
    /// before it) grows beyond `limit` bytes, instead of buffering it whole.
    ///
    /// A record that long is an unclosed quote swallowing the rest of the input, and a server
    /// reading an upload cannot let one body take unbounded memory. The parser's memory then
    /// stays below `limit` plus its read buffer.
    pub fn with_record_limit(mut self, limit: usize) -> Self {
        self.csv.get_mut().limit = Some(limit as u64);
        self.mark_record_end();
        self
    }

    /// Reads the next data record into `record`; `false` at the end of the list.
    ///
    /// [`ByteRecord::position`] then gives the record's first line (1-based, the header being
    /// line 1 when there is no blank line before it).
    ///
    /// Lines holding nothing but whitespace are skipped like empty lines: they are not rows.
    pub fn read_record(&mut self, record: &mut ByteRecord) -> Result<bool, ListError> {
        loop {
            let read = self.csv.read_byte_record(record).map_err(|error| {
                let line = error
                    .position()
                    .map_or_else(|| self.csv.position().line(), csv::Position::line);
                let tail = self.csv.get_ref();
                let limit = tail.limit.map(|limit| (limit, tail.next_line));
                read_error(line, error, limit)
            })?;
            if !read {
                return Ok(false);
            }
            self.mark_record_end();
            if record.len() == 1 && is_blank(&record[0]) {
                continue;
            }
            self.set_first_line(record);
            return Ok(true);
        }
    }

    /// Tells the [`Tail`] where the record just read ends, for the record limit.
    fn mark_record_end(&mut self) {
        let end = self.csv.position();
        let (byte, line) = (end.byte(), end.line());
        let tail = self.csv.get_mut();
        // After a CRLF record the parser stops before the `\n` (see `set_first_line`).
        let before_line_feed = tail.byte_at(byte) == Some(b'\n');
        tail.record_end = byte;
        tail.next_line = line + u64::from(before_line_feed);
    }

    /// Replaces the line of `record`'s position by the line its first byte is on.
    ///
    /// The `csv` crate stamps a record with the position before it skips blank lines, and after
    /// a CRLF record it stops between the `\r` and the `\n`, so its line is the previous line.
    /// The line after the record is exact, though: counting back the line feeds inside the
    /// record's fields and the one ending it gives the line it starts on.
    fn set_first_line(&mut self, record: &mut ByteRecord) {
        let end = self.csv.position().clone();
        let inside = record.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
        let ended_by_line_feed = end
            .byte()
            .checked_sub(1)
            .and_then(|last| self.csv.get_ref().byte_at(last))
            == Some(b'\n');
        let Some(start) = record.position() else {
            return;
        };
        let first = end
            .line()
            .saturating_sub(inside + u64::from(ended_by_line_feed))
            .max(start.line());
        let mut position = start.clone();
        position.set_line(first);
        record.set_position(Some(position));
    }
}

/// Passes bytes through, keeping a copy of the last ones: enough to look at any byte the CSV
/// parser has buffered and not yet consumed.
struct Tail<R> {
    inner: R,
    /// Bytes passed through so far.
    offset: u64,
    /// The byte at offset `o` is at `o % RING`, for the last `RING` offsets.
    ring: Box<[u8]>,
    /// The offset where the last record the parser handed out ends.
    record_end: u64,
    /// The line the next record starts on, or after blank lines.
    next_line: u64,
    /// How many bytes past `record_end` the parser may ask for.
    limit: Option<u64>,
}

/// Twice the parser's buffer, which holds at most one read's worth of unconsumed bytes.
const RING: usize = 2 * BUFFER;

impl<R> Tail<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            offset: 0,
            ring: vec![0; RING].into_boxed_slice(),
            record_end: 0,
            next_line: 1,
            limit: None,
        }
    }

    /// The byte at `offset`, if it has passed through and is still remembered.
    fn byte_at(&self, offset: u64) -> Option<u8> {
        let back = self.offset.checked_sub(offset)?;
        if back == 0 || back > RING as u64 {
            return None;
        }
        self.ring.get((offset % RING as u64) as usize).copied()
    }
}

impl<R: Read> Read for Tail<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // The parser asks for more only once it has consumed what it holds, so every byte
        // since the last record's end belongs to the record it is reading.
        if let Some(limit) = self.limit
            && self.offset.saturating_sub(self.record_end) > limit
        {
            return Err(io::Error::new(io::ErrorKind::InvalidData, RecordTooLong));
        }
        let n = self.inner.read(buf)?;
        let skipped = n.saturating_sub(RING);
        let kept = &buf[skipped..n];
        let start = ((self.offset + skipped as u64) % RING as u64) as usize;
        let first = kept.len().min(RING - start);
        self.ring[start..start + first].copy_from_slice(&kept[..first]);
        self.ring[..kept.len() - first].copy_from_slice(&kept[first..]);
        self.offset += n as u64;
        Ok(n)
    }
}

/// The marker [`Tail`] fails a read with when a record outgrows the limit.
#[derive(Debug)]
struct RecordTooLong;

impl std::fmt::Display for RecordTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a record is longer than the limit")
    }
}

impl std::error::Error for RecordTooLong {}

/// The error for a failed read at `line`; `limit` is the record limit, if any, with the line
/// the record being read starts on.
fn read_error(line: u64, error: csv::Error, limit: Option<(u64, u64)>) -> ListError {
    let source = match error.into_kind() {
        csv::ErrorKind::Io(io) if io.get_ref().is_some_and(|e| e.is::<RecordTooLong>()) => {
            let (limit, line) = limit.unwrap_or((0, line));
            return ListError::RecordTooLong { line, limit };
        }
        csv::ErrorKind::Io(io) => io,
        other => io::Error::new(io::ErrorKind::InvalidData, format!("{other:?}")),
    };
    ListError::Read { line, source }
}

/// Reads from `input` until the buffer holds a complete non-blank first line, the end of the
/// input, or more than [`HEADER_LIMIT`] bytes.
fn read_first_line(input: &mut impl Read) -> Result<Vec<u8>, ListError> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match input.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(ListError::Read { line: 1, source }),
        };
        if n == 0 {
            return Ok(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
        let body = buf.strip_prefix(BOM).unwrap_or(&buf);
        if has_complete_non_blank_line(body) {
            return Ok(buf);
        }
        if buf.len() > HEADER_LIMIT {
            return Err(ListError::HeaderTooLong {
                limit: HEADER_LIMIT,
            });
        }
    }
}

fn has_complete_non_blank_line(bytes: &[u8]) -> bool {
    let mut lines = bytes.split(|&b| b == b'\n');
    // The last piece has no line end yet.
    lines.next_back();
    lines.any(|line| !is_blank(line))
}

fn first_non_blank_line(bytes: &[u8]) -> Option<&[u8]> {
    bytes.split(|&b| b == b'\n').find(|line| !is_blank(line))
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// The delimiter that occurs most often outside quotes in the header row; comma when none does
/// (a list with a single column).
fn sniff_delimiter(header: &[u8]) -> u8 {
    let mut counts = [0usize; DELIMITERS.len()];
    let mut quoted = false;
    for &b in header {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(i) = DELIMITERS.iter().position(|&d| d == b) {
            counts[i] += 1;
        }
    }
    let mut best = 0;
    for i in 1..DELIMITERS.len() {
        if counts[i] > counts[best] {
            best = i;
        }
    }
    DELIMITERS[best]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_the_delimiter_outside_quotes() {
        assert_eq!(sniff_delimiter(b"email,phone"), b',');
        assert_eq!(sniff_delimiter(b"email;phone;name"), b';');
        assert_eq!(sniff_delimiter(b"email\tphone"), b'\t');
        assert_eq!(sniff_delimiter(b"email"), b',');
        assert_eq!(sniff_delimiter(b"\"a,b,c\";email"), b';');
    }

    #[test]
    fn tail_remembers_the_last_ring_of_bytes() {
        let data: Vec<u8> = (0..3 * RING + 123).map(|i| (i % 251) as u8).collect();
        let mut tail = Tail::new(&data[..]);
        let mut buf = vec![0u8; RING + 7];
        let mut read = 0;
        for size in [1, 5000, RING + 7, 3, RING, 100_000].into_iter().cycle() {
            let n = tail.read(&mut buf[..size]).unwrap();
            if n == 0 {
                break;
            }
            read += n;
            assert_eq!(tail.byte_at(read as u64), None);
            for back in [1, 2, n.min(RING), RING / 2, RING] {
                let Some(at) = read.checked_sub(back) else {
                    continue;
                };
                assert_eq!(tail.byte_at(at as u64), Some(data[at]), "{read} {back}");
            }
            if let Some(at) = read.checked_sub(RING + 1) {
                assert_eq!(tail.byte_at(at as u64), None);
            }
        }
        assert_eq!(read, data.len());
    }

    #[test]
    fn header_limit_and_empty_input() {
        let long = vec![b'a'; HEADER_LIMIT + 10];
        let err = ListReader::new(&long[..]).unwrap_err();
        assert!(matches!(err, ListError::HeaderTooLong { .. }));
        for empty in [&b""[..], b"\n\n", b"\xEF\xBB\xBF", b"  \r\n"] {
            let err = ListReader::new(empty).unwrap_err();
            assert!(matches!(err, ListError::Empty), "{empty:?}: {err}");
        }
    }
}
