//! A lean HTTP/1.1 client connection: one keep-alive TCP connection, one request at a time,
//! reused buffers. The generator must cost less than the server it measures, so there is no
//! pool, no dispatch task and no per-request header map: a request is bytes written at once,
//! an answer is read into the same buffer and only the headers the report needs are kept.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Most response headers read (the shop sends about ten).
const MAX_HEADERS: usize = 64;
/// Largest response head or body accepted (a guard against a misbehaving target).
const MAX_RESPONSE: usize = 64 * 1024 * 1024;

/// Why an exchange failed before an answer was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The TCP connection could not be made (refused, unreachable, connect timeout).
    Connect,
    /// No complete answer within the request timeout.
    Timeout,
    /// The connection broke, or the answer was not HTTP/1.1.
    Io,
}

impl Failure {
    /// The name in reports (`errors by status` shows it in place of a status).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Timeout => "timeout",
            Failure::Io => "io",
        }
    }
}

/// A complete answer; header values and the body borrow the connection's buffer.
#[derive(Debug)]
pub(crate) struct Response<'a> {
    pub(crate) status: u16,
    pub(crate) traceparent: Option<&'a [u8]>,
    pub(crate) request_id: Option<&'a [u8]>,
    pub(crate) replayed: bool,
    pub(crate) body: &'a [u8],
}

/// One connection to the target, reopened when the server closes it.
#[derive(Debug)]
pub(crate) struct Connection {
    address: SocketAddr,
    stream: Option<TcpStream>,
    buffer: Vec<u8>,
    body: Vec<u8>,
}

struct Parsed {
    status: u16,
    head_len: usize,
    content_length: Option<usize>,
    chunked: bool,
    close: bool,
    traceparent: Option<Range<usize>>,
    request_id: Option<Range<usize>>,
    replayed: bool,
}

impl Connection {
    pub(crate) fn new(address: SocketAddr) -> Self {
        Self {
            address,
            stream: None,
            buffer: Vec::with_capacity(16 * 1024),
            body: Vec::new(),
        }
    }

