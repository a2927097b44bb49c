//! A Server-Sent Events parser (the WHATWG `text/event-stream` format), incremental over
//! arbitrary chunk boundaries.
//!
//! Only what the registry sends is interpreted — `id`, `event`, `data` (joined with `\n` when
//! repeated) and comments, which the registry uses as heartbeats — but any valid stream parses.

/// One parsed item of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A dispatched event.
    Event {
        /// The `id:` field, if the event had one.
        id: Option<String>,
        /// The `event:` field (`message` when absent).
        event: String,
        /// The `data:` lines joined with `\n`.
        data: String,
    },
    /// A comment line (`: ping`): proof the connection is alive.
    Comment,
}

/// Incremental parser state.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
}

/// The longest line accepted; a longer one means the peer is not an SSE server.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        SseParser::default()
    }

    /// Feeds a chunk; returns the items it completed. Fails when a line exceeds [`MAX_LINE`].
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseItem>, String> {
        self.buffer.extend_from_slice(chunk);
        let mut items = Vec::new();
        let mut start = 0;
        while let Some(offset) = self.buffer[start..].iter().position(|&b| b == b'\n') {
            let end = start + offset;
            let mut line = &self.buffer[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            if let Some(item) = self.line(&line) {
                items.push(item);
            }
        }
        self.buffer.drain(..start);
        if self.buffer.len() > MAX_LINE {
            return Err(format!("an SSE line is longer than {MAX_LINE} bytes"));
        }
        Ok(items)
    }

    fn line(&mut self, line: &str) -> Option<SseItem> {
        if line.is_empty() {
            let data = self.data.take();
            let event = self.event.take();
            return data.map(|data| SseItem::Event {
                id: self.id.clone(),
                event: event.unwrap_or_else(|| "message".to_string()),
                data,
            });
        }
        if line.starts_with(':') {
            return Some(SseItem::Comment);
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_across_chunks() {
        let mut p = SseParser::new();
        assert!(p.feed(b"id: 7\nevent: tog").unwrap().is_empty());
        let items = p
            .feed(b"gle\ndata: {\"a\":\ndata: 1}\r\n\r\n: ping\n")
            .unwrap();
        assert_eq!(
            items,
            vec![
                SseItem::Event {
                    id: Some("7".into()),
                    event: "toggle".into(),
                    data: "{\"a\":\n1}".into()
                },
                SseItem::Comment
            ]
        );
        // The id persists for later events without one, as the format says.
        let items = p.feed(b"data: x\n\n").unwrap();
        assert_eq!(
            items,
            vec![SseItem::Event {
                id: Some("7".into()),
                event: "message".into(),
                data: "x".into()
            }]
        );
    }

    #[test]
    fn events_without_data_are_not_dispatched() {
        let mut p = SseParser::new();
        assert!(p.feed(b"event: x\n\n").unwrap().is_empty());
    }
}
