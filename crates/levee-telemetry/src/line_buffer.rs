//! Log lines gathered into few writes to standard error.
//!
//! A busy proxy logs one line per request; one `write(2)` per line costs more kernel time than
//! formatting the line does. [`LineBuffer`] appends lines to one in-memory buffer and writes it
//! out in one go:
//!
//! - when it holds [`FLUSH_BYTES`] or more;
//! - at once for a `WARN` or `ERROR` line, so a problem is never left waiting behind the
//!   access lines (they are written in order, the buffered ones first);
//! - at the latest [`FLUSH_INTERVAL`] after the first line of a batch, from a flusher thread
//!   that sleeps until there is something to write (an idle proxy makes no wake-ups);
//! - on [`flush_logs`](crate::flush_logs), which `levee run` calls when it exits, and from a
//!   panic hook before the panic message.
//!
//! Lines are written whole and in the order they were logged: the buffer's lock is held across
//! the write. The cost: a process killed with `SIGKILL` loses at most [`FLUSH_INTERVAL`] of
//! `INFO` lines, as nginx's `access_log ... buffer= flush=` does.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;

/// A buffer this large is written out without waiting for the flusher.
pub const FLUSH_BYTES: usize = 32 * 1024;
/// The longest a line waits in the buffer.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// How long an idle flusher waits before checking that its buffer is still in use.
const IDLE_RECHECK: Duration = Duration::from_secs(5);

/// A buffered, line-ordered writer; cloning shares the buffer. See the module doc.
#[derive(Clone)]
pub struct LineBuffer {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when a batch begins (the buffer goes from empty to not empty).
    batch_started: Condvar,
    out: Output,
}

/// Where a batch goes (standard error, or a test's capture).
type Output = Box<dyn Fn(&[u8]) + Send + Sync>;

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// The flusher thread is waiting for a batch (not sleeping out an interval).
    flusher_idle: bool,
}

impl LineBuffer {
    /// A buffer writing to standard error, with its flusher thread started.
    pub fn stderr() -> LineBuffer {
        LineBuffer::with_output(|bytes| {
            // A failed log write has nowhere to be reported.
            let _ = std::io::stderr().lock().write_all(bytes);
        })
    }

    /// A buffer writing to `out` (tests), with its flusher thread started.
    pub fn with_output(out: impl Fn(&[u8]) + Send + Sync + 'static) -> LineBuffer {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                bytes: Vec::with_capacity(FLUSH_BYTES * 2),
                flusher_idle: false,
            }),
            batch_started: Condvar::new(),
            out: Box::new(out),
        });
        let flusher = Arc::downgrade(&shared);
        // Without the thread lines would still be written (by size, by level, on exit), only
        // later; so a failure to start it is not an error.
        let _ = std::thread::Builder::new()
            .name("levee-log-flush".into())
            .spawn(move || {
                while let Some(shared) = flusher.upgrade() {
                    if !shared.wait_for_batch() {
                        continue; // woke without a batch: let go, so a dropped buffer ends us
                    }
                    drop(shared);
                    std::thread::sleep(FLUSH_INTERVAL);
                    match flusher.upgrade() {
                        Some(shared) => shared.flush(),
                        None => return,
                    }
                }
            });
        LineBuffer { shared }
    }

    /// Appends one or more whole lines; writes the buffer out when `urgent` or full.
    pub fn push(&self, line: &[u8], urgent: bool) {
        let mut pending = self.shared.lock();
        let was_empty = pending.bytes.is_empty();
        pending.bytes.extend_from_slice(line);
        if urgent || pending.bytes.len() >= FLUSH_BYTES {
            self.shared.write_out(&mut pending);
        } else if was_empty && pending.flusher_idle {
            pending.flusher_idle = false;
            self.shared.batch_started.notify_one();
        }
    }

    /// Writes out whatever is buffered.
    pub fn flush(&self) {
        self.shared.flush();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn flush(&self) {
        let mut pending = self.lock();
        self.write_out(&mut pending);
    }

    fn write_out(&self, pending: &mut Pending) {
        if !pending.bytes.is_empty() {
            (self.out)(&pending.bytes);
            pending.bytes.clear();
        }
    }

    /// Blocks until the buffer holds something (true), or for [`IDLE_RECHECK`] (false), after
    /// which the flusher lets go of the buffer for a moment so that one no longer used is freed
    /// and the thread ends.
    fn wait_for_batch(&self) -> bool {
        let mut pending = self.lock();
        if pending.bytes.is_empty() {
            pending.flusher_idle = true;
            pending = self
                .batch_started
                .wait_timeout(pending, IDLE_RECHECK)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        pending.flusher_idle = false;
        !pending.bytes.is_empty()
    }
}

/// What a `tracing` layer writes one line through: collects the line's bytes and hands them to
/// the buffer when dropped (a layer writes a line, then drops its writer).
pub struct LineWriter<'a> {
    buffer: &'a LineBuffer,
    line: Vec<u8>,
    urgent: bool,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.line.is_empty() {
            // The usual case: the layer writes its whole line at once; no copy to a scratch Vec.
            self.buffer.push(bytes, self.urgent);
            return Ok(());
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.buffer.push(&self.line, self.urgent);
        }
    }
}

