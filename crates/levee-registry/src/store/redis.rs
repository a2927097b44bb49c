//! The Redis backend: several registry replicas share one Redis.
//!
//! Layout (every key under the configured prefix, default `levee:`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `doc:<kind>:<name>` | hash `{v, j}` | a document's version and JSON |
//! | `idx:<kind>` | hash name → value | the names of a kind; for breakers, their state |
//! | `seq` | string | the last event id |
//! | `ring` | list | the last `ring_size` events, `"<id> <json>"` |
//! | `events` | pub/sub channel | every event, `"<id> <json>"`, as it is appended |
//! | `meta` | string | set once a replica has seeded this Redis (see `sync`) |
//!
//! A write is one Lua script: compare the version, write the document and its index entry,
//! then for each event `INCR seq`, `RPUSH` to the ring and `PUBLISH` — so a document change
//! and its events are one atomic step, and event ids are globally ordered. The decision itself
//! (breaker rules, toggles, levels) is made in Rust before the script runs; a lost race simply
//! fails the version check and the caller re-reads and retries.
//!
//! The first event id of a fresh Redis is its creation time in Unix milliseconds, so ids keep
//! increasing even when Redis restarts empty (unless more than 1000 events per second were
//! written on average since the previous ids began).
//!
//! The client is the `redis` crate; what it does not decide is decided here, and
//! deliberately: every call, connect included, runs under the configured timeout
//! (`tokio::time::timeout` around the crate's own connection and response timeouts); all calls
//! share one multiplexed connection, which is thrown away after any error other than an error
//! reply, or after a timeout, and made anew by the next call; sockets have TCP keepalive and
//! no Nagle delay; scripts run as `EVALSHA`, loaded again when Redis answers `NOSCRIPT` (new,
//! or restarted empty).

use super::{Doc, Kind, Put, RawState, StoreError};
use crate::config::RedisConfig;
use ::redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use ::redis::io::tcp::{socket2, TcpSettings};
use ::redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo,
    RedisError, Script, Value,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const WRITE_SCRIPT: &str = r#"
local mode, arg = ARGV[1], tonumber(ARGV[2])
local cur = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
local new
if mode == 'cas' then
  if cur ~= arg then return 0 end
  new = cur + 1
else
  if cur ~= 0 then return 0 end
  new = arg
