//! A minimal Redis (RESP2) client: just what the registry uses — commands, `EVAL`, and a
//! subscription — with every connect, write and read bounded by the caller.
//!
//! Why not the `redis` crate: the registry needs hard guarantees rather than features — every
//! call under one timeout, a connection thrown away after any timeout or error (its protocol
//! state is then unknown), TCP keepalive on every socket, and a subscriber that can ping
//! itself to notice a blackholed server. The protocol subset is small enough to own, and owning
//! it keeps those guarantees visible in ~250 lines instead of behind a connection manager.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// A RESP2 value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A nil bulk string or array.
    Nil,
    /// `:` integer.
    Int(i64),
    /// `$` bulk string.
    Data(Vec<u8>),
    /// `+` simple string.
    Status(String),
    /// `-` error reply.
    Error(String),
    /// `*` array.
    Array(Vec<Value>),
}

impl Value {
    /// The value as text (bulk or simple string, or integer).
    pub fn text(&self) -> Option<String> {
        match self {
            Value::Data(d) => Some(String::from_utf8_lossy(d).into_owned()),
            Value::Status(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    /// The value as an integer (integer reply or numeric text).
    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            other => other.text().and_then(|t| t.parse().ok()),
        }
    }
}

/// Why a Redis call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespError {
    /// Connecting, reading or writing failed, or the peer closed the connection.
    Io(String),
    /// The call did not finish in time.
    Timeout,
    /// The peer sent something that is not RESP.
    Protocol(String),
    /// Redis answered with an error reply.
    Server(String),
    /// The URL is not `redis://[[user]:password@]host[:port][/db]`.
    Url(String),
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::Io(m) => write!(f, "redis connection failed: {m}"),
            RespError::Timeout => f.write_str("redis did not answer in time"),
            RespError::Protocol(m) => write!(f, "redis sent an unexpected reply: {m}"),
            RespError::Server(m) => write!(f, "redis answered with an error: {m}"),
            RespError::Url(u) => write!(
                f,
                "redis url `{u}` is not understood: write redis://host:port, optionally with \
                 :password@ before the host and /db after the port"
            ),
        }
    }
}

impl std::error::Error for RespError {}

/// Where Redis is and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisAddr {
    /// Host name or IP.
    pub host: String,
    /// Port (default 6379).
    pub port: u16,
    /// ACL user name, if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<String>,
    /// Database number (default 0).
    pub db: u32,
}

impl RedisAddr {
    /// Parses `redis://[[user]:password@]host[:port][/db]`.
    pub fn parse(url: &str) -> Result<RedisAddr, RespError> {
        let bad = || RespError::Url(url.to_string());
        let rest = url.strip_prefix("redis://").ok_or_else(bad)?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let (hostport, db) = match rest.split_once('/') {
            Some((h, "")) => (h, 0),
            Some((h, d)) => (h, d.parse().map_err(|_| bad())?),
            None => (rest, 0),
        };
        let (host, port) = if let Some(stripped) = hostport.strip_prefix('[') {
            let (h, p) = stripped.split_once(']').ok_or_else(bad)?;
            let port = match p.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None => 6379,
            };
            (h.to_string(), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
                None => (hostport.to_string(), 6379),
            }
        };
        if host.is_empty() {
            return Err(bad());
        }
        let (username, password) = match auth {
            None => (None, None),
            Some(a) => match a.split_once(':') {
                Some(("", p)) => (None, Some(p.to_string())),
                Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
                None => (None, Some(a.to_string())),
            },
        };
        Ok(RedisAddr {
            host,
            port,
            username,
            password,
            db,
        })
    }
}

/// The longest bulk string accepted (Redis' own limit is 512 MB; registry values are small).
const MAX_BULK: usize = 64 * 1024 * 1024;
/// The longest header line accepted.
const MAX_LINE: u64 = 64 * 1024;

/// Encodes a command as a RESP array of bulk strings.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The reading half of a connection.
#[derive(Debug)]
pub struct Reader(BufReader<OwnedReadHalf>);

/// The writing half of a connection.
#[derive(Debug)]
pub struct Writer(OwnedWriteHalf);

impl Reader {
    /// Reads one value. Not cancel safe: a value abandoned halfway leaves the connection
    /// unusable, so callers drop the connection on a timeout.
    pub fn read(&mut self) -> Pin<Box<dyn Future<Output = Result<Value, RespError>> + Send + '_>> {
        Box::pin(async move {
            let mut line = Vec::new();
            (&mut self.0)
                .take(MAX_LINE)
                .read_until(b'\n', &mut line)
                .await
                .map_err(|e| RespError::Io(e.to_string()))?;
            if line.is_empty() {
                return Err(RespError::Io("redis closed the connection".into()));
            }
            if !line.ends_with(b"\r\n") {
                return Err(RespError::Protocol("a reply line is not terminated".into()));
            }
            let text = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
            let number = || {
                text.parse::<i64>()
                    .map_err(|_| RespError::Protocol(format!("`{text}` is not a number")))
            };
            match line[0] {
                b'+' => Ok(Value::Status(text)),
                b'-' => Ok(Value::Error(text)),
                b':' => Ok(Value::Int(number()?)),
                b'$' => {
                    let n = number()?;
                    if n < 0 {
                        return Ok(Value::Nil);
                    }
                    let n = usize::try_from(n).unwrap_or(usize::MAX);
                    if n > MAX_BULK {
                        return Err(RespError::Protocol(format!("a {n}-byte value is too long")));
                    }
                    let mut data = vec![0; n + 2];
                    self.0
                        .read_exact(&mut data)
                        .await
                        .map_err(|e| RespError::Io(e.to_string()))?;
                    data.truncate(n);
                    Ok(Value::Data(data))
                }
                b'*' => {
                    let n = number()?;
                    if n < 0 {
                        return Ok(Value::Nil);
                    }
                    let n = usize::try_from(n).unwrap_or(usize::MAX);
                    let mut items = Vec::with_capacity(n.min(1024));
                    for _ in 0..n {
                        items.push(self.read().await?);
                    }
                    Ok(Value::Array(items))
                }
                other => Err(RespError::Protocol(format!(
                    "unknown reply type `{}`",
                    char::from(other)
                ))),
            }
        })
    }
}