    /// Opens the TCP connection now (the first request would otherwise).
    pub(crate) async fn connect(&mut self, timeout: Duration) -> Result<(), io::Error> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(self.address))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        let _ = stream.set_nodelay(true);
        self.stream = Some(stream);
        Ok(())
    }

    /// Sends `request` (a complete HTTP/1.1 request) and reads the answer, all within
    /// `timeout`. A kept-alive connection the server closed meanwhile is reopened once,
    /// transparently, if the server had sent nothing of an answer.
    pub(crate) async fn send(
        &mut self,
        request: &[u8],
        head_only: bool,
        timeout: Duration,
    ) -> Result<Response<'_>, Failure> {
        let parsed = match tokio::time::timeout(timeout, self.exchange(request, head_only)).await {
            Ok(Ok(parsed)) => parsed,
            Ok(Err(failure)) => {
                self.stream = None;
                return Err(failure);
            }
            Err(_) => {
                self.stream = None;
                return Err(Failure::Timeout);
            }
        };
        if parsed.close {
            self.stream = None;
        }
        let body: &[u8] = if parsed.chunked {
            &self.body
        } else {
            let end = parsed.head_len + parsed.content_length.unwrap_or(0);
            self.buffer
                .get(parsed.head_len..end)
                .unwrap_or(&self.buffer[parsed.head_len..])
        };
        let header =
            |range: &Option<Range<usize>>| range.as_ref().and_then(|r| self.buffer.get(r.clone()));
        Ok(Response {
            status: parsed.status,
            traceparent: header(&parsed.traceparent),
            request_id: header(&parsed.request_id),
            replayed: parsed.replayed,
            body,
        })
    }

    async fn exchange(&mut self, request: &[u8], head_only: bool) -> Result<Parsed, Failure> {
        let reused = self.stream.is_some();
        match self.try_exchange(request, head_only).await {
            Err(Retry::Stale) if reused => {
                self.stream = None;
                self.try_exchange(request, head_only)
                    .await
                    .map_err(Retry::into_failure)
            }
            other => other.map_err(Retry::into_failure),
        }
    }

    async fn try_exchange(&mut self, request: &[u8], head_only: bool) -> Result<Parsed, Retry> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.address)
                .await
                .map_err(|_| Retry::Failed(Failure::Connect))?;
            let _ = stream.set_nodelay(true);
            self.stream = Some(stream);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(Retry::Failed(Failure::Io));
        };
        self.buffer.clear();
        if stream.write_all(request).await.is_err() {
            return Err(Retry::Stale);
        }
        // The head.
        let parsed = loop {
            if self.buffer.capacity() - self.buffer.len() < 4096 {
                self.buffer.reserve(8192);
            }
            let read = stream.read_buf(&mut self.buffer).await;
            match read {
                Ok(0) | Err(_) if self.buffer.is_empty() => return Err(Retry::Stale),
                Ok(0) | Err(_) => return Err(Retry::Failed(Failure::Io)),
                Ok(_) => {}
            }
            if let Some(parsed) = parse_head(&self.buffer)? {
                break parsed;
            }
            if self.buffer.len() > MAX_RESPONSE {
                return Err(Retry::Failed(Failure::Io));
            }
        };
        let no_body =
            head_only || parsed.status == 204 || parsed.status == 304 || parsed.status < 200;
        if no_body {
            return Ok(Parsed {
                content_length: Some(0),
                chunked: false,
                ..parsed
            });
        }
        if parsed.chunked {
            self.body.clear();
            let mut at = parsed.head_len;
            loop {
                match chunk(&self.buffer[at..]) {
                    Ok(Some(Chunk::Data { start, len })) => {
                        let begin = at + start;
                        self.body
                            .extend_from_slice(&self.buffer[begin..begin + len]);
                        at = begin + len + 2;
                    }
                    Ok(Some(Chunk::Last { len })) => {
                        at += len;
                        let _ = at;
                        return Ok(parsed);
                    }
                    Ok(None) => {
                        if self.buffer.len() > MAX_RESPONSE {
                            return Err(Retry::Failed(Failure::Io));
                        }
                        self.buffer.reserve(8192);
                        match stream.read_buf(&mut self.buffer).await {
                            Ok(0) | Err(_) => return Err(Retry::Failed(Failure::Io)),
                            Ok(_) => {}
                        }
                    }
                    Err(()) => return Err(Retry::Failed(Failure::Io)),
                }
            }
        }
        match parsed.content_length {
            Some(length) => {
                if length > MAX_RESPONSE {
                    return Err(Retry::Failed(Failure::Io));
                }
                let want = parsed.head_len + length;
                while self.buffer.len() < want {
                    self.buffer.reserve(want - self.buffer.len());
                    match stream.read_buf(&mut self.buffer).await {
                        Ok(0) | Err(_) => return Err(Retry::Failed(Failure::Io)),
                        Ok(_) => {}
                    }
                }
                Ok(parsed)
            }
            None => {
                // No length: the body ends when the server closes the connection.
                loop {
                    if self.buffer.len() > MAX_RESPONSE {
                        return Err(Retry::Failed(Failure::Io));
                    }
                    self.buffer.reserve(8192);
                    match stream.read_buf(&mut self.buffer).await {
                        Ok(0) => break,
                        Err(_) => return Err(Retry::Failed(Failure::Io)),
                        Ok(_) => {}
                    }
                }
                let length = self.buffer.len() - parsed.head_len;
                Ok(Parsed {
                    content_length: Some(length),
                    close: true,
                    ..parsed
                })
            }
        }
    }
}

enum Retry {
    /// The connection was closed before any byte of the answer: resend on a new one.
    Stale,
    Failed(Failure),
}

impl Retry {
    fn into_failure(self) -> Failure {
        match self {
            Retry::Stale => Failure::Io,
            Retry::Failed(failure) => failure,
        }
    }
}

impl From<Failure> for Retry {
    fn from(failure: Failure) -> Self {
        Retry::Failed(failure)
    }
}

