//! A minimal HTTP/1.1 client over `std::net::TcpStream`, enough to talk to `tailor serve` in
//! tests: one request per connection (`Connection: close`), bodies with `Content-Length` or
//! chunked, a read timeout so that a hung server fails the test instead of hanging it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A response, read whole.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a UTF-8 body")
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request to `addr` (`HOST:PORT`) and reads the whole response.
pub(crate) fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Response {
    request_typed(addr, method, path, token, None, body)
}

/// As [`request`], with a `Content-Type` if given.
pub(crate) fn request_typed(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Response {
    let mut sending = Sending::start(addr, method, path, token, content_type, body.len());
    sending.write(body).unwrap();
    sending.finish()
}

/// A request whose head is sent and whose body goes out in pieces the caller chooses, so that
/// a test can stop at an exact point of the protocol (say, to kill the server there).
#[derive(Debug)]
pub(crate) struct Sending {
    stream: TcpStream,
}

impl Sending {
    /// Connects and sends the request head, announcing a body of `content_length` bytes.
    pub(crate) fn start(
        addr: &str,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        content_length: usize,
    ) -> Self {
        let mut stream = TcpStream::connect(addr).expect("the server accepts connections");
        let timeout = Some(Duration::from_secs(60));
        stream.set_read_timeout(timeout).unwrap();
        stream.set_write_timeout(timeout).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {content_length}\r\n"
        );
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if let Some(content_type) = content_type {
            head.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        Self { stream }
    }

    /// Sends the next bytes of the body.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads the whole response (the server closes the connection after it).
    pub(crate) fn finish(mut self) -> Response {
        let mut raw = Vec::new();
        self.stream
            .read_to_end(&mut raw)
            .expect("the server answers and closes the connection");
        parse(&raw)
    }
}

fn parse(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = std::str::from_utf8(&raw[..split]).expect("an ASCII head");
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    response.body = if response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest)
    } else if let Some(length) = response.header("content-length") {
        rest[..length.parse::<usize>().unwrap()].to_vec()
    } else {
        rest.to_vec()
    };
    response
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line");
        let size_text = std::str::from_utf8(&rest[..end]).unwrap();
        let size_text = size_text.split(';').next().unwrap().trim();
        let size = usize::from_str_radix(size_text, 16).expect("a hex chunk size");
        rest = &rest[end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[test]
fn parses_both_body_framings() {
    let plain = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    assert_eq!((plain.status, plain.body.as_slice()), (200, &b"ok"[..]));
    let chunked = parse(
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
    );
    assert_eq!(
        (chunked.status, chunked.body.as_slice()),
        (404, &b"abcde"[..])
    );
}