impl Writer {
    /// Writes one command.
    pub async fn send(&mut self, args: &[&[u8]]) -> Result<(), RespError> {
        self.0
            .write_all(&encode(args))
            .await
            .map_err(|e| RespError::Io(e.to_string()))
    }
}

/// A connection: one command at a time, each bounded by the caller's timeout.
#[derive(Debug)]
pub struct Conn {
    reader: Reader,
    writer: Writer,
}

impl Conn {
    /// Connects (TCP keepalive on, Nagle off), logs in and selects the database, all within
    /// `timeout`.
    pub async fn connect(addr: &RedisAddr, timeout: Duration) -> Result<Conn, RespError> {
        tokio::time::timeout(timeout, async {
            let stream = TcpStream::connect((addr.host.as_str(), addr.port))
                .await
                .map_err(|e| RespError::Io(format!("{}:{}: {e}", addr.host, addr.port)))?;
            stream
                .set_nodelay(true)
                .map_err(|e| RespError::Io(e.to_string()))?;
            // Keepalive finds a peer that vanished without a FIN (a crashed host, a dropped
            // NAT entry) even on an idle subscription.
            let keepalive = socket2::TcpKeepalive::new()
                .with_time(Duration::from_secs(10))
                .with_interval(Duration::from_secs(5));
            socket2::SockRef::from(&stream)
                .set_tcp_keepalive(&keepalive)
                .map_err(|e| RespError::Io(e.to_string()))?;
            let (r, w) = stream.into_split();
            let mut conn = Conn {
                reader: Reader(BufReader::new(r)),
                writer: Writer(w),
            };
            if let Some(password) = &addr.password {
                let reply = match &addr.username {
                    Some(user) => {
                        conn.call(&[b"AUTH", user.as_bytes(), password.as_bytes()])
                            .await?
                    }
                    None => conn.call(&[b"AUTH", password.as_bytes()]).await?,
                };
                check(reply)?;
            }
            if addr.db != 0 {
                let db = addr.db.to_string();
                check(conn.call(&[b"SELECT", db.as_bytes()]).await?)?;
            }
            Ok(conn)
        })
        .await
        .map_err(|_| RespError::Timeout)?
    }

    /// Sends a command and reads its reply (unbounded: wrap it in a timeout and drop the
    /// connection when it fires).
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Value, RespError> {
        self.writer.send(args).await?;
        self.reader.read().await
    }

    /// The two halves, for a subscription read by one task and pinged by another.
    pub fn split(self) -> (Reader, Writer) {
        (self.reader, self.writer)
    }
}

/// Turns an error reply into an error.
pub fn check(value: Value) -> Result<Value, RespError> {
    match value {
        Value::Error(e) => Err(RespError::Server(e)),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let a = RedisAddr::parse("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!((a.host.as_str(), a.port, a.db), ("127.0.0.1", 6380, 2));
        let a = RedisAddr::parse("redis://:secret@host").unwrap();
        assert_eq!((a.password.as_deref(), a.port), (Some("secret"), 6379));
        let a = RedisAddr::parse("redis://u:p@[::1]:7000").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("::1", 7000));
        assert_eq!(a.username.as_deref(), Some("u"));
        assert!(RedisAddr::parse("http://x").is_err());
        assert!(RedisAddr::parse("redis://:1").is_err());
        assert!(RedisAddr::parse("redis://h:x").is_err());
    }

    #[test]
    fn commands_encode_as_bulk_arrays() {
        assert_eq!(
            encode(&[b"GET", b"k"]),
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".to_vec()
        );
    }

    #[tokio::test]
    async fn replies_decode() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf).await;
            s.write_all(b"*4\r\n:7\r\n$2\r\nhi\r\n$-1\r\n*1\r\n+OK\r\n")
                .await
                .unwrap();
        });
        let mut conn = Conn::connect(
            &RedisAddr::parse(&format!("redis://{addr}")).unwrap(),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        let v = conn.call(&[b"X"]).await.unwrap();
        assert_eq!(
            v,
            Value::Array(vec![
                Value::Int(7),
                Value::Data(b"hi".to_vec()),
                Value::Nil,
                Value::Array(vec![Value::Status("OK".into())])
            ])
        );
    }
}