/// The head of an answer, if `buffer` holds all of it.
fn parse_head(buffer: &[u8]) -> Result<Option<Parsed>, Failure> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buffer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Failure::Io),
    };
    let status = response.code.ok_or(Failure::Io)?;
    let base = buffer.as_ptr() as usize;
    let range = |value: &[u8]| {
        let start = value.as_ptr() as usize - base;
        start..start + value.len()
    };
    let mut parsed = Parsed {
        status,
        head_len,
        content_length: None,
        chunked: false,
        close: response.version == Some(0),
        traceparent: None,
        request_id: None,
        replayed: false,
    };
    for header in response.headers.iter() {
        let name = header.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let length = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or(Failure::Io)?;
            parsed.content_length = Some(length);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            parsed.chunked = header
                .value
                .split(|&b| b == b',')
                .any(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            if header.value.eq_ignore_ascii_case(b"close") {
                parsed.close = true;
            } else if header.value.eq_ignore_ascii_case(b"keep-alive") {
                parsed.close = false;
            }
        } else if name.eq_ignore_ascii_case(b"traceparent") {
            parsed.traceparent = Some(range(header.value));
        } else if name.eq_ignore_ascii_case(b"x-request-id") {
            parsed.request_id = Some(range(header.value));
        } else if name.eq_ignore_ascii_case(b"idempotent-replayed") {
            parsed.replayed = header.value.eq_ignore_ascii_case(b"true");
        }
    }
    Ok(Some(parsed))
}

enum Chunk {
    /// Data at `start..start + len` of the slice, followed by CRLF.
    Data { start: usize, len: usize },
    /// The last chunk and trailers: `len` bytes in all.
    Last { len: usize },
}

/// The next chunk of a chunked body, if `input` holds all of it.
fn chunk(input: &[u8]) -> Result<Option<Chunk>, ()> {
    let Some(line_end) = input.windows(2).position(|w| w == b"\r\n") else {
        return if input.len() > 1024 {
            Err(())
        } else {
            Ok(None)
        };
    };
    let size_field = input[..line_end]
        .split(|&b| b == b';')
        .next()
        .unwrap_or(&[]);
    let size = std::str::from_utf8(size_field)
        .ok()
        .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
        .ok_or(())?;
    let start = line_end + 2;
    if size == 0 {
        // Trailers end with an empty line.
        let rest = &input[start..];
        if rest.starts_with(b"\r\n") {
            return Ok(Some(Chunk::Last { len: start + 2 }));
        }
        return match rest.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(end) => Ok(Some(Chunk::Last {
                len: start + end + 4,
            })),
            None => Ok(None),
        };
    }
    if size > MAX_RESPONSE {
        return Err(());
    }
    if input.len() < start + size + 2 {
        return Ok(None);
    }
    if &input[start + size..start + size + 2] != b"\r\n" {
        return Err(());
    }
    Ok(Some(Chunk::Data { start, len: size }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::net::TcpListener;

    async fn serve_once(answers: Vec<&'static [u8]>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            for answer in answers {
                let mut request = vec![0u8; 4096];
                let _ = socket.read(&mut request).await.unwrap();
                socket.write_all(answer).await.unwrap();
            }
        });
        address
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    #[tokio::test]
    async fn content_length_and_chunked_bodies_are_read_on_one_connection() {
        let address = serve_once(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-request-id: r1\r\n\
              traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\nhello",
            b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\nidempotent-replayed: true\r\n\r\n\
              3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n",
        ])
        .await;
        let mut connection = Connection::new(address);
        let timeout = Duration::from_secs(5);
        let first = connection.send(GET, false, timeout).await.unwrap();
        assert_eq!(first.status, 200);
        assert_eq!(first.body, b"hello");
        assert_eq!(first.request_id, Some(&b"r1"[..]));
        assert_eq!(first.traceparent.unwrap().len(), 55);
        let second = connection.send(GET, false, timeout).await.unwrap();
        assert_eq!(second.status, 201);
        assert_eq!(second.body, b"abcde");
        assert!(second.replayed);
    }

    #[tokio::test]
    async fn a_refused_connection_and_a_silent_server_are_named() {
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let mut connection = Connection::new(closed);
        let failure = connection
            .send(GET, false, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(failure, Failure::Connect);

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = listener.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(socket);
        });
        let mut connection = Connection::new(silent);
        let failure = connection
            .send(GET, false, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(failure, Failure::Timeout);
    }

    #[tokio::test]
    async fn garbage_is_an_io_failure() {
        let address = serve_once(vec![b"SMTP ready\r\n\r\n"]).await;
        let mut connection = Connection::new(address);
        let failure = connection
            .send(GET, false, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(failure, Failure::Io);
    }
}