end
redis.call('HSET', KEYS[1], 'v', string.format('%.0f', new), 'j', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
if #ARGV > 8 then
  if redis.call('EXISTS', KEYS[3]) == 0 then redis.call('SET', KEYS[3], ARGV[8]) end
  for i = 9, #ARGV do
    local id = redis.call('INCR', KEYS[3])
    local msg = string.format('%.0f', id) .. ' ' .. ARGV[i]
    redis.call('RPUSH', KEYS[4], msg)
    redis.call('PUBLISH', ARGV[7], msg)
  end
  redis.call('LTRIM', KEYS[4], -tonumber(ARGV[6]), -1)
end
return new
"#;

const LIST_SCRIPT: &str = r#"
local names = redis.call('HKEYS', KEYS[1])
local out = {}
for _, n in ipairs(names) do
  local d = redis.call('HMGET', ARGV[1] .. n, 'v', 'j')
  if d[1] then out[#out+1] = n; out[#out+1] = d[1]; out[#out+1] = d[2] end
end
return out
"#;

const SNAPSHOT_SCRIPT: &str = r#"
local out = {redis.call('GET', KEYS[1]) or '0', redis.call('EXISTS', KEYS[3]), redis.call('LRANGE', KEYS[2], 0, -1)}
for i = 2, #ARGV do
  local kind = ARGV[i]
  local names = redis.call('HKEYS', ARGV[1] .. 'idx:' .. kind)
  local docs = {}
  for _, n in ipairs(names) do
    local d = redis.call('HMGET', ARGV[1] .. 'doc:' .. kind .. ':' .. n, 'v', 'j')
    if d[1] then docs[#docs+1] = n; docs[#docs+1] = d[1]; docs[#docs+1] = d[2] end
  end
  out[#out+1] = docs
end
return out
"#;

static WRITE: LazyLock<Script> = LazyLock::new(|| Script::new(WRITE_SCRIPT));
static LIST: LazyLock<Script> = LazyLock::new(|| Script::new(LIST_SCRIPT));
static SNAPSHOT: LazyLock<Script> = LazyLock::new(|| Script::new(SNAPSHOT_SCRIPT));

/// Keepalive finds a peer that vanished without a FIN (a crashed host, a dropped NAT entry)
/// even on an idle subscription; the subscriber's own pings find it sooner.
const KEEPALIVE_TIME: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// What a `redis://` URL in the config must look like.
fn url_error(url: &str) -> String {
    format!(
        "redis url `{url}` is not understood: write redis://host:port, optionally with \
         :password@ (or user:password@) before the host and /db after the port; \
         percent-encode any of `@:/?#%` in the password"
    )
}

/// Parses `redis://[[user]:password@]host[:port][/db]` into the crate's connection info with
/// this store's TCP settings (keepalive, no Nagle delay).
pub fn connection_info(url: &str) -> Result<ConnectionInfo, String> {
    if !url.starts_with("redis://") {
        return Err(url_error(url));
    }
    let info = url
        .into_connection_info()
        .map_err(|e| format!("{} ({e})", url_error(url)))?;
    match info.addr() {
        ConnectionAddr::Tcp(host, _) if !host.is_empty() => {}
        _ => return Err(url_error(url)),
    }
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_TIME)
        .with_interval(KEEPALIVE_INTERVAL);
    Ok(info.set_tcp_settings(
        TcpSettings::default()
            .set_nodelay(true)
            .set_keepalive(keepalive),
    ))
}

/// The shared connection and the number that tells one from its successors.
#[derive(Default)]
struct Slot {
    conn: Option<(u64, MultiplexedConnection)>,
    made: u64,
}

/// See the module docs.
pub struct RedisStore {
    config: RedisConfig,
    client: Client,
    slot: Mutex<Slot>,
    /// Held while connecting, so a lost connection is replaced once, not once per caller.
    connecting: tokio::sync::Mutex<()>,
    connected: AtomicBool,
    ring_size: usize,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the client: its connection info holds the password.
        f.debug_struct("RedisStore")
            .field("prefix", &self.config.prefix)
            .field("timeout", &self.config.timeout)
            .field("connected", &self.connected())
            .field("ring_size", &self.ring_size)
            .finish_non_exhaustive()
    }
}

/// Whether an error leaves the connection in a known state: only an error *reply* does (the
/// exchange completed). Anything else — I/O, a closed connection, an unreadable reply, a
/// failed login — and the connection is dropped.
fn keeps_connection(e: &RedisError) -> bool {
    matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension)
}

fn store_error(e: RedisError) -> StoreError {
    match e.kind() {
        // Redis answered, or sent something unreadable: not a matter of reachability.
        ErrorKind::Server(_)
        | ErrorKind::Extension
        | ErrorKind::Parse
        | ErrorKind::UnexpectedReturnType => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Unavailable(format!("redis connection failed: {e}")),
    }
}

fn timed_out() -> StoreError {
    StoreError::Unavailable("redis did not answer in time".into())
}

fn text(v: &Value) -> Result<String, StoreError> {
    value_text(v).ok_or_else(|| StoreError::Corrupt(format!("expected text, got {v:?}")))
}

/// A reply as text (bulk or simple string, or integer).
pub fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(d) => Some(String::from_utf8_lossy(d).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Okay => Some("OK".into()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn number(v: &Value) -> Result<u64, StoreError> {
    let n = match v {
        Value::Int(i) => Some(*i),
        other => value_text(other).and_then(|t| t.parse().ok()),
    };
    n.and_then(|i| u64::try_from(i).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("expected a number, got {v:?}")))
}

/// Parses `"<id> <json>"`.
pub fn parse_event(message: &str) -> Option<(u64, &str)> {
    let (id, json) = message.split_once(' ')?;
    Some((id.parse().ok()?, json))
}

fn docs_of(value: &Value) -> Result<BTreeMap<String, Doc>, StoreError> {
    let Value::Array(items) = value else {
        return Err(StoreError::Corrupt(format!(
            "expected a list, got {value:?}"
        )));
    };
    let mut out = BTreeMap::new();
    for triple in items.chunks(3) {
        if let [name, version, json] = triple {
            out.insert(
                text(name)?,
                Doc {
                    version: number(version)?,
                    json: text(json)?,
                },
            );
        }
    }
    Ok(out)
}

impl RedisStore {
    /// A store for `config` (no connection is made yet).
    pub fn new(config: RedisConfig, ring_size: usize) -> Result<RedisStore, String> {
        let client = Client::open(connection_info(&config.url)?)
            .map_err(|e| format!("{} ({e})", url_error(&config.url)))?;
        Ok(RedisStore {
            config,
            client,
            slot: Mutex::new(Slot::default()),
            connecting: tokio::sync::Mutex::new(()),
            connected: AtomicBool::new(false),
            ring_size,
        })
    }

    /// The connection settings.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// False while the subscription is down (set by the replica's sync loop).
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Marks the backend reachable or not. Returns the previous value.
    pub fn set_connected(&self, up: bool) -> bool {
        self.connected.swap(up, Ordering::AcqRel)
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut k = self.config.prefix.clone();
        k.push_str(&parts.join(":"));
        k
    }

    fn doc_key(&self, kind: Kind, name: &str) -> String {
        format!("{}doc:{}:{name}", self.config.prefix, kind.as_str())
    }

    fn idx_key(&self, kind: Kind) -> String {
        format!("{}idx:{}", self.config.prefix, kind.as_str())
    }

    /// The pub/sub channel.
    pub fn channel(&self) -> String {
        self.key(&["events"])
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The shared connection, made (logged in, database selected) if there is none.
    async fn connection(&self) -> Result<(u64, MultiplexedConnection), RedisError> {
        if let Some(c) = self.slot().conn.clone() {
            return Ok(c);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(c) = self.slot().conn.clone() {
            return Ok(c);
        }
        let timeout = Some(self.config.timeout);
        let settings = AsyncConnectionConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&settings)
            .await?;
        let mut slot = self.slot();
        slot.made += 1;
        let made = (slot.made, conn);
        slot.conn = Some(made.clone());
        Ok(made)
    }

    /// Drops connection `id` if it is still the shared one.
    fn discard(&self, id: u64) {
        let mut slot = self.slot();
        if slot
            .conn
            .as_ref()
            .is_some_and(|(current, _)| *current == id)
        {
            slot.conn = None;
        }
    }

    /// Runs `op` on the shared connection, connect included, within the timeout; drops the
    /// connection after a timeout or any error but an error reply.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let mut used = None;
        let result = tokio::time::timeout(self.config.timeout, async {
            let (id, conn) = self.connection().await?;
            used = Some(id);
            op(conn).await
        })
        .await;
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if let Some(id) = used.filter(|_| !keeps_connection(&e)) {
                    self.discard(id);
                }
                Err(store_error(e))
            }
            Err(_) => {
                if let Some(id) = used {
                    self.discard(id);
                }
                Err(timed_out())
            }
        }
    }

    /// Runs one command (`args[0]` and its arguments) within the timeout.
    pub async fn call(&self, args: &[&[u8]]) -> Result<Value, StoreError> {
        let mut cmd = ::redis::Cmd::new();
        for a in args {
            cmd.arg(*a);
        }
        self.run(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await
    }

    /// Drops the shared connection (after a loss, so the next call reconnects).
    pub fn clear_pool(&self) {
        self.slot().conn = None;
    }

    /// Runs `script` (`EVALSHA`, loading it on `NOSCRIPT`) within the timeout.
    async fn eval(
        &self,
        script: &'static Script,
        keys: &[String],
        args: &[&[u8]],
    ) -> Result<Value, StoreError> {
        let mut invocation = script.prepare_invoke();
        for k in keys {
            invocation.key(k.as_str());
        }
        for a in args {
            invocation.arg(*a);
        }
        self.run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await
    }

    /// `PING`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call(&[b"PING"]).await.map(|_| ())
    }

    pub(crate) async fn get(&self, kind: Kind, name: &str) -> Result<Option<Doc>, StoreError> {
        let key = self.doc_key(kind, name);
        let v = self.call(&[b"HMGET", key.as_bytes(), b"v", b"j"]).await?;
        match v {
            Value::Array(items) => match items.as_slice() {
                [Value::Nil, _] | [_, Value::Nil] => Ok(None),
                [version, json] => Ok(Some(Doc {
                    version: number(version)?,
                    json: text(json)?,
                })),
                _ => Err(StoreError::Corrupt("HMGET answered an odd list".into())),
            },
            other => Err(StoreError::Corrupt(format!("HMGET answered {other:?}"))),
        }
    }

    pub(crate) async fn list(&self, kind: Kind) -> Result<BTreeMap<String, Doc>, StoreError> {
        let prefix = format!("{}doc:{}:", self.config.prefix, kind.as_str());
        let v = self
            .eval(&LIST, &[self.idx_key(kind)], &[prefix.as_bytes()])
            .await?;
        docs_of(&v)
    }

    pub(crate) async fn index(&self, kind: Kind) -> Result<BTreeMap<String, String>, StoreError> {
        let key = self.idx_key(kind);
        let v = self.call(&[b"HGETALL", key.as_bytes()]).await?;
        // RESP2 answers a flat list; RESP3 (`?protocol=resp3` in the URL) a map.
        let pairs: Vec<(&Value, &Value)> = match &v {
            Value::Array(items) => items
                .chunks(2)
                .filter_map(|pair| match pair {
                    [k, v] => Some((k, v)),
                    _ => None,
                })
                .collect(),
            Value::Map(items) => items.iter().map(|(k, v)| (k, v)).collect(),
            _ => return Err(StoreError::Corrupt("HGETALL answered no list".into())),
        };
        Ok(pairs
            .into_iter()
            .filter_map(|(k, v)| Some((value_text(k)?, value_text(v)?)))
            .collect())
    }

    async fn write(&self, put: &Put<'_>, mode: &str, arg: u64) -> Result<u64, StoreError> {
        let keys = [
            self.doc_key(put.kind, put.name),
            self.idx_key(put.kind),
            self.key(&["seq"]),
            self.key(&["ring"]),
        ];
        let arg = arg.to_string();
        let ring = self.ring_size.max(1).to_string();
        let channel = self.channel();
        let base = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
            .to_string();
        let mut args: Vec<&[u8]> = vec![
            mode.as_bytes(),
            arg.as_bytes(),
            put.json.as_bytes(),
            put.name.as_bytes(),
            put.index.as_bytes(),
            ring.as_bytes(),
            channel.as_bytes(),
            base.as_bytes(),
        ];
        args.extend(put.events.iter().map(|e| e.as_bytes()));
        let v = self.eval(&WRITE, &keys, &args).await?;
        number(&v)
    }

    pub(crate) async fn cas(
        &self,
        put: &Put<'_>,
        expected: u64,
    ) -> Result<Option<u64>, StoreError> {
        let version = self.write(put, "cas", expected).await?;
        Ok((version != 0).then_some(version))
    }

    pub(crate) async fn restore(&self, put: &Put<'_>, version: u64) -> Result<bool, StoreError> {
        Ok(self.write(put, "restore", version.max(1)).await? != 0)
    }

    /// Everything, atomically: the last event id, whether this Redis was seeded, the ring
    /// and every document.
    pub async fn raw_state(&self) -> Result<(RawState, bool), StoreError> {
        let keys = [self.key(&["seq"]), self.key(&["ring"]), self.key(&["meta"])];
        let mut args: Vec<&[u8]> = vec![self.config.prefix.as_bytes()];
        args.extend(Kind::ALL.iter().map(|k| k.as_str().as_bytes()));
        let v = self.eval(&SNAPSHOT, &keys, &args).await?;
        let Value::Array(items) = v else {
            return Err(StoreError::Corrupt(
                "the snapshot script answered no list".into(),
            ));
        };
        let [seq, seeded, ring, kinds @ ..] = items.as_slice() else {
            return Err(StoreError::Corrupt(
                "the snapshot script answered too little".into(),
            ));
        };
        let mut raw = RawState {
            seq: number(seq)?,
            ..RawState::default()
        };
        if let Value::Array(entries) = ring {
            for entry in entries {
                let message = text(entry)?;
                if let Some((id, json)) = parse_event(&message) {
                    raw.ring.push((id, json.to_string()));
                }
            }
        }
        for (kind, docs) in Kind::ALL.iter().zip(kinds) {
            for (name, doc) in docs_of(docs)? {
                raw.docs.insert((*kind, name), doc);
            }
        }
        Ok((raw, number(seeded)? == 1))
    }

    /// Claims the seeding of a Redis that has no `meta` key (new, or restarted empty). True
    /// for the one replica that gets it.
    pub async fn claim_seed(&self) -> Result<bool, StoreError> {
        let key = self.key(&["meta"]);
        let v = self
            .call(&[b"SET", key.as_bytes(), b"seeded", b"NX"])
            .await?;
        Ok(v != Value::Nil)
    }

    /// A new connection (not the shared one) subscribed to the event channel, the
    /// subscription confirmed, all within the timeout. The sink pings (see `sync`); the
    /// stream ends when the connection does.
    pub async fn subscribe(&self) -> Result<(PubSubSink, PubSubStream), StoreError> {
        let channel = self.channel();
        let subscribed = tokio::time::timeout(self.config.timeout, async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, RedisError>(pubsub.split())
        })
        .await;
        match subscribed {
            Ok(Ok(split)) => Ok(split),
            Ok(Err(e)) => Err(store_error(e)),
            Err(_) => Err(timed_out()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_messages_parse() {
        assert_eq!(parse_event("12 {\"a\":1}"), Some((12, "{\"a\":1}")));
        assert_eq!(parse_event("x {}"), None);
        assert_eq!(parse_event("12"), None);
    }

    #[test]
    fn urls_parse() {
        let tcp = |host: &str, port| ConnectionAddr::Tcp(host.to_string(), port);
        let a = connection_info("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!(
            (a.addr(), a.redis_settings().db()),
            (&tcp("127.0.0.1", 6380), 2)
        );
        let a = connection_info("redis://:secret@host").unwrap();
        assert_eq!(a.addr(), &tcp("host", 6379));
        assert_eq!(
            (a.redis_settings().username(), a.redis_settings().password()),
            (None, Some("secret"))
        );
        let a = connection_info("redis://u:p@[::1]:7000").unwrap();
        assert_eq!(a.addr(), &tcp("::1", 7000));
        assert_eq!(a.redis_settings().username(), Some("u"));
        let a = connection_info("redis://:p%40ss%2Fword@h/").unwrap();
        assert_eq!(a.redis_settings().password(), Some("p@ss/word"));
        assert_eq!(a.redis_settings().db(), 0);
        assert!(connection_info("http://x").is_err());
        assert!(connection_info("redis://:1").is_err());
        assert!(connection_info("redis://h:x").is_err());
        assert!(connection_info("redis://h/x").is_err());
        assert!(connection_info("redis+unix:///tmp/redis.sock").is_err());
    }

    #[test]
    fn sockets_use_keepalive_and_no_nagle() {
        let a = connection_info("redis://h").unwrap();
        assert!(a.tcp_settings().nodelay());
        assert!(a.tcp_settings().keepalive().is_some());
    }
}