impl<'a> MakeWriter<'a> for LineBuffer {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter {
            buffer: self,
            line: Vec::new(),
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> LineWriter<'a> {
        LineWriter {
            buffer: self,
            line: Vec::new(),
            urgent: *meta.level() <= tracing::Level::WARN,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn capture() -> (LineBuffer, Arc<Mutex<Vec<Vec<u8>>>>) {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&writes);
        let buffer = LineBuffer::with_output(move |b| sink.lock().unwrap().push(b.to_vec()));
        (buffer, writes)
    }

    #[test]
    fn info_lines_wait_and_go_out_in_one_write_on_flush() {
        let (buffer, writes) = capture();
        buffer.push(b"a\n", false);
        buffer.push(b"b\n", false);
        buffer.flush();
        let writes = writes.lock().unwrap();
        // The flusher thread may have written "a" on its own first; never out of order.
        assert_eq!(writes.concat(), b"a\nb\n");
        assert!(writes.len() <= 2);
    }

    #[test]
    fn a_warning_writes_the_buffered_lines_then_itself_at_once() {
        let (buffer, writes) = capture();
        buffer.push(b"info\n", false);
        buffer.push(b"warn\n", true);
        assert_eq!(writes.lock().unwrap().concat(), b"info\nwarn\n");
    }

    #[test]
    fn a_full_buffer_is_written_without_a_flush() {
        let (buffer, writes) = capture();
        let line = vec![b'x'; 1023];
        for _ in 0..(FLUSH_BYTES / 1024 + 1) {
            buffer.push(&line, false);
        }
        assert!(writes.lock().unwrap().concat().len() >= FLUSH_BYTES);
    }

    #[test]
    fn the_flusher_writes_a_lone_line_without_being_asked() {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let buffer = LineBuffer::with_output(move |b| {
            let _ = tx.lock().unwrap().send(b.to_vec());
        });
        buffer.push(b"lonely\n", false);
        // No flush, no warning, far below FLUSH_BYTES: only the flusher thread can write it
        // (FLUSH_INTERVAL after the line; the generous deadline only turns a hang into a
        // failure).
        let written = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(written, b"lonely\n");
    }

    #[test]
    fn the_writer_picks_urgency_from_the_level() {
        let (buffer, writes) = capture();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("quiet");
            tracing::warn!("loud");
        });
        // No flush: the warning alone made both lines go out, in order.
        let text = String::from_utf8(writes.lock().unwrap().concat()).unwrap();
        let quiet = text
            .find("quiet")
            .expect("the info line was written with the warning");
        let loud = text.find("loud").expect("the warning was written at once");
        assert!(quiet < loud, "{text}");
    }
}
