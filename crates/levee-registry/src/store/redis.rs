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
//! Every call runs on a pooled connection under the configured timeout; a connection that
//! errs or times out is dropped, never reused.

use super::{Doc, Kind, Put, RawState, StoreError};
use crate::config::RedisConfig;
use crate::resp::{check, Conn, Reader, RedisAddr, RespError, Value, Writer};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

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

/// Idle connections kept for reuse.
const POOL_SIZE: usize = 8;

/// See the module docs.
#[derive(Debug)]
pub struct RedisStore {
    config: RedisConfig,
    addr: RedisAddr,
    pool: Mutex<Vec<Conn>>,
    connected: AtomicBool,
    ring_size: usize,
}

fn unavailable(e: RespError) -> StoreError {
    match e {
        RespError::Server(m) | RespError::Protocol(m) => StoreError::Corrupt(m),
        other => StoreError::Unavailable(other.to_string()),
    }
}

fn text(v: &Value) -> Result<String, StoreError> {
    v.text()
        .ok_or_else(|| StoreError::Corrupt(format!("expected text, got {v:?}")))
}

fn number(v: &Value) -> Result<u64, StoreError> {
    v.int()
        .and_then(|i| u64::try_from(i).ok())
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
        let addr = RedisAddr::parse(&config.url).map_err(|e| e.to_string())?;
        Ok(RedisStore {
            config,
            addr,
            pool: Mutex::new(Vec::new()),
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

    /// Runs one command on a pooled connection within the timeout.
    pub async fn call(&self, args: &[&[u8]]) -> Result<Value, StoreError> {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let timeout = self.config.timeout;
        let result = tokio::time::timeout(timeout, async {
            let mut conn = match pooled {
                Some(c) => c,
                None => Conn::connect(&self.addr, timeout).await?,
            };
            let value = conn.call(args).await?;
            Ok::<_, RespError>((conn, value))
        })
        .await
        .map_err(|_| RespError::Timeout)
        .and_then(|r| r);
        match result {
            Ok((conn, value)) => {
                let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
                if pool.len() < POOL_SIZE {
                    pool.push(conn);
                }
                check(value).map_err(unavailable)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Drops every pooled connection (after a loss, so the next calls reconnect).
    pub fn clear_pool(&self) {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    async fn eval(
        &self,
        script: &str,
        keys: &[String],
        args: &[&[u8]],
    ) -> Result<Value, StoreError> {
        let nkeys = keys.len().to_string();
        let mut all: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), nkeys.as_bytes()];
        all.extend(keys.iter().map(|k| k.as_bytes()));
        all.extend_from_slice(args);
        self.call(&all).await
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
            .eval(LIST_SCRIPT, &[self.idx_key(kind)], &[prefix.as_bytes()])
            .await?;
        docs_of(&v)
    }

    pub(crate) async fn index(&self, kind: Kind) -> Result<BTreeMap<String, String>, StoreError> {
        let key = self.idx_key(kind);
        let v = self.call(&[b"HGETALL", key.as_bytes()]).await?;
        let Value::Array(items) = v else {
            return Err(StoreError::Corrupt("HGETALL answered no list".into()));
        };
        items
            .chunks(2)
            .filter_map(|pair| match pair {
                [k, v] => Some(Ok::<_, StoreError>((text(k).ok()?, text(v).ok()?))),
                _ => None,
            })
            .collect()
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
        let v = self.eval(WRITE_SCRIPT, &keys, &args).await?;
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
        let v = self.eval(SNAPSHOT_SCRIPT, &keys, &args).await?;
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

    /// A new connection subscribed to the event channel, confirmation read.
    pub async fn subscribe(&self) -> Result<(Reader, Writer), StoreError> {
        let timeout = self.config.timeout;
        let channel = self.channel();
        tokio::time::timeout(timeout, async {
            let conn = Conn::connect(&self.addr, timeout).await?;
            let (mut reader, mut writer) = conn.split();
            writer.send(&[b"SUBSCRIBE", channel.as_bytes()]).await?;
            let confirm = check(reader.read().await?)?;
            match confirm {
                Value::Array(items)
                    if items.first().and_then(Value::text).as_deref() == Some("subscribe") =>
                {
                    Ok((reader, writer))
                }
                other => Err(RespError::Protocol(format!("SUBSCRIBE answered {other:?}"))),
            }
        })
        .await
        .map_err(|_| StoreError::Unavailable("redis did not answer in time".into()))?
        .map_err(unavailable)
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
}
